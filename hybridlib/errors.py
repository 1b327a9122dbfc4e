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
    """An output location hybridlib may not write: another run, a folder not its own, a file, in use."""


class InputError(HybridlibError, ValueError):
    """An argument of a public function with the wrong type, shape or range (tokens, images, ...)."""


class NonFiniteLossError(HybridlibError, FloatingPointError):
    """Training produced a NaN or infinite loss or weights; the last good checkpoint is kept."""
