"""Progress for a terminal that cannot see the notebook.

`make reproduce` runs each notebook in a kernel of its own: the training loop's progress bar there is a
widget nobody sees, and the terminal would sit at "cell 9/17" for minutes. When ``$HYBRIDLIB_PROGRESS``
names a file, the library appends one line to it per logging interval (:func:`announce`), and the process
that runs the notebooks echoes the newest line every so often (:class:`Echo`). Nothing of it reaches the
notebook's own outputs.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from tqdm import tqdm

ENV = "HYBRIDLIB_PROGRESS"


def announce(line: str) -> None:
    """Append ``line`` to the file ``$HYBRIDLIB_PROGRESS`` names; nothing when it is unset or cannot be written
    (a progress line is never worth stopping a training run for)."""
    path = os.environ.get(ENV)
    if path:
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line.replace("\n", " ") + "\n")
        except OSError:
            pass


class Echo:
    """Sets ``$HYBRIDLIB_PROGRESS`` to a new file for the processes started inside the ``with`` block (they
    inherit the environment) and prints the newest complete line written to it, at most one every
    ``every_s`` seconds. The file is removed on exit and the variable restored."""

    def __init__(self, every_s: float = 30.0, poll_s: float = 1.0, prefix: str = "      ",
                 write: Callable[[str], None] = tqdm.write) -> None:  # above a progress bar, not through it
        self.every_s, self.poll_s, self.prefix, self.write = every_s, poll_s, prefix, write

    def __enter__(self) -> "Echo":
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        fd, name = tempfile.mkstemp(prefix="hybridlib-progress-", suffix=".log")
        os.close(fd)
        self.path = Path(name)
        self._saved = os.environ.get(ENV)
        os.environ[ENV] = name
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._saved is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = self._saved
        self.path.unlink(missing_ok=True)

    def _run(self) -> None:
        offset, pending, last_print = 0, "", -float("inf")
        while not self._stop.wait(self.poll_s):
            with open(self.path, "rb") as f:
                f.seek(offset)
                lines = f.read().split(b"\n")
            offset += sum(len(line) + 1 for line in lines[:-1])  # the incomplete tail is read again next time
            if len(lines) > 1 and lines[-2]:  # the newest complete line: a writer may be halfway through the next
                pending = lines[-2].decode("utf-8", errors="replace")
            now = time.monotonic()
            if pending and now - last_print >= self.every_s:
                self.write(self.prefix + pending)
                pending, last_print = "", now
