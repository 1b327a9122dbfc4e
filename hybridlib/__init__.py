"""hybridlib: hybrid generative-contrastive representation learning, small and reproducible.

A tutorial reproduction of Kim, Kim & Lee (2021), "Hybrid Generative-Contrastive Representation
Learning" (arXiv 2106.06162), built from its abstract: the architecture, losses and evaluation
details are this project's own design.
"""
from . import exercises, predictions
from .config import Config, DataConfig, EvalConfig, ModelConfig, TrainConfig, get_config, resolve_profile
from .errors import (
    CheckpointError, ConfigError, DataError, HybridlibError, InputError, NonFiniteLossError, RunDirectoryError,
)
from .model import HybridTransformer
from .notebook import setup

__version__ = "0.1.0"

__all__ = [
    "exercises", "predictions",
    "Config", "DataConfig", "ModelConfig", "TrainConfig", "EvalConfig", "get_config", "resolve_profile", "setup",
    "HybridTransformer",
    "HybridlibError", "ConfigError", "DataError", "CheckpointError", "RunDirectoryError", "InputError",
    "NonFiniteLossError",
]
