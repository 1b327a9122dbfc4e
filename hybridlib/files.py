"""Writing files so that a crash never leaves half of one: every result, history and checkpoint
goes through :func:`atomic_write` (a temporary file in the same folder, fsync'ed, then renamed)."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, IO


def _file_mode() -> int:
    """The permissions of an ordinary new file here: 0o666 less the umask (mkstemp's 0o600 is meant for secrets)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path | str, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(file_object)`` on a temporary file, fsync it, then rename it to ``path``.

    An operating-system failure (disk full, no permission) is raised as an OSError naming ``path``,
    also when it reaches us wrapped in another exception (torch.save wraps it in a RuntimeError).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _file_mode())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        cause = next((x for x in (e, e.__cause__, e.__context__) if isinstance(x, OSError) and x.errno), None)
        if cause is None:
            raise
        kept = f"; the previous {path.name} is kept" if path.exists() else ""
        raise OSError(cause.errno, f"{cause.strerror}{kept}", str(path)) from e
    dir_fd = os.open(path.parent, os.O_RDONLY)  # make the rename itself durable
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_text(path: Path | str, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null, so that any JSON reader accepts the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(x) for k, x in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(x) for x in value]
    return value


def json_text(obj: Any) -> str:
    """``obj`` as JSON text, NaN and infinities as null."""
    return json.dumps(_json_safe(obj), indent=2)


def write_json(path: Path | str, obj: Any) -> None:
    write_text(path, json_text(obj))


def remove_stale_temp_files(folder: Path, names: tuple[str, ...]) -> None:
    """Delete the temporary files of ``names`` that atomic_write left behind when its process was killed.

    Only for a folder this process holds (rundir.hold_run_dir): nobody else can be writing them.
    """
    for name in names:
        for tmp in Path(folder).glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
