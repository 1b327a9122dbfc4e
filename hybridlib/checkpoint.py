"""Checkpoints that are never half-written and never execute code when loaded.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values
(the configuration as a dict), so it loads with ``weights_only=True``. It is written to a
temporary file in the same folder, flushed, fsync'ed and renamed over the old one: a crash
at any moment leaves either the previous checkpoint or the new one, never a mixture.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .config import Config
from .errors import CheckpointError
from .model import HybridTransformer

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(file_object)`` on a temporary file, fsync it, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)  # make the rename itself durable
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    atomic_write(path, lambda f: torch.save({"format": FORMAT_VERSION, **state}, f))


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file safely; CheckpointError if it is missing, truncated or not ours."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}; train one with `python -m hybridlib train ... --out {path.parent}`")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, pickle with code in it, wrong file type...
        raise CheckpointError(f"{path} is not a loadable hybridlib checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION or "config" not in state:
        raise CheckpointError(f"{path} is not a hybridlib checkpoint (format {FORMAT_VERSION})")
    return state


def config_differences(a: Config, b: Config, ignore: tuple[str, ...] = ()) -> list[str]:
    """Human-readable 'section.field: x != y' for each field where two configurations differ."""
    da, db = a.to_dict(), b.to_dict()
    diffs = [f"profile: {da['profile']!r} != {db['profile']!r}"] if da["profile"] != db["profile"] else []
    for section in ("data", "model", "train"):
        for key, value in da[section].items():
            if key not in ignore and db[section].get(key) != value:
                diffs.append(f"{section}.{key}: {value!r} != {db[section].get(key)!r}")
    return diffs


def load_model(path: Path | str, device: str | torch.device = "cpu", expected: Config | None = None
               ) -> tuple[HybridTransformer, Config, dict[str, Any]]:
    """Build the model a checkpoint describes and load its weights: (model in eval mode, config, state).

    With ``expected``, the checkpoint's model and data configuration must match it; the error
    names every mismatching field.
    """
    state = load_checkpoint(path)
    config = Config.from_dict(state["config"])
    if expected is not None:
        diffs = [d for d in config_differences(config, expected) if d.startswith(("model.", "data."))]
        if diffs:
            raise CheckpointError(f"checkpoint {path} does not match the expected model: " + "; ".join(diffs))
    model = HybridTransformer(config.model)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path} does not fit its own model configuration: {e}") from e
    return model.to(device).eval(), config, state
