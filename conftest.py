"""The environment of every item pytest collects: the unit tests in tests/ and the notebooks nbval runs.

Set when pytest starts, before anything is collected: nbval's notebook cells take no fixtures, and each
notebook's kernel inherits os.environ when it starts. So a notebook tested on its own (`pytest --nbval-lax
notebooks/01_data_and_tokens.ipynb`) runs as under `make test`: smoke profile unless one is given, runs,
results and shipped weights in a temporary folder, never the checkout's runs/, results/ and checkpoints/, and the
checkout's own hybridlib. The data stays shared (read-only here; the smoke profile's digits come with
scikit-learn), and so does the compile cache (.cache/, kernels a later run can reuse).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent
_saved: dict[str, str | None] = {}
_base: list[Path] = []


def _set(name: str, value: str) -> None:
    _saved.setdefault(name, os.environ.get(name))
    os.environ[name] = value


def pytest_configure(config) -> None:
    base = Path(tempfile.mkdtemp(prefix="hybridlib-tests-"))
    _base.append(base)
    _set("HYBRIDLIB_RUNS", str(base / "runs"))
    _set("HYBRIDLIB_RESULTS", str(base / "results"))
    _set("HYBRIDLIB_CHECKPOINTS", str(base / "checkpoints"))  # no test or notebook loads the checkout's shipped weights
    _set("HYBRIDLIB_PROFILE", os.environ.get("HYBRIDLIB_PROFILE") or "smoke")
    # kernels and subprocesses import this checkout's hybridlib, as the tests in this process do, even where
    # the environment's editable install points to another checkout
    _set("PYTHONPATH", os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))


def pytest_unconfigure(config) -> None:
    for name, value in _saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved.clear()
    for base in _base:
        shutil.rmtree(base, ignore_errors=True)
    _base.clear()
