"""Shared fixtures and helpers. Tests are offline and use the embedded digits (smoke profile) only; the
environment they run in (where runs and results go) is set for every test and notebook by ../conftest.py."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from hybridlib.cli import main
from hybridlib.config import get_config
from hybridlib.data import prepare_data

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def smoke_config():
    return get_config("smoke", "hybrid")


@pytest.fixture(scope="session")
def smoke_data(smoke_config):
    return prepare_data(smoke_config.data)


def python_cmd(*args: str) -> list[str]:
    return [sys.executable, *args]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **extra}
    return env


def state_dicts_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def cli(capsys, *args) -> tuple[int, str, list[str]]:
    """Run the command line in this process: (exit status, stdout, stderr lines)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def assert_one_line_error(result, message, code=1):
    status, _, err = result
    assert status == code and len(err) == 1 and message in err[0], err
