"""What the first code cell of every notebook does, as one call: resolve the profile once into a
full :class:`~hybridlib.config.Config`, seed, load the data, and say in one line what will run."""
from __future__ import annotations

from typing import Any

import torch

from .config import Config, get_config, resolve_profile
from .data import PreparedData, prepare_data


def setup(objective: str = "hybrid", profile: str | None = None, seed: int = 0, **settings: Any
          ) -> tuple[Config, PreparedData]:
    """The notebook's configuration and data. ``profile`` None: $HYBRIDLIB_PROFILE, else ``auto``;
    ``settings``: any setting of :func:`~hybridlib.config.get_config` (None values keep the profile's)."""
    config = get_config(resolve_profile(profile), objective, seed=seed, **settings)
    torch.manual_seed(seed)
    data = prepare_data(config.data)
    print(f"profile {config.profile}: {config.data.dataset} at {config.data.image_size}x{config.data.image_size}, "
          f"{config.train.steps} steps of batch {config.train.batch_size}")
    return config, data
