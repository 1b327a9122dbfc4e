"""Where hybridlib may write: one policy for every output location.

hybridlib writes only into a folder that is new, empty, or marked as its own run. The mark is
``.hybridlib-run``, a file hybridlib writes itself when it starts a run (a ``config.json`` proves
nothing: many programs write one). While a run trains, its process holds an exclusive lock on that
file (``fcntl.flock``), so two processes never train into one folder; the operating system releases
the lock when the process ends, also when it is killed, so a crash never leaves a folder stuck.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .checkpoint import CHECKPOINT_NAME
from .errors import RunDirectoryError

MARKER_NAME = ".hybridlib-run"
_MARKER_TEXT = b"A hybridlib run: hybridlib continues it with --resume and replaces it only with --overwrite.\n"


def is_run_dir(folder: Path | str) -> bool:
    """Whether ``folder`` carries hybridlib's own run marker."""
    return (Path(folder) / MARKER_NAME).is_file()


def _existing_ancestor(path: Path) -> Path:
    """``path`` itself or its nearest ancestor that exists (``.`` at the latest for a relative path)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def not_a_run_message(folder: Path, what_to_do: str = "choose a new or empty --out") -> str:
    """The refusal of a non-empty folder without the marker, saying what to do."""
    if (folder / CHECKPOINT_NAME).exists():  # most likely a run of a hybridlib from before the marker
        return (f"{folder} holds a {CHECKPOINT_NAME} but no {MARKER_NAME} marker, so hybridlib does not write into "
                f"it; if it is a hybridlib run of yours, `touch {folder / MARKER_NAME}`, else {what_to_do}")
    return (f"{folder} is not empty and is not a hybridlib run folder (no {MARKER_NAME}), so hybridlib does not "
            f"write into it; {what_to_do}")


def check_run_dir(out_dir: Path | str) -> None:
    """RunDirectoryError unless a run may be written into ``out_dir``: a folder that is new, empty or marked."""
    out_dir = Path(out_dir)
    if out_dir.is_symlink() and not out_dir.exists():
        raise RunDirectoryError(f"--out {out_dir} is a symbolic link to {os.readlink(out_dir)}, which does not exist; "
                                "create that folder or choose another --out")
    ancestor = _existing_ancestor(out_dir)
    if not ancestor.is_dir():
        where = "is" if ancestor == Path(os.path.abspath(out_dir)) else f"lies under {ancestor}, which is"
        raise RunDirectoryError(f"--out {out_dir} {where} a file, not a folder; choose a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_run_dir(out_dir):
        raise RunDirectoryError(not_a_run_message(out_dir))


@contextlib.contextmanager
def hold_run_dir(out_dir: Path | str) -> Iterator[None]:
    """Check ``out_dir`` (:func:`check_run_dir`), create and mark it, and hold it until the block ends.

    RunDirectoryError if another process holds it.
    """
    out_dir = Path(out_dir)
    check_run_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir / MARKER_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirectoryError(f"{out_dir} is in use by another hybridlib process; wait until it has finished, "
                                    "or choose another --out") from None
        if os.fstat(fd).st_size == 0:
            os.write(fd, _MARKER_TEXT)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)  # explicitly: a forked child sharing the descriptor must not keep the lock
        os.close(fd)


def check_can_write(path: Path | str, overwrite: bool = False) -> None:
    """Raise now, before any work, if a result file could not be written at ``path`` later.

    RunDirectoryError if ``path`` is a folder, lies under a file, or exists and ``overwrite`` is
    false; OSError (naming the folder) if the folder it would go into cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise RunDirectoryError(f"{path} is a folder; give a file name, e.g. {path / 'evaluation.json'}")
    if path.exists() and not overwrite:
        raise RunDirectoryError(f"{path} already exists; pass --overwrite to replace it, or choose another file")
    folder = _existing_ancestor(path.parent)
    if not folder.is_dir():
        raise RunDirectoryError(f"{path}: {folder} is a file, not a folder; choose another location")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(folder)) from e
