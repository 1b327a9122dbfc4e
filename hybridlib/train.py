"""The training loop shared by the three objectives, on one device or many (torchrun + DDP), and
:func:`ensure_trained`, which loads a finished run or trains (or resumes) it.

Everything random in a step (which images, which crops) is a pure function of (seed, step, rank),
so a run resumed from a checkpoint replays exactly what the uninterrupted run would have done:
on the CPU the final weights are equal bit for bit.

    python -m hybridlib train --objective hybrid --profile smoke --out runs/x
    torchrun --nproc_per_node=2 -m hybridlib train --objective hybrid --profile smoke --out runs/x
"""
from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from .checkpoint import CHECKPOINT_NAME, config_differences, load_checkpoint, save_checkpoint
from .config import Config, trains_decoder, validate
from .data import PreparedData, prepare_data
from .errors import CheckpointError, ConfigError, NonFiniteLossError, RunDirectoryError
from .files import remove_stale_temp_files, write_text
from .flops import ESTIMATE_MFU, estimate_train_minutes
from .hardware import autocast_dtype, matmul_peak, resolve_device
from .model import HybridTransformer
from .paths import run_dir_for
from .progress import announce
from .rundir import check_run_dir, hold_run_dir
from .shipped import find_shipped
from .step import BatchSampler, TrainStep, make_views, step_generator
from .validation import VAL_FIELDS, Validator

HISTORY_NAME = "history.csv"
CONFIG_NAME = "config.json"
HISTORY_FIELDS = ("step", "loss", "gen_nll", "bits_per_dim", "con_loss", "lr", "img_per_s", "elapsed_s", *VAL_FIELDS)
LOSS_TERMS = ("loss", "gen_nll", "bits_per_dim", "con_loss")
SNAPSHOT_SAMPLES = 8  # images sampled at every checkpoint of a run that trains the decoder
NOTEBOOK_OF = {"contrastive": "02_contrastive.ipynb", "generative": "03_generative.ipynb", "hybrid": "04_hybrid.ipynb"}


@dataclass
class TrainResult:
    out_dir: Path
    config: Config
    model: HybridTransformer  # unwrapped, in eval mode
    history: list[dict[str, float]]
    step: int
    wall_time_s: float  # summed over the run's sessions when resumed
    start_step: int = 0  # the step this call started from: > 0 when resumed, == step when there was nothing to do
    samples: dict[int, torch.Tensor] = field(default_factory=dict)  # step -> (SNAPSHOT_SAMPLES, T) tokens
    shipped: Path | None = None  # the shipped weights it was loaded from (hybridlib/shipped.py), if so

    @property
    def checkpoint(self) -> Path:
        return self.shipped or self.out_dir / CHECKPOINT_NAME


def sample_snapshot(model: HybridTransformer, seed: int) -> torch.Tensor:
    """SNAPSHOT_SAMPLES images' tokens (SNAPSHOT_SAMPLES, T) sampled from ``model`` as it is now, always from
    the same random numbers (a generator seeded with ``seed``, apart from training's): the snapshots of one
    run differ only by what training changed."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)  # a CPU generator: sampling draws on the CPU on any device
    tokens = model.generate(SNAPSHOT_SAMPLES, generator=generator)
    model.train(was_training)
    return tokens.cpu()

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


def write_history(history: list[dict[str, float]], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    write_text(path, buf.getvalue())


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
    diffs = _setting_differences(_settings_of(state), config)
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
    if data is not None and data.config != config.data:
        raise ConfigError(f"the data passed to train were prepared for {data.config}, not for this configuration's "
                          f"{config.data}: pass prepare_data(config.data), or no data")
    out_dir = Path(out_dir)
    device = resolve_device(device)
    rank, world = _init_distributed(device)
    with hold_run_dir(out_dir) if rank == 0 else contextlib.nullcontext():
        return _train(config, out_dir, resume, overwrite, progress, device, data, rank, world)


def _restore(state: dict[str, Any], model: HybridTransformer, train_step: TrainStep, path: Path
             ) -> tuple[int, list[dict[str, float]], float]:
    """Load a checkpoint's weights, optimizer, schedule, scaler and random state: (step, history, wall time)."""
    model.load_state_dict(state["model"])  # names, shapes and finiteness were checked by load_checkpoint
    try:
        train_step.load_state_dict(state)
        torch.set_rng_state(state["rng_torch"])
        return state["step"], list(state["history"]), float(state["wall_time_s"])
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"cannot resume {path}: its optimizer or random state does not fit this model "
                              f"({type(e).__name__}); pass --overwrite to start afresh") from e


def _check_finite(train_step: TrainStep, first_bad_step: torch.Tensor, out_dir: Path, last_logged: int,
                  done: int) -> None:
    """NonFiniteLossError if the loss or the weights became NaN or infinite, or fp16's loss scale collapsed.

    A finite loss can still have a NaN gradient, which makes the weights NaN: they are checked too,
    before any checkpoint is written and before the run is reported as done.
    """
    weights_finite = torch.stack([torch.isfinite(p).all() for p in train_step.model.parameters()]).all()
    bad, finite = torch.stack([first_bad_step, weights_finite.long()]).tolist()  # the one host sync
    collapsed = train_step.loss_scale_collapsed()
    if bad < 0 and finite and not collapsed:
        return
    kept = f"the last good checkpoint {out_dir / CHECKPOINT_NAME} is kept" if \
        (out_dir / CHECKPOINT_NAME).exists() else "no checkpoint was written"
    what = f"loss became NaN or infinite at step {bad}" if bad >= 0 else \
        f"weights became NaN or infinite between steps {last_logged} and {done} (from the gradient)" \
        if not finite else f"fp16 gradients overflowed at nearly every step up to step {done} " \
        f"(the loss scale fell to {train_step.scaler.get_scale():.2g})"
    remedy = "--precision fp32 (or bf16 where the GPU has it) or a lower --lr" if train_step.scaler.is_enabled() \
        else "a lower --lr"
    raise NonFiniteLossError(f"the {train_step.cfg.objective} {what}; {kept}. "
                             f"Check the data, or start a new run with {remedy} (another --out).")


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
    train_step = TrainStep(model, config, device, world)
    start_step, history, wall_before, samples = 0, [], 0.0, {}
    if state is not None:
        start_step, history, wall_before = _restore(state, model, train_step, out_dir / CHECKPOINT_NAME)
        samples = dict(state.get("samples", {}))
    if rank == 0 and len(data.train_tokens) < cfg.batch_size:
        warnings.warn(f"{len(data.train_tokens)} training images for batches of {cfg.batch_size}: every batch repeats "
                      "images (and contrastive negatives include copies of the positive); use a smaller "
                      "--batch-size or a larger --n-train", stacklevel=3)
    if rank == 0:
        write_text(out_dir / CONFIG_NAME, json.dumps(config.to_dict(), indent=2))

    validator = Validator(config, data) if cfg.eval_every and rank == 0 else None
    sampler = BatchSampler(len(data.train_tokens), cfg.batch_size, cfg.seed, rank, world)
    train_images = data.train_images.to(device)
    train_tokens = data.train_tokens.to(device)

    def save(step: int, wall_time: float) -> None:
        if rank == 0:
            save_checkpoint({
                "config": config.to_dict(), "step": step, "model": model.state_dict(), **train_step.state_dict(),
                "rng_torch": torch.get_rng_state(), "history": history, "wall_time_s": wall_time,
                "samples": samples,
            }, out_dir / CHECKPOINT_NAME)
            write_history(history, out_dir / HISTORY_NAME)
        if world > 1:
            dist.barrier()

    sums = torch.zeros(len(LOSS_TERMS), device=device)  # summed on the device: no host sync per step
    first_bad_step = torch.full((), -1, device=device)
    t0 = t_log = time.perf_counter()
    last_logged = start_step
    train_step.objective.train()
    bar = tqdm(range(start_step, cfg.steps), initial=start_step, total=cfg.steps, disable=not progress or rank != 0,
               desc=f"{cfg.objective} [{config.profile}]", unit="step")
    for step in bar:
        idx = sampler(step).to(device)
        views = make_views(train_images[idx], data.tokenizer, cfg, step_generator(cfg.seed, step, rank)) \
            if train_step.uses_views else (None, None)
        out = train_step(train_tokens[idx], views)
        first_bad_step = torch.where((first_bad_step < 0) & ~torch.isfinite(out["loss"].detach()),
                                     torch.full_like(first_bad_step, step), first_bad_step)
        sums += torch.stack([out[k].detach().float() if k in out else torch.zeros((), device=device)
                             for k in LOSS_TERMS])

        done = step + 1
        validating = validator is not None and (done % cfg.eval_every == 0 or done == cfg.steps)
        if done % cfg.log_every == 0 or done % cfg.checkpoint_every == 0 or done == cfg.steps or validating:
            _check_finite(train_step, first_bad_step, out_dir, last_logged, done)
            now = time.perf_counter()
            means = (sums / (done - last_logged)).tolist()
            row = {"step": done, **{k: v for k, v in zip(LOSS_TERMS, means) if k == "loss" or k in out},
                   "lr": train_step.scheduler.get_last_lr()[0],
                   "img_per_s": cfg.batch_size * (done - last_logged) / (now - t_log),
                   "elapsed_s": wall_before + (now - t0)}
            if validating:
                row.update(validator(model))
                spent = time.perf_counter() - now
                t0, now = t0 + spent, now + spent  # validating is neither training time nor throughput
            history.append(row)
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k in ("loss", "bits_per_dim", "img_per_s")})
            if rank == 0:
                left_min = (now - t0) / (done - start_step) * (cfg.steps - done) / 60
                announce(f"{cfg.objective} [{config.profile}] step {done}/{cfg.steps}: loss {row['loss']:.3f}, "
                         f"{row['img_per_s']:.0f} img/s, about {left_min:.0f} min left")
            sums.zero_()
            t_log, last_logged = now, done
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                if rank == 0 and trains_decoder(cfg.objective):
                    spent = time.perf_counter()
                    samples[done] = sample_snapshot(model, cfg.seed)
                    spent = time.perf_counter() - spent
                    t0, t_log = t0 + spent, t_log + spent  # sampling is neither training time nor throughput
                save(done, row["elapsed_s"])
    bar.close()
    # the training time the last checkpoint holds (a finished run read back later reports the same)
    wall_time = history[-1]["elapsed_s"] if history else wall_before
    return TrainResult(out_dir, config, model.eval(), history, max(start_step, cfg.steps), wall_time, start_step,
                       samples)


def _checkpoint_in(folder: Path) -> dict[str, Any] | None:
    """The checkpoint in ``folder``, read, if there is one."""
    return load_checkpoint(folder) if (folder / CHECKPOINT_NAME).exists() else None


def _settings_of(state: dict[str, Any] | None) -> Config | None:
    """The configuration a checkpoint was trained with (None: no checkpoint)."""
    return Config.from_dict(state["config"]) if state is not None else None


def _setting_differences(a: Config, b: Config) -> list[str]:
    """What keeps a run of ``a`` from being one of ``b`` (its budget, which a resume may grow, and whether it
    compiles aside)."""
    return config_differences(a, b, ignore=("steps", "compile"))


def _same_settings(a: Config | None, b: Config) -> bool:
    return a is not None and not _setting_differences(a, b)


def _move_run(source: Path, target: Path, steps: int) -> dict[str, Any]:
    """Move the run of ``steps`` steps in ``source`` to ``target``, holding it (not while another process trains in
    it): its checkpoint, as read under the hold; CheckpointError where ``target`` is taken, nothing moved."""
    with hold_run_dir(source):
        state = _checkpoint_in(source)
        saved = _settings_of(state)
        if saved is None or saved.train.steps != steps:  # changed before the folder was ours
            raise CheckpointError(f"{source} changed while hybridlib meant to move it; run again")
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise CheckpointError(f"{source} holds a run of these settings for {steps} steps, and {target}, where such "
                                  "a run belongs now, is taken too: move one of them elsewhere")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                target.rmdir()
            source.rename(target)
        except OSError as e:
            raise CheckpointError(f"could not move {source} to {target}: {e.strerror}; move it by hand") from None
    print(f"the run of these settings for {steps} steps moved from {source} to {target}, where it belongs now",
          flush=True)
    return state


def _put_runs_in_place(config: Config, out_dir: Path) -> dict[str, Any] | None:
    """Runs named under an earlier default budget, put where :func:`run_dir_for` looks now: a run in ``out_dir`` for
    another number of steps moves to that budget's folder (it is never continued to this one: a model of neither
    schedule); a run for these steps under the name an earlier default gave it moves into ``out_dir``. Returns the
    checkpoint ``out_dir`` then holds, read once (None: none)."""
    state = _checkpoint_in(out_dir)
    if state is not None:
        saved = _settings_of(state)
        if not (_same_settings(saved, config) and saved.train.steps != config.train.steps):
            return state
        _move_run(out_dir, run_dir_for(saved), saved.train.steps)
    for old in (run_dir_for(config, ignore=("steps",)), run_dir_for(config, always=("steps",))):
        if old != out_dir:
            saved = _settings_of(_checkpoint_in(old))
            if _same_settings(saved, config) and saved.train.steps == config.train.steps:
                return _move_run(old, out_dir, config.train.steps)
    return None


@functools.cache
def _estimate_peak(dtype: torch.dtype, device: torch.device) -> float:
    """:func:`matmul_peak`, measured once per process (seconds each time): enough for a rough estimate of minutes,
    and a study of many runs does not pay it per run."""
    return matmul_peak(dtype, device)


def ensure_trained(config: Config, data: PreparedData | None = None, progress: bool = True,
                   train_missing: bool = True, device: str | torch.device | None = None, shipped: bool = True
                   ) -> TrainResult:
    """The finished run of ``config`` in its folder (:func:`hybridlib.paths.run_dir_for`), read once.

    Missing: the repository's shipped weights of exactly this configuration where there are some and
    ``shipped`` (hybridlib/shipped.py), after one line saying so. Otherwise, or unfinished (a notebook opened on
    its own, on Colab say): trained here, resuming what is there, after one line saying roughly how long that
    takes; with ``train_missing=False``, one clear error saying what to run instead. Runs named under an earlier
    default budget are first put where they belong (:func:`_put_runs_in_place`).
    """
    out_dir = run_dir_for(config)
    state = _put_runs_in_place(config, out_dir)
    done = state["step"] if state is not None else 0
    same = _same_settings(_settings_of(state), config)
    if same and done >= config.train.steps:
        model = HybridTransformer(config.model)
        model.load_state_dict(state["model"])  # checked by load_checkpoint
        return TrainResult(out_dir, config, model.to(resolve_device(device)).eval(), read_history(out_dir), done,
                           float(state["wall_time_s"]), done, dict(state.get("samples", {})))
    found = find_shipped(config) if shipped and not (same and done) else None  # one's own run first
    if found is not None:
        path, found = found
        print(f"no finished run of these settings in {out_dir}: using the weights shipped with the repository, {path}"
              " (trained by `make reproduce`); the notebook trains its own when you change a setting", flush=True)
        model = HybridTransformer(config.model)
        model.load_state_dict(found["model"])  # half precision, cast to the model's by copy_
        return TrainResult(out_dir, config, model.to(resolve_device(device)).eval(), list(found["history"]),
                           found["step"], float(found["wall_time_s"]), found["step"], dict(found["samples"]), path)
    objective, profile, seed = config.train.objective, config.profile, config.train.seed
    if not train_missing:
        raise CheckpointError(
            f"no finished {objective} model for profile {profile!r} seed {seed} in {out_dir}: run notebooks/"
            f"{NOTEBOOK_OF[objective]} or `python -m hybridlib train --objective {objective} --profile {profile}"
            f" --seed {seed} --resume`")
    target = resolve_device(device)
    peak = _estimate_peak(autocast_dtype(config.train.precision, target) or torch.float32, target)
    # devices without a measured utilisation (mps ...) get the accelerator's assumption
    minutes = estimate_train_minutes(config, peak, ESTIMATE_MFU.get(target.type, ESTIMATE_MFU["cuda"]),
                                     steps=config.train.steps - (done if same else 0))
    print(f"no finished {objective} model in {out_dir}: training it here (the run of notebooks/"
          f"{NOTEBOOK_OF[objective]}, from step {done if same else 0}), roughly {minutes:.0f} min on this machine "
          "plus compiling", flush=True)
    return train(config, out_dir, resume=state is not None, progress=progress, device=device, data=data)
