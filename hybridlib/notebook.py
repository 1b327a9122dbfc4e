"""What the first code cell of every notebook does, as one call: resolve the profile once into a
full :class:`~hybridlib.config.Config`, seed, load the data, and say in one line what will run."""
from __future__ import annotations

import os
import sys
from typing import Any

import torch

from .config import Config, get_config, resolve_profile
from .data import PreparedData, prepare_data


COLAB_PROFILE = "cpu"  # its trained weights ship with the repository: on Colab they load instead of training


def notebook_profile(profile: str | None) -> str:
    """``profile``, else $HYBRIDLIB_PROFILE, else the cpu profile on Colab (whatever its runtime: the weights that
    ship with the repository are the cpu profile's), else ``auto``."""
    if profile is None and not os.environ.get("HYBRIDLIB_PROFILE") and "google.colab" in sys.modules:
        print(f'on Colab: the {COLAB_PROFILE} profile, whose trained weights came with the repository '
              '(PROFILE = "gpu-small" in the parameters cell trains CIFAR-10 on a GPU runtime instead)')
        return COLAB_PROFILE
    return resolve_profile(profile)


def setup(objective: str = "hybrid", profile: str | None = None, seed: int = 0, **settings: Any
          ) -> tuple[Config, PreparedData]:
    """The notebook's configuration and data. ``profile`` None: $HYBRIDLIB_PROFILE, else the cpu profile on Colab,
    else ``auto``; ``settings``: any setting of :func:`~hybridlib.config.get_config` (None values keep the
    profile's)."""
    config = get_config(notebook_profile(profile), objective, seed=seed, **settings)
    torch.manual_seed(seed)
    data = prepare_data(config.data)
    print(f"profile {config.profile}: {config.data.dataset} at {config.data.image_size}x{config.data.image_size}, "
          f"{config.train.steps} steps of batch {config.train.batch_size}")
    return config, data
