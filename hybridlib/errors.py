"""Typed exceptions. Each one carries a message that says what to do next.

The command line prints ``str(error)`` on one line and exits non-zero; the Python API raises.
"""
from __future__ import annotations


class HybridlibError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(HybridlibError, ValueError):
    """An unknown name or an invalid value in a configuration."""


class DataError(HybridlibError):
    """A data set that is missing, truncated or corrupt."""


class CheckpointError(HybridlibError):
    """A checkpoint that is missing, unreadable, or belongs to another model or run."""


class RunDirectoryError(HybridlibError):
    """An output directory that already holds a different run."""


class NonFiniteLossError(HybridlibError, FloatingPointError):
    """Training produced a NaN or infinite loss; the last good checkpoint is kept."""
