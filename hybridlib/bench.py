"""`make bench`: the training step, measured against a naive reference and the machine's own limit.

For each objective at the cpu profile's shapes (and the GPU profiles' when CUDA is present):

- ``img_per_s``: images per second of our step (augmentation, tokenization, forward, backward, AdamW),
  median of several timed repetitions after warm-up; the step is compiled where the profile compiles
  (``compiled``), and the first step, which pays for compiling, is reported apart (``first_step_s``);
- ``reference_img_per_s``: the same step done naively: fp32, minGPT-style attention with an explicit
  mask and softmax, augmentation one image at a time with torchvision, for-loop AdamW;
- ``speedup`` = their ratio (both measured in the same run: absolute times drift on shared machines);
- ``head``: the output head (:mod:`hybridlib.heads`); where the profile's tokens are patches of several
  pixels, both heads are measured, each against the one reference of the original (joint-head) model,
  so the work the pixel head saves shows in ``speedup`` and ``gflop_per_image``;
- ``mfu``: model FLOPs per second (counted from the architecture: :mod:`hybridlib.flops`) / the
  measured peak of a large matmul in the step's dtype;
- ``reference_mfu``: the reference's FLOP/s over the fp32 matmul peak, and ``speedup_at_full_mfu``:
  our dtype's peak over the reference's FLOP/s, the ceiling of ``speedup`` for any implementation of
  the same model on this machine (``speedup`` = ``mfu`` x ``speedup_at_full_mfu`` for the joint head);
- ``peak_mem_mb``: the step's peak memory above what was allocated before it (CUDA: the allocator's
  peak; CPU: the process's peak resident memory, each case run in its own process);
- ``eval_s``: seconds to evaluate one model of the case on every axis at the profile's protocol
  (an untrained model: the work is the same), on the profile's data where it is on disk.

``bench_recipe.json``: for a profile that adopted the recipe study's result (cpu), the training step of today's
recipe against the recipe before the study (:func:`hybridlib.config.recipe_baseline`), side by side in one process,
in fp32 and, where the machine picks it, bf16: ``ratio`` = new img/s / old img/s (the same model, so the same
FLOPs per image but for Muon's Newton-Schulz iterations and QK-norm).

Synthetic images of the right shape are used for the step, so that part needs no data set.
"""
from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from .config import (GPU_PROFILES, HEADS, OBJECTIVES, RECIPE_BASELINES, Config, EvalConfig, TrainConfig, get_config,
                     recipe_baseline, trains_decoder)
from .data import prepare_data
from .errors import ConfigError, DataError
from .evaluate import evaluate_model
from .files import write_json
from .flops import model_flops_per_step
from .hardware import cpu_model, autocast_dtype, matmul_peak, synchronize
from .model import HybridTransformer
from .muon import Muon
from .paths import results_dir
from .step import TrainStep, make_views, parameter_groups, step_generator
from .tokenizer import GrayTokenizer, PaletteTokenizer, Tokenizer

WARMUP, REPEATS, STEPS_PER_REPEAT = 3, 5, 3


class NaiveAttention(torch.nn.Module):
    """minGPT's attention: explicit causal mask, softmax, and two matmuls."""

    def __init__(self, fast: torch.nn.Module, max_len: int) -> None:
        super().__init__()
        self.n_head, self.qkv, self.proj = fast.n_head, fast.qkv, fast.proj
        self.register_buffer("mask", torch.tril(torch.ones(max_len, max_len)).view(1, 1, max_len, max_len))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.proj(y.transpose(1, 2).contiguous().view(b, t, d))


def _per_image_views(images: torch.Tensor, cfg: TrainConfig, g: torch.Generator) -> torch.Tensor:
    """The reference's augmentation: torchvision v2 transforms called once per image."""
    size = images.shape[-1]
    transform = v2.Compose([
        v2.RandomResizedCrop(size, scale=(cfg.crop_scale, 1.0), antialias=True),
        v2.RandomHorizontalFlip() if cfg.hflip else v2.Identity(),
        v2.ColorJitter(brightness=cfg.jitter, contrast=cfg.jitter),
    ])
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
    return torch.stack([transform(img) for img in images])


def _case_step(config: Config, device: torch.device, reference: bool):
    """The training step of one case, on synthetic images of the profile's shape: (step(i), TrainStep)."""
    cfg, d = config.train, config.data
    torch.manual_seed(0)
    model = HybridTransformer(config.model).to(device)
    if reference:
        for block in [*model.encoder, *model.decoder]:
            block.attn = NaiveAttention(block.attn, config.model.seq_len + 1).to(device)
    train_step = TrainStep(model, config, device, vectorized=not reference)
    images = torch.rand(cfg.batch_size * 4, d.channels, d.image_size, d.image_size, device=device)
    tokenizer: Tokenizer = GrayTokenizer(d.levels, d.patch_size) if d.channels == 1 else \
        PaletteTokenizer(torch.rand(d.palette_size, 3))
    tokens = tokenizer.encode(images)

    def step(i: int) -> None:
        idx = torch.arange(i % 4 * cfg.batch_size, (i % 4 + 1) * cfg.batch_size, device=device)
        g = step_generator(0, i, 0)
        views: tuple[Any, Any] = (None, None)
        if train_step.uses_views:
            views = tuple(tokenizer.encode(_per_image_views(images[idx], cfg, g)) for _ in range(2)) if reference \
                else make_views(images[idx], tokenizer, cfg, g)
        train_step(tokens[idx], views)

    return step, train_step


def _time_steps(step, device: torch.device, batch_size: int, quick: bool) -> dict[str, float]:
    """The first step's time (it compiles), then img/s (median of repeats) and the steps' peak memory (MB)."""
    warmup, repeats = (1, 2) if quick else (WARMUP, REPEATS)
    t0 = time.perf_counter()
    step(0)
    synchronize(device)
    first_step_s = time.perf_counter() - t0
    for i in range(1, warmup):
        step(i)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_mem = torch.cuda.memory_allocated()
    else:
        base_mem = _rss_mb()
    rates = []
    for r in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        for i in range(STEPS_PER_REPEAT):
            step(warmup + r * STEPS_PER_REPEAT + i)
        synchronize(device)
        rates.append(batch_size * STEPS_PER_REPEAT / (time.perf_counter() - t0))
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base_mem) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base_mem
    return {"img_per_s": statistics.median(rates), "peak_mem_mb": peak, "first_step_s": first_step_s}


def _run_case(objective: str, profile: str, head: str, reference: bool, device_name: str, quick: bool
              ) -> dict[str, Any]:
    """Time one case in this process: its img/s, peak memory, first step, dtype and FLOPs per step."""
    device = torch.device(device_name)
    config = get_config(profile, objective, head=head, **({"precision": "fp32", "compile": False} if reference else {}))
    step, train_step = _case_step(config, device, reference)
    timed = _time_steps(step, device, config.train.batch_size, quick)
    return {**timed, "dtype": str(train_step.amp_dtype or torch.float32).replace("torch.", ""),
            "flops_per_step": model_flops_per_step(config), "batch_size": config.train.batch_size,
            "compiled": train_step.runner.compiled is not None}


def recipe_throughputs(configs: dict[str, Config], device_name: str = "cpu", rounds: int = 2, quick: bool = False
                       ) -> dict[str, float]:
    """img/s of each configuration's training step, measured side by side in this process: every step built and
    compiled first, then timed in turn, ``rounds`` times (the median of all repeats), so that the machine's state
    is the same for all of them."""
    device = torch.device(device_name)
    steps = {name: _case_step(config, device, False)[0] for name, config in configs.items()}
    rates: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(rounds):
        for name, step in steps.items():
            rates[name].append(_time_steps(step, device, configs[name].train.batch_size, quick)["img_per_s"])
    return {name: statistics.median(r) for name, r in rates.items()}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _case_in_subprocess(objective: str, profile: str, head: str, reference: bool, device: str, quick: bool,
                        compile_cache: str | None = None) -> dict[str, Any]:
    """One case in a fresh process (its own peak memory; no warm state); ``compile_cache``: the compiled
    kernels' cache folder it uses (default: the project's, see paths.compile_cache_dir)."""
    code = ("import json,sys; from hybridlib.bench import _run_case; "
            f"print(json.dumps(_run_case({objective!r}, {profile!r}, {head!r}, {reference}, {device!r}, {quick})))")
    env = {**os.environ, **({"TORCHINDUCTOR_CACHE_DIR": compile_cache} if compile_cache else {})}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ours_cold_and_warm(objective: str, profile: str, head: str, device: str, quick: bool
                        ) -> tuple[dict[str, Any], float]:
    """Our case run twice on one fresh compile cache: (the warm run's measurements, the cold run's first step s).
    The first run compiles from nothing, as on a new machine; the second finds the kernels on disk, as every
    later notebook and run does."""
    with tempfile.TemporaryDirectory(prefix="hybridlib-compile-cache-") as cache:
        cold = _case_in_subprocess(objective, profile, head, False, device, quick, cache)
        if not cold["compiled"]:
            return cold, cold["first_step_s"]
        return _case_in_subprocess(objective, profile, head, False, device, quick, cache), cold["first_step_s"]


def run_benchmarks(out: Path | None = None, quick: bool = False, objectives: tuple[str, ...] = OBJECTIVES,
                   profiles: list[str] | None = None, heads: tuple[str, ...] = HEADS) -> list[dict[str, Any]]:
    """Every case of ``profiles`` (default: cpu, and the GPU profiles when CUDA is present), each on its device,
    with each of ``heads`` the profile's tokens allow."""
    profiles = profiles or ["cpu"] + (list(GPU_PROFILES) if torch.cuda.is_available() else [])
    gpu = [p for p in profiles if p in GPU_PROFILES]
    if gpu and not torch.cuda.is_available():
        raise ConfigError(f"the {', '.join(gpu)} benchmark needs CUDA, and none is available here; bench --profiles cpu")
    devices = [(profile, "cuda" if profile in GPU_PROFILES else "cpu") for profile in profiles]
    peaks: dict[tuple[str, str], float] = {}
    rows = []
    for profile, device in devices:
        # every output head the profile's tokens allow (pixels: tokens of several pixels), against the one reference
        # of the original model (the joint head)
        usable = heads if get_config(profile).model.token_pixels > 1 else ("joint",)
        for objective in objectives:
            ref = _case_in_subprocess(objective, profile, "joint", True, device, quick)
            for head in usable:
                ours, first_step_cold = _ours_cold_and_warm(objective, profile, head, device, quick)
                for dtype in (ours["dtype"], ref["dtype"]):
                    if (device, dtype) not in peaks:
                        peaks[device, dtype] = matmul_peak(getattr(torch, dtype), torch.device(device))
                rows.append(_row(objective, profile, head, device, ours, ref, first_step_cold, peaks))
                rows[-1]["eval_s"] = _eval_seconds(get_config(profile, objective).with_model(head=head), device, quick)
                print(_format_row(rows[-1]), flush=True)
    extra = _logged_times()
    extra["muon_step_s"] = {profile: muon_step_seconds(profile, device, quick) for profile, device in devices}
    out = out or results_dir() / "bench.json"
    recipe = recipe_step_ratios([p for p in profiles if p in RECIPE_BASELINES], quick, objectives)
    write_json(out, rows)
    write_json(out.with_name("bench_times.json"), extra)
    write_json(out.with_name("bench_recipe.json"), recipe)
    for line in _format_times(extra):
        print(line)
    print(f"wrote {out}")
    return rows


def recipe_step_ratios(profiles: list[str], quick: bool = False, objectives: tuple[str, ...] = OBJECTIVES
                       ) -> dict[str, Any]:
    """Each objective's training step, today's recipe against :func:`recipe_baseline`'s, timed side by side in this
    process (:func:`recipe_throughputs`) in fp32 and in the machine's own precision where that is another."""
    device = torch.device("cpu")
    auto = autocast_dtype("auto", device)
    precisions = ["fp32"] + ([str(auto).replace("torch.", "").replace("bfloat16", "bf16")] if auto else [])
    out: dict[str, Any] = {"cpu": cpu_model(), "torch": torch.__version__, "rows": []}
    for profile in profiles:
        for precision in precisions:
            for objective in objectives:
                new = get_config(profile, objective, precision=precision)
                rates = recipe_throughputs({"old": recipe_baseline(new), "new": new}, "cpu",
                                           rounds=1 if quick else 2, quick=quick)
                out["rows"].append({"profile": profile, "objective": objective, "precision": precision,
                                    "old_img_per_s": round(rates["old"], 1), "new_img_per_s": round(rates["new"], 1),
                                    "ratio": round(rates["new"] / rates["old"], 3)})
                r = out["rows"][-1]
                print(f"recipe step {objective}/{profile} {precision}: old {r['old_img_per_s']:.0f} img/s, new "
                      f"{r['new_img_per_s']:.0f} img/s, ratio {r['ratio']:.2f}", flush=True)
    return out


def muon_step_seconds(profile: str, device_name: str, quick: bool = False) -> dict[str, float]:
    """Seconds per Muon step over the profile's hidden matrices (random gradients): torch.optim.Muon against
    :class:`hybridlib.muon.Muon` with its Newton-Schulz iteration in bf16 and in fp32, timed in turn."""
    device = torch.device(device_name)
    config = get_config(profile, "hybrid", optimizer="muon")
    model = HybridTransformer(config.model).to(device)
    named = dict(model.named_parameters())
    params = [named[n] for n in parameter_groups(model, config.train)["muon"]]
    for p in params:
        p.grad = torch.randn_like(p)
    kwargs = {"lr": config.train.lr, "weight_decay": config.train.weight_decay, "adjust_lr_fn": "match_rms_adamw"}
    optimizers = {"torch.optim.Muon": torch.optim.Muon(params, **kwargs),
                  "hybridlib bf16": Muon(params, ns_dtype=torch.bfloat16, **kwargs),
                  "hybridlib fp32": Muon(params, ns_dtype=torch.float32, **kwargs)}
    times = {}
    for name, optimizer in optimizers.items():  # the model is thrown away: its weights need no restoring
        optimizer.step()  # the momentum buffers and any lazy initialisation
        synchronize(device)
        t0 = time.perf_counter()
        n = 2 if quick else 5
        for _ in range(n):
            optimizer.step()
        synchronize(device)
        times[name] = round((time.perf_counter() - t0) / n, 4)
    return times


QUICK_EVAL = EvalConfig(n_probe_train=300, n_test=200, n_ood=50, n_corrupt=20)


def _eval_seconds(config: Config, device: str, quick: bool) -> float | None:
    """Seconds to evaluate an untrained model of ``config`` on every axis (None, with a line saying so, where the
    profile's data is not on disk: the benchmark never downloads)."""
    try:
        data = _prepared(config)
    except DataError:
        print(f"{config.data.dataset} is not on disk: no evaluation time (`make data` fetches it)")
        return None
    torch.manual_seed(0)
    model = HybridTransformer(config.model).to(device)
    cfg = QUICK_EVAL if quick else config.eval
    result = evaluate_model(model, data, "bench", cfg, trains_decoder(config.train.objective), progress=False)
    return round(result["eval_time_s"], 1)


_DATA: dict[Any, Any] = {}


def _prepared(config: Config):
    """The profile's data, prepared once per process."""
    if config.data not in _DATA:
        _DATA[config.data] = prepare_data(config.data, download=False)
    return _DATA[config.data]


def _row(objective: str, profile: str, head: str, device: str, ours: dict[str, Any], ref: dict[str, Any],
         first_step_cold: float, peaks: dict[tuple[str, str], float]) -> dict[str, Any]:
    """One case's line of bench.json from our and the reference's measurements."""
    peak, ref_peak = peaks[device, ours["dtype"]], peaks[device, ref["dtype"]]
    flops_per_s = ours["flops_per_step"] * ours["img_per_s"] / ours["batch_size"]
    ref_flops_per_s = ref["flops_per_step"] * ref["img_per_s"] / ref["batch_size"]
    return {
        "case": f"{objective}/{profile}" + ("" if head == "joint" else f"/{head}"), "objective": objective,
        "profile": profile, "head": head, "device": device,
        "dtype": ours["dtype"], "img_per_s": round(ours["img_per_s"], 1),
        "reference_img_per_s": round(ref["img_per_s"], 1),
        "speedup": round(ours["img_per_s"] / ref["img_per_s"], 2),
        "model_gflop_per_s": round(flops_per_s / 1e9, 1), "peak_gflop_per_s": round(peak / 1e9, 1),
        "mfu": round(flops_per_s / peak, 3),
        # the reference's own utilisation of its dtype's peak, and the speedup our step would
        # reach at 100 % MFU: the ceiling any implementation of the same model has on this machine
        "reference_mfu": round(ref_flops_per_s / ref_peak, 3),
        "speedup_at_full_mfu": round(peak / ref_flops_per_s, 2),
        "peak_mem_mb": round(ours["peak_mem_mb"], 1),
        "reference_peak_mem_mb": round(ref["peak_mem_mb"], 1),
        "gflop_per_image": round(ours["flops_per_step"] / ours["batch_size"] / 1e9, 3),
        "compiled": ours["compiled"], "first_step_s_cold": round(first_step_cold, 1),
        "first_step_s_warm": round(ours["first_step_s"], 1),
    }


def _format_row(r: dict[str, Any]) -> str:
    return (f"{r['case']:29s} {r['device']:4s} {r['dtype']:8s} {r['img_per_s']:8.1f} img/s  reference "
            f"{r['reference_img_per_s']:7.1f}  speedup {r['speedup']:5.2f}x (at most {r['speedup_at_full_mfu']:.1f}x)"
            f"  MFU {100 * r['mfu']:5.1f} % of {r['peak_gflop_per_s']:.0f} GFLOP/s  peak mem {r['peak_mem_mb']:.0f} MB"
            + (f"  (compiled; first step {r['first_step_s_cold']:.0f} s cold, {r['first_step_s_warm']:.0f} s with "
               "the compile cache)" if r["compiled"] else "")
            + (f"  evaluation {r['eval_s']:.0f} s" if r.get("eval_s") is not None else ""))


def _logged_times() -> dict[str, Any]:
    """Evaluation and `make reproduce` wall times of the default profile, from their own logs."""
    out: dict[str, Any] = {}
    base = results_dir() / "cpu"
    if (base / "summary.json").exists():
        summary = json.loads((base / "summary.json").read_text())
        out["eval_time_s"] = {k: round(v.get("eval_time_s", float("nan")), 1) for k, v in summary["models"].items()}
    if (base / "reproduce_log.json").exists():
        out["reproduce_log"] = json.loads((base / "reproduce_log.json").read_text())
    return out


def _format_times(extra: dict[str, Any]) -> list[str]:
    if not extra:
        return ["(no cpu-profile run logged yet: run `make reproduce` for evaluation and reproduce times)"]
    lines = []
    if "eval_time_s" in extra:
        lines.append("evaluation wall time per model (cpu profile): "
                     + ", ".join(f"{k} {v:.0f} s" for k, v in extra["eval_time_s"].items()))
    for profile, times in extra.get("muon_step_s", {}).items():
        lines.append(f"Muon step over the {profile} profile's hidden matrices: "
                     + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in times.items()))
    if "reproduce_log" in extra:
        lines.append(f"make reproduce (cpu profile) wall time: {extra['reproduce_log']['wall_time_s'] / 60:.1f} min")
    return lines
