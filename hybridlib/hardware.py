"""What this machine can do: which device runs the work, which dtype its matmuls use, and whether
torch.compile can build kernels for it.

Precision, chosen by what the device really has:

- bf16 autocast where the hardware has native bf16: NVIDIA GPUs from Ampere on (compute capability
  8.0+), and CPUs whose oneDNN has bf16 kernels (AVX512-BF16 or AMX);
- fp16 autocast with a gradient scaler on older GPUs (a T4 is 7.5): fp16's narrow exponent range
  underflows small gradients unless the loss is scaled up first;
- fp32 everywhere else: on CPUs without bf16 kernels (emulated bf16 is slow), and on CPUs whose bf16
  kernels are not clearly faster than their fp32 ones (measured once per machine and remembered: some
  virtual machines expose AVX512-BF16 but run bf16 matrix products slower than fp32).
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import shutil
import statistics
import time
from pathlib import Path

import torch
from torch.utils._triton import has_triton

from .errors import ConfigError
from .files import write_json
from .folders import cache_dir

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def default_device() -> torch.device:
    """This process's GPU under torchrun (LOCAL_RANK), else the first GPU, else the CPU."""
    if "LOCAL_RANK" in os.environ and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a torch.device (None: :func:`default_device`); ConfigError if this machine has no such device."""
    if device is None:
        return default_device()
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(device)!r}: CUDA is not available on this machine; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                          "numbered from cuda:0")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {str(device)!r}: MPS is not available on this machine; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {str(device)!r} is not supported; use cpu, cuda or cuda:N")
    return device


def can_compile(device: torch.device) -> bool:
    """Whether torch.compile can build kernels here: a C++ compiler on the CPU; Triton and a GPU it
    supports (compute capability 7.0 or newer) on CUDA."""
    if device.type == "cuda":
        return has_triton() and torch.cuda.get_device_capability(device) >= (7, 0)
    return shutil.which(os.environ.get("CXX", "g++")) is not None


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels here (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


BF16_MIN_SPEEDUP = 1.3  # bf16 autocast on a CPU only where its matmuls are this much faster than fp32


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously): before and after a timed region."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, device: torch.device, size: int | None = None) -> float:
    """FLOP/s of a large square matmul: the practical peak of this machine in this dtype.
    A GPU needs a larger matrix than a CPU (8192 vs 2048) to reach its peak."""
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(5):
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        synchronize(device)
        times.append((time.perf_counter() - t0) / 4)
    return 2 * size**3 / statistics.median(times)


@functools.cache
def cpu_bf16_is_faster() -> bool:
    """Native bf16 kernels whose matrix products beat fp32's by ``BF16_MIN_SPEEDUP`` here.

    Measured once per machine (about a second) and remembered in ``.cache/hardware.json``, keyed by the CPU
    model and the torch version. A measurement taken while another process shares the cores is noise (between
    1.1x and 1.8x on one machine, against the 1.3x threshold), and a choice remade per process would train the
    same configuration and seed in bf16 one time and in fp32 the next: different numbers with nothing changed.
    """
    if not cpu_has_fast_bf16():
        return False
    path, key = cache_dir() / "hardware.json", f"{cpu_model()} | torch {torch.__version__}"
    known = json.loads(path.read_text()) if path.exists() else {}
    if key not in known:
        cpu = torch.device("cpu")
        bf16, fp32 = matmul_peak(torch.bfloat16, cpu, 1024), matmul_peak(torch.float32, cpu, 1024)
        known[key] = {"bf16_faster": bf16 >= BF16_MIN_SPEEDUP * fp32, "bf16_gflops": round(bf16 / 1e9, 1),
                      "fp32_gflops": round(fp32 / 1e9, 1)}
        write_json(path, known)
    return bool(known[key]["bf16_faster"])


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform says."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cuda_has_bf16(device: torch.device) -> bool:
    """Native bf16 tensor cores: compute capability 8.0 (Ampere) or newer. Older GPUs emulate bf16,
    and Triton refuses to compile bf16 kernels for them."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device``; None means fp32 (no autocast).

    "auto": bf16 where native and faster (see the module docstring), else fp16 on CUDA, else fp32.
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
        return torch.bfloat16 if cpu_bf16_is_faster() else None
    return _DTYPES[precision]


def autocast(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``, or nothing for fp32 (``dtype`` None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(dtype: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for fp16 only (bf16 has fp32's exponent range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
