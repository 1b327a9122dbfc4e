"""One optimisation step, the same for training and for the benchmark.

:class:`TrainStep` holds what a step needs (the objective, the optimizers — AdamW, or Muon for the
blocks' matrices and AdamW for the rest — the learning-rate schedule, the precision's autocast and
gradient scaler, the compiled or eager runner) and does one step per call: forward and backward,
unscale, clip, optimizer step, schedule step. The batch comes from
:class:`BatchSampler` and the views from :func:`make_views`; both are pure functions of
(seed, step, rank), which is what makes a resumed run replay an uninterrupted one.
"""
from __future__ import annotations

import logging
import math
import os
import warnings
from typing import Any, Callable

import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from .augment import random_views
from .config import Config, TrainConfig
from .errors import HybridlibError
from .hardware import autocast, autocast_dtype, can_compile, grad_scaler
from .losses import Objective
from .model import HybridTransformer
from .muon import Muon
from .paths import compile_cache_dir
from .tokenizer import Tokenizer


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
                          "(slower, same results)", stacklevel=3)
            self.compiled = None
            return step(self.module, *args)
        self.proven = True
        return out


def compile_step(module: torch.nn.Module, device: torch.device, use_compile: bool = True,
                 fallback: bool = True) -> CompiledStep:
    """The runner of a training step: compiled where asked and where torch.compile can work here
    (with a warning where it cannot), else eager.

    Compiling fuses the casts, norms, GELUs and the loss's log-softmax that otherwise cost as much
    as the matmuls at our small widths (`make bench` measures both).
    """
    usable = use_compile and can_compile(device)
    if use_compile and not usable:
        warnings.warn("torch.compile needs a C++ compiler (g++, or $CXX) on the CPU, and Triton with a GPU of "
                      "compute capability 7.0+ on CUDA; none found, so training runs uncompiled (slower, same "
                      "results).", stacklevel=3)
    if usable:
        # kernels persist in the project's cache (unless the user chose another): compiled once, not per kernel
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(compile_cache_dir()))
        # each run starts from an empty in-memory cache: a process that trains many configurations
        # (seeds, a lambda sweep) would otherwise reach dynamo's recompile limit and silently run
        # eagerly; the compiled kernels themselves stay cached on disk
        torch._dynamo.reset()
        if device.type == "cpu":
            # a CUDA build of torch on a GPU-less machine warns about CUDA_HOME: irrelevant
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            # two compiled trainings of one seed in one process differed (by 3e-6 in the weights after 30 steps of
            # the cpu profile, then drifting apart; eager ones never did): some of inductor's CPU kernels are not
            # deterministic. In deterministic mode they are equal bit for bit, at no cost `make bench` can see.
            # Process-wide, as torch has it; left alone on GPUs, where its cost was not measured.
            torch.use_deterministic_algorithms(True, warn_only=True)
    return CompiledStep(module, use_compile=usable, fallback=fallback)


def forward_backward(module: Any, inputs: tuple[Tensor | None, ...], optimizers: list[torch.optim.Optimizer],
                     scaler: torch.amp.GradScaler, amp_dtype: torch.dtype | None, device: torch.device
                     ) -> dict[str, Tensor]:
    """One step's forward under autocast and its (scaled) backward: the part that compiling covers."""
    with autocast(amp_dtype, device):
        out = module(*inputs)
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    scaler.scale(out["loss"]).backward()
    return out


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to 1, then down to ``min_lr_ratio``, which it reaches at step ``steps`` (one after the last
    update, so the last update is a little above the floor): a cosine decay (``schedule="cosine"``), or
    warmup-stable-decay (``"wsd"``): stable at 1, then linear over the last ``decay_fraction`` of the steps (where
    that overlaps the warm-up, the warm-up comes first)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "wsd":
        decay_steps = max(1, round(cfg.decay_fraction * cfg.steps))
        progress = (step - (cfg.steps - decay_steps)) / decay_steps
        return 1 - (1 - cfg.min_lr_ratio) * min(max(progress, 0.0), 1.0)
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


# the blocks' matrices (attention and MLP) and the projection head's: the hidden 2-D weights Muon is meant for
_HIDDEN_MATRIX = ("attn.qkv.weight", "attn.proj.weight", "mlp.0.weight", "mlp.2.weight", "proj_head.0.weight",
                  "proj_head.2.weight")


def parameter_groups(model: torch.nn.Module, cfg: TrainConfig) -> dict[str, list[str]]:
    """Which parameters each update rule gets, by name: ``muon`` (the hidden matrices, with ``optimizer="muon"``),
    ``decay`` (AdamW with weight decay: the other matrices, the token embedding and the output head's only with
    ``decay_embeddings``) and ``no_decay`` (AdamW without: biases, norms, the position embedding). Every
    parameter is in exactly one group."""
    groups: dict[str, list[str]] = {"muon": [], "decay": [], "no_decay": []}
    for name, p in model.named_parameters():
        hidden = name.endswith(_HIDDEN_MATRIX)
        if hidden and cfg.optimizer == "muon":
            groups["muon"].append(name)
        elif p.ndim >= 2 and not name.endswith("pos_emb") and (hidden or cfg.decay_embeddings):
            groups["decay"].append(name)
        else:
            groups["no_decay"].append(name)
    return groups


def make_optimizers(model: torch.nn.Module, cfg: TrainConfig, device: torch.device, vectorized: bool = True
                    ) -> list[torch.optim.Optimizer]:
    """AdamW over :func:`parameter_groups`' ``decay`` and ``no_decay``, and Muon (:class:`hybridlib.muon.Muon`,
    torch.optim.Muon's update) over ``muon`` where there is one.

    Muon's step is scaled to the RMS of AdamW's (``adjust_lr_fn="match_rms_adamw"``), so one ``lr`` and one
    ``weight_decay`` serve both. ``vectorized``: fused (CUDA) or foreach (CPU) AdamW updates; False is the plain
    per-parameter loop."""
    params = dict(model.named_parameters())
    groups = parameter_groups(model, cfg)
    adamw_groups = [{"params": [params[n] for n in groups["decay"]], "weight_decay": cfg.weight_decay},
                    {"params": [params[n] for n in groups["no_decay"]], "weight_decay": 0.0}]
    impl = ({"fused": True} if device.type == "cuda" else {"foreach": True}) if vectorized else {"foreach": False}
    optimizers: list[torch.optim.Optimizer] = [torch.optim.AdamW(adamw_groups, lr=cfg.lr, betas=(0.9, 0.95), **impl)]
    if groups["muon"]:
        # bf16 Newton-Schulz as torch.optim.Muon on a GPU; fp32 on a CPU, where it is many times faster
        optimizers.append(Muon([params[n] for n in groups["muon"]], lr=cfg.lr, weight_decay=cfg.weight_decay,
                               adjust_lr_fn="match_rms_adamw",
                               ns_dtype=torch.float32 if device.type == "cpu" else torch.bfloat16))
    return optimizers


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


def make_views(images: Tensor, tokenizer: Tokenizer, cfg: TrainConfig, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Two augmented views of a batch of images (N, C, H, W) in [0, 1], as tokens (N, T) each."""
    kwargs = {"crop_scale": cfg.crop_scale, "hflip": cfg.hflip, "jitter": cfg.jitter}
    # views of images in [0, 1] stay in it (up to rounding, which quantizing clamps): no value check, a host sync
    return (tokenizer.encode(random_views(images, g, **kwargs), check_values=False),
            tokenizer.encode(random_views(images, g, **kwargs), check_values=False))


class TrainStep:
    """Everything one optimisation step of ``config`` needs, built once; each call is one step.

    ``world`` > 1: the objective is wrapped in DistributedDataParallel (gradients averaged across
    the torchrun processes). ``vectorized=False`` and ``config.train.compile=False`` give the plain
    reference step `make bench` compares against.
    """

    def __init__(self, model: HybridTransformer, config: Config, device: torch.device, world: int = 1,
                 vectorized: bool = True) -> None:
        cfg = config.train
        self.model, self.cfg, self.device, self.vectorized = model, cfg, device, vectorized
        self.objective = Objective(model, cfg, config.data.dims_per_token)
        self.optimizers = make_optimizers(model, cfg, device, vectorized)
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lambda s: lr_factor(s, cfg)) for o in self.optimizers]
        self.scheduler = self.schedulers[0]  # every optimizer follows the same schedule
        self.amp_dtype = autocast_dtype(cfg.precision, device)
        self.scaler = grad_scaler(self.amp_dtype, device)  # fp16 only; a no-op otherwise
        # contrastive leaves the decoder unused and generative the projection head: DDP must know
        wrapped = self.objective if world == 1 else DistributedDataParallel(
            self.objective, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.objective != "hybrid")
        self.runner = compile_step(wrapped, device, cfg.compile, fallback=world == 1)

    @property
    def uses_views(self) -> bool:
        return self.objective.uses_views

    def __call__(self, clean: Tensor, views: tuple[Tensor | None, Tensor | None] = (None, None)) -> dict[str, Tensor]:
        """One step on clean tokens (B, T) and, for the objectives that use them, two views (B, T) each;
        returns the objective's outputs (loss terms, not synchronised to the host)."""
        self.objective.set_step(self.scheduler.last_epoch)  # the schedule's count: the steps taken so far
        out = self.runner(forward_backward, (clean, *views), self.optimizers, self.scaler, self.amp_dtype,
                          self.device)
        if self.cfg.grad_clip > 0:
            for optimizer in self.optimizers:
                self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip, foreach=self.vectorized)
        for optimizer in self.optimizers:
            self.scaler.step(optimizer)  # skipped where fp16 gradients overflowed; the scale is lowered instead
        self.scaler.update()
        with warnings.catch_warnings():
            # the schedule advances with the step count even where fp16 skipped the optimizer's step
            # (often the very first one); torch warns about that order, which is intended here
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
            for scheduler in self.schedulers:
                scheduler.step()
        return out

    def state_dict(self) -> dict[str, Any]:
        # "optimizer" is AdamW's, as in checkpoints written before Muon; Muon's state, where there is one, apart
        state = {"optimizer": self.optimizers[0].state_dict(), "scheduler": self.scheduler.state_dict(),
                 "scaler": self.scaler.state_dict()}
        if len(self.optimizers) > 1:
            state["muon"] = self.optimizers[1].state_dict()
            state["muon_scheduler"] = self.schedulers[1].state_dict()  # its own: one parameter group, not AdamW's two
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizers[0].load_state_dict(state["optimizer"])
        self.schedulers[0].load_state_dict(state["scheduler"])
        if len(self.optimizers) > 1:
            self.optimizers[1].load_state_dict(state["muon"])
            self.schedulers[1].load_state_dict(state["muon_scheduler"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    def loss_scale_collapsed(self) -> bool:
        """fp16 skips every step whose gradients overflow and halves the loss scale instead: a scale
        below 1 means dozens of skipped steps, a run that has stopped learning."""
        return self.scaler.is_enabled() and self.scaler.get_scale() < 1.0
