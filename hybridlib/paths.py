"""Where data, runs and results live.

Defaults are folders of the repository checkout (``data/``, ``runs/``, ``results/``), so the
notebooks, the CLI and the Makefile agree whatever the working directory. The environment
variables ``HYBRIDLIB_DATA``, ``HYBRIDLIB_RUNS`` and ``HYBRIDLIB_RESULTS`` move them (the tests
use this to stay out of the checkout). Installed outside a checkout (e.g. Colab), they are
relative to the working directory.
"""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def _dir(env: str, default: str) -> Path:
    return Path(os.environ.get(env) or repo_root() / default)


def data_dir() -> Path:
    return _dir("HYBRIDLIB_DATA", "data")


def runs_dir() -> Path:
    return _dir("HYBRIDLIB_RUNS", "runs")


def results_dir() -> Path:
    return _dir("HYBRIDLIB_RESULTS", "results")


def run_dir(profile: str, objective: str, seed: int) -> Path:
    """The conventional output folder of one training run."""
    return runs_dir() / profile / f"seed{seed}" / objective
