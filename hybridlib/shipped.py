"""Pretrained weights that ship with the repository, so that a class can evaluate without training first.

``make reproduce`` on the published profile ends by writing, for each objective, the weights of its seed-0 run
to ``checkpoints/<profile>/<objective>.pt`` (half precision, with the run's configuration, history and sample
snapshots: a few MB, no optimizer state). :func:`hybridlib.train.ensure_trained` prefers a run of the user's
own, then these weights when their configuration is exactly the one asked for, and only then trains.
``HYBRIDLIB_CHECKPOINTS`` moves the folder; ``HYBRIDLIB_USE_SHIPPED=0`` ignores it (``make reproduce`` sets it: a
reproduction trains its models).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .checkpoint import CHECKPOINT_NAME, config_differences, load_checkpoint, save_checkpoint
from .config import OBJECTIVES, Config, get_config
from .errors import CheckpointError
from .folders import folder
from .paths import run_dir_for

MAX_MB = 10  # every shipped file stays below this (the test checks it)
USE_ENV = "HYBRIDLIB_USE_SHIPPED"


def shipped_dir() -> Path:
    return folder("HYBRIDLIB_CHECKPOINTS", "checkpoints")


def shipped_path(profile: str, objective: str) -> Path:
    return shipped_dir() / profile / f"{objective}.pt"


def ship(profile: str, objectives: tuple[str, ...] = OBJECTIVES, seed: int = 0) -> list[Path]:
    """Write the shipped weights of the profile's default run of each objective (which must be finished)."""
    written = []
    for objective in objectives:
        config = get_config(profile, objective, seed=seed)
        state = load_checkpoint(run_dir_for(config) / CHECKPOINT_NAME)
        if state["step"] < config.train.steps:
            raise CheckpointError(f"the {objective} run of profile {profile!r} stopped at step {state['step']} of "
                                  f"{config.train.steps}; finish it (`make reproduce`) before shipping its weights")
        path = shipped_path(profile, objective)
        save_checkpoint({"config": state["config"], "step": state["step"], "wall_time_s": state["wall_time_s"],
                         "history": state["history"], "samples": state.get("samples", {}),
                         "model": {k: v.half() for k, v in state["model"].items()}}, path)
        written.append(path)
    return written


def find_shipped(config: Config) -> tuple[Path, dict[str, Any]] | None:
    """The shipped file and state for exactly ``config`` (a finished run of it), or None (also where
    $HYBRIDLIB_USE_SHIPPED is 0)."""
    path = shipped_path(config.profile, config.train.objective)
    if os.environ.get(USE_ENV, "1") == "0" or not path.exists():
        return None
    state = load_checkpoint(path)
    if config_differences(Config.from_dict(state["config"]), config, ignore=("compile",)):
        return None
    return path, state
