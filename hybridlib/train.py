"""The training loop shared by the three objectives, on one device or many (torchrun + DDP).

Everything random in a step (which images, which crops) is a pure function of (seed, step, rank),
so a run resumed from a checkpoint replays exactly what the uninterrupted run would have done:
on the CPU the final weights are equal bit for bit.

    python -m hybridlib train --objective hybrid --profile smoke --out runs/x
    torchrun --nproc_per_node=2 -m hybridlib train --objective hybrid --profile smoke --out runs/x
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils._triton import has_triton
from tqdm.auto import tqdm

from .augment import random_views
from .checkpoint import (
    CHECKPOINT_NAME, atomic_write, config_differences, load_checkpoint, remove_stale_temp_files, save_checkpoint,
)
from .config import Config, TrainConfig, validate
from .data import PreparedData, prepare_data
from .errors import CheckpointError, ConfigError, HybridlibError, NonFiniteLossError, RunDirectoryError
from .losses import Objective
from .model import HybridTransformer
from .precision import autocast, autocast_dtype, grad_scaler
from .paths import compile_cache_dir
from .rundir import check_run_dir, hold_run_dir


HISTORY_NAME = "history.csv"
CONFIG_NAME = "config.json"
HISTORY_FIELDS = ("step", "loss", "gen_nll", "bits_per_dim", "con_loss", "lr", "img_per_s", "elapsed_s")


@dataclass
class TrainResult:
    out_dir: Path
    config: Config
    model: HybridTransformer  # unwrapped, in eval mode
    history: list[dict[str, float]]
    step: int
    wall_time_s: float  # summed over the run's sessions when resumed
    start_step: int = 0  # the step this call started from: > 0 when resumed, == step when there was nothing to do

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME


def default_device() -> torch.device:
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


class CompiledStep:
    """Runs a training step with ``torch.compile(module)``, falling back to ``module`` itself when
    compiling fails.

    Compiling happens at the first forward and the first backward, so a missing compiler, a dtype
    the GPU's compiler refuses or a Triton error surfaces in the first step, not at ``torch.compile``.
    Then this warns once and runs the same step eagerly from then on (slower, same results): never a
    crash in a student's notebook. Only the first step falls back: once a compiled step has run, an
    error is a real one and is raised, and so is any error of ours (bad input) and running out of
    memory. ``fallback=False`` (several processes under DDP, whose reducer cannot redo a half-done
    step) raises every error. ``dynamic=False``: every batch has the same shape, and a process that
    trains two configurations gets a fixed-shape graph for each instead of a symbolic one.
    """

    def __init__(self, module: torch.nn.Module, use_compile: bool = True, fallback: bool = True) -> None:
        self.module, self.fallback, self.proven = module, fallback, False
        self.compiled: Any = torch.compile(module, dynamic=False) if use_compile else None

    def __call__(self, step: Callable[..., Any], *args: Any) -> Any:
        """``step(module, *args)`` does the forward and backward with the module it is given."""
        if self.compiled is None:
            return step(self.module, *args)
        try:
            out = step(self.compiled, *args)
        except (HybridlibError, torch.cuda.OutOfMemoryError):
            raise
        except Exception as e:  # backend, lowering and Triton errors have no common base class
            if self.proven or not self.fallback:
                raise
            reason = (str(e).strip().splitlines() or [""])[0][:200]
            warnings.warn(f"torch.compile failed ({type(e).__name__}: {reason}); training runs uncompiled "
                          "(slower, same results)", stacklevel=2)
            self.compiled = None
            return step(self.module, *args)
        self.proven = True
        return out


def compile_step(module: torch.nn.Module, device: torch.device, use_compile: bool = True,
                 fallback: bool = True) -> CompiledStep:
    """The runner of a training step: compiled where asked and where torch.compile can work here
    (with a warning where it cannot), else eager.

    Compiling fuses the casts, norms, GELUs and the loss's log-softmax that otherwise cost as much
    as the matmuls at our small widths (see `make bench`).
    """
    usable = use_compile and can_compile(device)
    if use_compile and not usable:
        warnings.warn("torch.compile needs a C++ compiler (g++, or $CXX) on the CPU, and Triton with a GPU of "
                      "compute capability 7.0+ on CUDA; none found, so training runs uncompiled (slower, same "
                      "results).", stacklevel=2)
    if usable:
        # kernels persist in the project's cache (unless the user chose another): compiled once, not per kernel
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(compile_cache_dir()))
        # each run starts from an empty in-memory cache: a process that trains many configurations
        # (seeds, a lambda sweep) would otherwise reach dynamo's recompile limit and silently run
        # eagerly; the compiled kernels themselves stay cached on disk
        torch._dynamo.reset()
        if device.type == "cpu":  # a CUDA build of torch on a GPU-less machine warns about CUDA_HOME: irrelevant
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    return CompiledStep(module, use_compile=usable, fallback=fallback)


def forward_backward(module: Any, inputs: tuple[Tensor | None, ...], optimizer: torch.optim.Optimizer,
                     scaler: torch.amp.GradScaler, amp_dtype: torch.dtype | None, device: torch.device
                     ) -> dict[str, Tensor]:
    """One step's forward under autocast and its (scaled) backward: the part that compiling covers.
    The optimizer's step, with unscaling and clipping, follows in the caller."""
    with autocast(amp_dtype, device):
        out = module(*inputs)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(out["loss"]).backward()
    return out


def _init_distributed(device: torch.device) -> tuple[int, int]:
    """Join the torchrun process group if launched by torchrun: (rank, world size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cpu":  # share the cores instead of oversubscribing them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world))))
    return dist.get_rank(), world


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_lr_ratio`` at the last step."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on biases, norms or embeddings' positions)."""
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and not n.endswith("pos_emb")]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or n.endswith("pos_emb")]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    impl = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), **impl)


class BatchSampler:
    """Indices of the training images of each step: a fresh permutation per epoch, seeded by (seed, epoch)."""

    def __init__(self, n_items: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.n_items, self.batch_size, self.seed, self.rank, self.world = n_items, batch_size, seed, rank, world
        self.steps_per_epoch = max(1, n_items // batch_size)
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def __call__(self, step: int) -> Tensor:
        epoch = step // self.steps_per_epoch
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n_items, generator=g)
        start = (step % self.steps_per_epoch) * self.batch_size
        idx = self._perm[start : start + self.batch_size]
        if len(idx) < self.batch_size:  # fewer images than one batch: sample with wrap-around
            idx = self._perm[torch.arange(start, start + self.batch_size) % self.n_items]
        return idx[self.rank :: self.world]  # this process's share of the global batch


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The generator of one step's augmentations: a pure function of (seed, step, rank)."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 64 + rank) % (2**63))


def make_views(images: Tensor, data: PreparedData, cfg: TrainConfig, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Two augmented views of a batch of images, as tokens."""
    kwargs = {"crop_scale": cfg.crop_scale, "hflip": cfg.hflip, "jitter": cfg.jitter}
    # views of images in [0, 1] stay in it (up to rounding, which quantizing clamps): no value check, a host sync
    return (data.tokenizer.encode(random_views(images, g, **kwargs), check_values=False),
            data.tokenizer.encode(random_views(images, g, **kwargs), check_values=False))


def write_history(history: list[dict[str, float]], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    atomic_write(path, lambda f: f.write(buf.getvalue().encode()))


def read_history(out_dir: Path | str) -> list[dict[str, float]]:
    """The metrics history a run wrote beside its checkpoint (empty cells become NaN)."""
    with open(Path(out_dir) / HISTORY_NAME, newline="") as f:
        return [{k: float(v) if v != "" else float("nan") for k, v in row.items()} for row in csv.DictReader(f)]


def _prepare_out_dir(out_dir: Path, config: Config, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Check the output folder (held by this process: see :func:`train`); the checkpoint to resume from,
    or None to start afresh."""
    check_run_dir(out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    if not ckpt_path.exists():
        if resume:
            warnings.warn(f"nothing to resume in {out_dir} (no checkpoint): a new run starts at step 0", stacklevel=4)
        return None
    if not resume:
        if overwrite:
            return None
        raise RunDirectoryError(
            f"{out_dir} already holds a run; pass --resume to continue it or --overwrite to replace it"
        )
    state = load_checkpoint(ckpt_path)
    diffs = config_differences(Config.from_dict(state["config"]), config, ignore=("steps", "compile"))
    if diffs:
        raise CheckpointError(f"cannot resume {ckpt_path}: it was trained with a different configuration ("
                              + "; ".join(diffs) + "); use another --out or pass --overwrite")
    missing = [k for k in ("optimizer", "scheduler", "rng_torch", "history", "wall_time_s") if k not in state]
    if missing:
        raise CheckpointError(f"cannot resume {ckpt_path}: it holds no {', '.join(missing)}; "
                              "pass --overwrite to start afresh")
    return state


def train(
    config: Config,
    out_dir: Path | str,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    device: str | torch.device | None = None,
    data: PreparedData | None = None,
) -> TrainResult:
    """Train ``config.train.objective`` for ``config.train.steps`` steps, checkpointing into ``out_dir``.

    resume: continue from ``out_dir/checkpoint.pt`` (same configuration; ``steps`` may grow; with no
    checkpoint there, a warning and a new run). overwrite: replace a run already in ``out_dir``.
    Without either, an existing run is refused, so nothing is lost by a typo. ``out_dir`` must be
    new, empty or a hybridlib run folder (see :mod:`hybridlib.rundir`), and is held for the whole
    training: a second process training into it is refused.
    """
    validate(config)
    out_dir = Path(out_dir)
    device = resolve_device(device)
    rank, world = _init_distributed(device)
    with hold_run_dir(out_dir) if rank == 0 else contextlib.nullcontext():
        return _train(config, out_dir, resume, overwrite, progress, device, data, rank, world)


def _train(config: Config, out_dir: Path, resume: bool, overwrite: bool, progress: bool, device: torch.device,
           data: PreparedData | None, rank: int, world: int) -> TrainResult:
    cfg = config.train
    if cfg.batch_size % world:
        raise ConfigError(f"batch_size {cfg.batch_size} is not divisible by the {world} processes")
    state = _prepare_out_dir(out_dir, config, resume, overwrite)
    if rank == 0:
        remove_stale_temp_files(out_dir, (CHECKPOINT_NAME, HISTORY_NAME, CONFIG_NAME))

    torch.manual_seed(cfg.seed)
    data = data if data is not None else prepare_data(config.data)
    model = HybridTransformer(config.model).to(device)
    objective = Objective(model, cfg, config.data.dims_per_token)
    optimizer = make_optimizer(model, cfg, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    amp_dtype = autocast_dtype(cfg.precision, device)
    scaler = grad_scaler(amp_dtype, device)  # fp16 only; a no-op otherwise
    start_step, history, wall_before = 0, [], 0.0
    if state is not None:
        model.load_state_dict(state["model"])  # names, shapes and finiteness were checked by load_checkpoint
        try:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng_torch"])
            if scaler.is_enabled() and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            start_step, history, wall_before = state["step"], list(state["history"]), float(state["wall_time_s"])
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise CheckpointError(f"cannot resume {out_dir / CHECKPOINT_NAME}: its optimizer or random state does not "
                                  f"fit this model ({type(e).__name__}); pass --overwrite to start afresh") from e
    if rank == 0 and len(data.train_tokens) < cfg.batch_size:
        warnings.warn(f"{len(data.train_tokens)} training images for batches of {cfg.batch_size}: every batch repeats "
                      "images (and contrastive negatives include copies of the positive); use a smaller "
                      "--batch-size or a larger --n-train", stacklevel=3)
    if rank == 0:
        atomic_write(out_dir / CONFIG_NAME, lambda f: f.write(json.dumps(config.to_dict(), indent=2).encode()))

    # contrastive leaves the decoder unused and generative the projection head: DDP must know
    wrapped = objective if world == 1 else DistributedDataParallel(
        objective, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=cfg.objective != "hybrid")
    runner = compile_step(wrapped, device, cfg.compile, fallback=world == 1)
    sampler = BatchSampler(len(data.train_tokens), cfg.batch_size, cfg.seed, rank, world)
    train_images = data.train_images.to(device)
    train_tokens = data.train_tokens.to(device)

    def save(step: int, elapsed: float) -> None:
        if rank == 0:
            save_checkpoint({
                "config": config.to_dict(), "step": step, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "rng_torch": torch.get_rng_state(), "history": history,
                "wall_time_s": wall_before + elapsed,
            }, out_dir / CHECKPOINT_NAME)
            write_history(history, out_dir / HISTORY_NAME)
        if world > 1:
            dist.barrier()

    terms = ("loss", "gen_nll", "bits_per_dim", "con_loss")
    sums = torch.zeros(len(terms), device=device)  # summed on the device: no host sync per step
    first_bad_step = torch.full((), -1, device=device)
    t0 = t_log = time.perf_counter()
    last_logged = start_step
    objective.train()
    bar = tqdm(range(start_step, cfg.steps), initial=start_step, total=cfg.steps, disable=not progress or rank != 0,
               desc=f"{cfg.objective} [{config.profile}]", unit="step")
    for step in bar:
        idx = sampler(step).to(device)
        clean = train_tokens[idx]
        views = make_views(train_images[idx], data, cfg, step_generator(cfg.seed, step, rank)) \
            if objective.uses_views else (None, None)
        out = runner(forward_backward, (clean, *views), optimizer, scaler, amp_dtype, device)
        first_bad_step = torch.where((first_bad_step < 0) & ~torch.isfinite(out["loss"].detach()),
                                     torch.full_like(first_bad_step, step), first_bad_step)
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip, foreach=True)
        scaler.step(optimizer)  # skipped where fp16 gradients overflowed; the scale is lowered instead
        scaler.update()
        with warnings.catch_warnings():
            # the schedule advances with the step count even where fp16 skipped the optimizer's step
            # (often the very first one); torch warns about that order, which is intended here
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            scheduler.step()
        sums += torch.stack([out[k].detach().float() if k in out else torch.zeros((), device=device) for k in terms])

        done = step + 1
        if done % cfg.log_every == 0 or done % cfg.checkpoint_every == 0 or done == cfg.steps:
            # a finite loss can still have a NaN gradient, which makes the weights NaN: check them too,
            # before any checkpoint is written and before the run is reported as done
            weights_finite = torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all()
            bad, finite = torch.stack([first_bad_step, weights_finite.long()]).tolist()  # the one host sync
            # fp16 skips every step whose gradients overflow and halves the loss scale instead: a scale
            # below 1 means dozens of skipped steps, a run that has stopped learning
            collapsed = scaler.is_enabled() and scaler.get_scale() < 1.0
            if bad >= 0 or not finite or collapsed:
                kept = f"the last good checkpoint {out_dir / CHECKPOINT_NAME} is kept" if \
                    (out_dir / CHECKPOINT_NAME).exists() else "no checkpoint was written"
                what = f"loss became NaN or infinite at step {bad}" if bad >= 0 else \
                    f"weights became NaN or infinite between steps {last_logged} and {done} (from the gradient)" \
                    if not finite else f"fp16 gradients overflowed at nearly every step up to step {done} " \
                    f"(the loss scale fell to {scaler.get_scale():.2g})"
                remedy = "--precision fp32 (or bf16 where the GPU has it) or a lower --lr" if scaler.is_enabled() \
                    else "a lower --lr"
                raise NonFiniteLossError(f"the {cfg.objective} {what}; {kept}. "
                                         f"Check the data, or start a new run with {remedy} (another --out).")
            now = time.perf_counter()
            means = (sums / (done - last_logged)).tolist()
            row = {"step": done, **{k: v for k, v in zip(terms, means) if k == "loss" or k in out},
                   "lr": scheduler.get_last_lr()[0], "img_per_s": cfg.batch_size * (done - last_logged) / (now - t_log),
                   "elapsed_s": wall_before + now - t0}
            history.append(row)
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k in ("loss", "bits_per_dim", "img_per_s")})
            sums.zero_()
            t_log, last_logged = now, done
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                save(done, now - t0)
    bar.close()
    return TrainResult(out_dir, config, model.eval(), history, max(start_step, cfg.steps),
                       wall_before + time.perf_counter() - t0, start_step)
