"""The project's folders: the checkout's own (``data/``, ``runs/``, ``results/``, ``.cache/``), or the ones
the environment names. Installed outside a checkout (e.g. Colab), relative to the working directory."""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def folder(env: str, default: str) -> Path:
    """``$env`` if set, else ``default`` under the checkout."""
    return Path(os.environ.get(env) or repo_root() / default)


def cache_dir() -> Path:
    """What this machine computed once and later runs reuse (``HYBRIDLIB_CACHE``, default ``.cache/``)."""
    return folder("HYBRIDLIB_CACHE", ".cache")
