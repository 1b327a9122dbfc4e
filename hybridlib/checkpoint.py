"""Checkpoints that are never half-written and never execute code when loaded.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values
(the configuration as a dict), so it loads with ``weights_only=True``. It is written to a
temporary file in the same folder, flushed, fsync'ed and renamed over the old one: a crash
at any moment leaves either the previous checkpoint or the new one, never a mixture.

Loading checks everything before building anything: the embedded configuration (the same
validation as ``get_config``), then every tensor's name, shape and finiteness against it.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from .config import Config, validate
from .errors import CheckpointError, ConfigError
from .files import atomic_write
from .model import HybridTransformer

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    atomic_write(path, lambda f: torch.save({"format": FORMAT_VERSION, **state}, f))


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file safely and check it: CheckpointError if it is missing, unreadable, not
    ours, or if its configuration or weights are invalid (see :func:`check_weights`)."""
    path = Path(path)
    if path.is_dir() or (path.suffix != ".pt" and not path.exists()):  # a run folder, existing or not
        path = path / CHECKPOINT_NAME
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}; train one with `python -m hybridlib train ... --out {path.parent}`")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # torch's message runs over many lines and suggests weights_only=False
        raise CheckpointError(f"{path} is not a loadable hybridlib checkpoint: it holds something other than tensors "
                              "and plain values (it is corrupt, or holds objects that could run code), so it is not "
                              "loaded") from e
    except Exception as e:  # truncated zip, wrong file type...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else "unreadable"
        raise CheckpointError(f"{path} is not a loadable hybridlib checkpoint ({type(e).__name__}: {reason})") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION or "config" not in state:
        raise CheckpointError(f"{path} is not a hybridlib checkpoint (format {FORMAT_VERSION})")
    try:
        config = Config.from_dict(state["config"])
        validate(config)
    except ConfigError as e:
        raise CheckpointError(f"checkpoint {path} holds an invalid configuration: {e}") from e
    step = state.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"checkpoint {path} holds no valid step count; it is not a complete hybridlib checkpoint")
    check_weights(state.get("model"), config, path)
    return state


def check_weights(weights: Any, config: Config, path: Path | str) -> None:
    """CheckpointError unless ``weights`` has exactly the tensors of ``HybridTransformer(config.model)``, of
    the same shapes, all finite. The expected shapes come from a model on the meta device, which
    allocates nothing, so a hostile checkpoint cannot make us allocate memory to find out."""
    if not isinstance(weights, dict):
        raise CheckpointError(f"checkpoint {path} holds no model weights; it is not a complete hybridlib checkpoint")
    with torch.device("meta"):
        expected = HybridTransformer(config.model).state_dict()
    for name, like in expected.items():
        tensor = weights.get(name)
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise CheckpointError(f"checkpoint {path} does not fit its own model configuration: "
                                  f"tensor {name!r} is {'missing' if tensor is None else 'not a float tensor'}")
        if tensor.shape != like.shape:
            raise CheckpointError(f"checkpoint {path} does not fit its own model configuration: tensor {name!r} has "
                                  f"shape {tuple(tensor.shape)}, the configuration needs {tuple(like.shape)}")
    unexpected = next((name for name in weights if name not in expected), None)
    if unexpected is not None:
        raise CheckpointError(f"checkpoint {path} does not fit its own model configuration: "
                              f"unexpected tensor {unexpected!r}")
    non_finite = next((name for name in expected if not torch.isfinite(weights[name]).all()), None)
    if non_finite is not None:
        raise CheckpointError(f"checkpoint {path} holds NaN or infinite weights (first in {non_finite!r}); it "
                              "cannot be evaluated or resumed: train again")


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
    model.load_state_dict(state["model"])  # names and shapes were checked by load_checkpoint
    return model.to(device).eval(), config, state
