"""Which dtype the matmuls run in, chosen by what the device really has.

- bf16 autocast where the hardware has native bf16: NVIDIA GPUs from Ampere on (compute capability
  8.0+), and CPUs whose oneDNN has bf16 kernels (AVX512-BF16 or AMX);
- fp16 autocast with a gradient scaler on older GPUs (a T4 is 7.5): fp16's narrow exponent range
  underflows small gradients unless the loss is scaled up first;
- fp32 everywhere else (bf16 emulated on a CPU without it is slower than fp32).
"""
from __future__ import annotations

import contextlib

import torch

from .errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels here (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cuda_has_bf16(device: torch.device) -> bool:
    """Native bf16 tensor cores: compute capability 8.0 (Ampere) or newer. Older GPUs emulate bf16,
    and Triton refuses to compile bf16 kernels for them."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device``; None means fp32 (no autocast).

    "auto": bf16 where native (see the module docstring), else fp16 on CUDA, else fp32.
    "bf16" on a GPU without native bf16 is refused with a line saying what to use instead.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        if precision == "bf16" and not cuda_has_bf16(device):
            major, minor = torch.cuda.get_device_capability(device)
            raise ConfigError(f"this GPU (compute capability {major}.{minor}) has no native bf16; "
                              "use --precision fp16 or auto")
        if precision == "auto":
            return torch.bfloat16 if cuda_has_bf16(device) else torch.float16
        return _DTYPES[precision]
    if precision == "auto":
        return torch.bfloat16 if cpu_has_fast_bf16() else None
    return _DTYPES[precision]


def autocast(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``, or nothing for fp32 (``dtype`` None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(dtype: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for fp16 only (bf16 has fp32's exponent range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
