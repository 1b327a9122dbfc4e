"""Which dtype the matmuls run in: bf16 autocast where the hardware has native bf16, else fp32."""
from __future__ import annotations

import contextlib

import torch


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels here (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """"bf16": always; "auto": on CUDA and on CPUs with native bf16 (measured faster by `make bench`
    on such a CPU); "fp32": never. None means no autocast."""
    if precision == "bf16" or (precision == "auto" and (device.type == "cuda" or cpu_has_fast_bf16())):
        return torch.bfloat16
    return None


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    dtype = autocast_dtype(precision, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
