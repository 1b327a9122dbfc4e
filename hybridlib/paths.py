"""Where data, runs and results live.

Defaults are folders of the repository checkout (``data/``, ``runs/``, ``results/``), so the
notebooks, the CLI and the Makefile agree whatever the working directory. The environment
variables ``HYBRIDLIB_DATA``, ``HYBRIDLIB_RUNS``, ``HYBRIDLIB_RESULTS`` and ``HYBRIDLIB_CACHE`` move them (the tests
use this to stay out of the checkout). Installed outside a checkout (e.g. Colab), they are
relative to the working directory.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from .config import Config, get_config
from .folders import cache_dir, folder

# derived from the data (vocab_size, seq_len) or a speed setting (compile): never part of a run's name
_NOT_IN_NAMES = ("vocab_size", "seq_len", "pixel_levels", "token_pixels", "compile")


def data_dir() -> Path:
    return folder("HYBRIDLIB_DATA", "data")


def compile_cache_dir() -> Path:
    """Where torch.compile keeps the kernels it built (``HYBRIDLIB_CACHE``, default ``.cache/`` of the
    checkout): every notebook kernel and every later run finds them there instead of compiling again."""
    return cache_dir() / "torchinductor"


def runs_dir() -> Path:
    return folder("HYBRIDLIB_RUNS", "runs")


def results_dir() -> Path:
    return folder("HYBRIDLIB_RESULTS", "results")


def run_dir(profile: str, objective: str, seed: int) -> Path:
    """The conventional output folder of one training run."""
    return runs_dir() / profile / f"seed{seed}" / objective


def run_dir_for(config: Config, ignore: tuple[str, ...] = (), always: tuple[str, ...] = (),
                default: Config | None = None) -> Path:
    """The folder of a configuration's run: :func:`run_dir` for the profile's own settings; with other
    settings their values are appended (``hybrid-steps100-lam0.3``), so variants never share a folder.
    Settings in ``ignore`` are left out of the name (the CLI leaves out ``steps``, which --resume may grow), those
    in ``always`` named even at their default (the name a run had when the default was another). ``default``: the
    configuration the name counts differences from (the profile's for the run's objective and seed)."""
    default = default or get_config(config.profile, config.train.objective, seed=config.train.seed)
    changed = [f"{key}{value}" for section in ("data", "model", "train")
               for key, value in asdict(getattr(config, section)).items()
               if key not in _NOT_IN_NAMES + ignore
               and (key in always or getattr(getattr(default, section), key) != value)]
    return run_dir(config.profile, "-".join([config.train.objective, *changed]), config.train.seed)


def results_stem(stem: str, config: Config) -> str:
    """A result file's name for ``config``: ``stem`` for the profile's own settings at seed 0 (the committed results),
    else with the other settings and the seed appended (``tradeoff-steps100-seed1``), so a variant never replaces
    them."""
    variant = run_dir_for(config).name.removeprefix(config.train.objective)
    return stem + variant + (f"-seed{config.train.seed}" if config.train.seed else "")
