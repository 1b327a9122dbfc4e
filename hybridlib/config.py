"""Configuration: three profiles from one switch, plus validated overrides.

A profile fixes data, model and training budget so that the three objectives
(contrastive, generative, hybrid) differ only in their loss:

- ``smoke``: seconds on a laptop; scikit-learn's embedded 8x8 digits. For tests.
- ``cpu``:   real results on 2 CPU cores; Fashion-MNIST at 14x14, 8 grey levels.
- ``gpu-small``: a free Colab GPU (T4) or any GPU under 40 GB or older than Ampere; CIFAR-10 at
  16x16 with a 512-colour (9-bit) k-means palette; each training notebook in a class slot.
- ``gpu``:   one large modern GPU (A100, H100); CIFAR-10 at 32x32, the same palette.

``auto`` picks by the hardware: :func:`resolve_profile`. The environment variable
``HYBRIDLIB_PROFILE`` sets the default for the notebooks and the CLI.
"""
from __future__ import annotations

import math
import os
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch

from .errors import ConfigError
from .hardware import PRECISIONS, cuda_has_bf16

OBJECTIVES = ("contrastive", "generative", "hybrid")


def trains_decoder(objective: str) -> bool:
    """Whether an objective trains the decoder (and so has a likelihood worth evaluating)."""
    return objective != "contrastive"


GPU_PROFILES = ("gpu-small", "gpu")
PROFILES = ("smoke", "cpu", *GPU_PROFILES)
PROFILE_CHOICES = PROFILES + ("auto",)
DATASETS = ("digits", "fashion-mnist", "mnist", "kmnist", "cifar10", "cifar100", "svhn")
RGB_DATASETS = ("cifar10", "cifar100", "svhn")
HEADS = ("joint", "pixels")
POOLS = ("mean", "last")
SCHEDULES = ("cosine", "wsd")
OPTIMIZERS = ("adamw", "muon")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"
    image_size: int = 8  # images are resized to image_size x image_size
    levels: int = 4  # grey levels per pixel (grayscale data sets)
    palette_size: int = 512  # k-means colours (RGB data sets); 512 = 9 bits as in iGPT
    patch_size: int = 1  # pixels per token side; a token is a patch_size x patch_size block
    n_train: int | None = None  # use the first n_train training images (None: all)
    n_val: int = 0  # the last n_val training images are held out as the validation set (never trained on)

    @property
    def channels(self) -> int:
        return 3 if self.dataset in RGB_DATASETS else 1

    @property
    def vocab_size(self) -> int:
        """Number of distinct image tokens."""
        if self.channels == 3:
            return self.palette_size
        return self.levels ** (self.patch_size**2)

    @property
    def seq_len(self) -> int:
        """Number of image tokens per image."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def token_shape(self) -> dict[str, int]:
        """What the model's token settings follow: vocabulary, tokens per image, and a token as
        ``token_pixels`` values of ``pixel_levels`` levels each (an RGB palette token: one value)."""
        pixels, levels = (1, self.palette_size) if self.channels == 3 else (self.patch_size**2, self.levels)
        return {"vocab_size": self.vocab_size, "seq_len": self.seq_len, "pixel_levels": levels, "token_pixels": pixels}

    @property
    def dims_per_token(self) -> int:
        """Pixel-channel values one token stands for: bits/dim divides by this."""
        return self.patch_size**2 * self.channels


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 256
    seq_len: int = 16  # image tokens per image (the model sees one more: a start token)
    d_model: int = 32
    n_head: int = 2
    n_encoder_layers: int = 1
    n_decoder_layers: int = 1
    proj_dim: int = 32  # output size of the contrastive projection head
    dropout: float = 0.0
    head: str = "joint"  # "joint": one softmax over all token values; "pixels": a token's pixels one by one (heads.py)
    pixel_levels: int = 256  # a token is token_pixels values of pixel_levels levels (both follow the data)
    token_pixels: int = 1
    head_width: int = 1  # the pixel head's hidden layer: head_width x d_model units
    pool: str = "mean"  # the representation: "mean" over the encoder's positions, or its "last" one (has seen all)
    qk_norm: bool = False  # RMS-normalise each head's queries and keys before attention (QK-norm)
    zero_init_proj: bool = False  # the residual branches' output projections start at zero (each block starts as
    # the identity) instead of GPT-2's depth-scaled normal
    contrastive_block: bool = False  # the representation passes through a block of its own (that the decoder does not
    # read) before pooling: the contrastive branch does not share the top of the encoder (docs/controls.md)


@dataclass(frozen=True)
class TrainConfig:
    objective: str = "hybrid"
    seed: int = 0
    steps: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # the schedule ends at lr * min_lr_ratio
    warmup_steps: int = 5
    schedule: str = "cosine"  # after the warm-up: "cosine" decay, or "wsd" (stable at lr, then a linear decay)
    decay_fraction: float = 0.2  # wsd: the last fraction of the steps that decays
    optimizer: str = "adamw"  # "adamw" everywhere, or "muon": Muon for the blocks' 2-D matrices, AdamW for the rest
    weight_decay: float = 0.05
    decay_embeddings: bool = True  # weight decay also on the token embedding and the output head's matrices
    grad_clip: float = 1.0
    temperature: float = 0.2  # NT-Xent temperature
    lam: float = 1.0  # hybrid weight: L = L_gen + lam * L_con
    lam_warmup_steps: int = 0  # hybrid: the contrastive weight ramps linearly from 0 to lam over these steps
    generative_input: str = "views"  # hybrid: "views" (one pass per view) or "clean"
    stop_contrastive_gradient: bool = False  # hybrid with contrastive_block: NT-Xent's gradient stops at the shared
    # encoder's output, so only the likelihood trains the shared blocks (docs/controls.md)
    crop_scale: float = 0.6  # smallest area fraction kept by the random resized crop
    hflip: bool = True  # horizontal flips (off for digits, where they change the class)
    jitter: float = 0.4  # brightness/contrast jitter strength
    checkpoint_every: int = 20
    log_every: int = 5
    eval_every: int = 0  # validation metrics every eval_every steps and at the end (0: never); needs data.n_val
    val_index: int = 10_000  # validation kNN: the first val_index training images are its labelled index
    precision: str = "auto"  # "auto" (by the hardware: see hardware.py), "fp32", "bf16" or "fp16"
    compile: bool = False  # torch.compile the training step: compiling once, then faster steps (`make bench`)


@dataclass(frozen=True)
class EvalConfig:
    n_probe_train: int = 20_000  # training images for the probe and the kNN index
    n_test: int | None = None  # test images for accuracy and bits/dim (None: all)
    n_ood: int = 1_000  # images per OOD set (and in-distribution test images they are compared with)
    n_corrupt: int = 500  # test images per corruption and severity
    knn_k: int = 20
    eval_batch_size: int = 128  # images per inference batch: 1.5x the throughput of 512 on a 2-core CPU (cache)
    eval_seed: int = 0  # the OOD noise sets and the corruptions: the same images for every model and seed


TRAINING_SECTIONS = ("data", "model", "train")  # what a trained model depends on; ``eval`` only reads it


@dataclass(frozen=True)
class Config:
    profile: str
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_train(self, **changes: Any) -> "Config":
        """The same configuration with some training settings changed (``objective``, ``seed``, ``lam`` ...).
        Another ``objective`` goes through :meth:`for_objective`: it gets its profile's settings (its learning rate)."""
        config = self
        if changes.get("objective", self.train.objective) != self.train.objective:
            config = self.for_objective(changes["objective"])
        config = replace(config, train=replace(config.train, **changes))
        validate(config)
        return config

    def for_objective(self, objective: str) -> "Config":
        """This configuration for another objective: the profile's configuration of ``objective`` (in the cpu
        profile its own learning rate, PROFILE_LR), with every setting in which this one differs from the profile's
        configuration of its own objective carried over (a learning rate set by hand stays)."""
        mine, theirs = get_config(self.profile, self.train.objective), get_config(self.profile, objective)
        sections = {}
        for name in ("data", "model", "train", "eval"):
            here, default = getattr(self, name), getattr(mine, name)
            changed = {f.name: getattr(here, f.name) for f in fields(here)
                       if getattr(here, f.name) != getattr(default, f.name)}
            sections[name] = replace(getattr(theirs, name), **changed)
        config = Config(profile=self.profile, **sections)
        validate(config)
        return config

    def with_data(self, **changes: Any) -> "Config":
        """The same configuration with some data settings changed that leave the tokens as they are (``n_train``,
        ``n_val``)."""
        config = replace(self, data=replace(self.data, **changes))
        validate(config)
        return config

    def with_model(self, **changes: Any) -> "Config":
        """The same configuration with some model settings changed (``head``, ``head_width`` ...)."""
        config = replace(self, model=replace(self.model, **changes))
        validate(config)
        return config

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        """The inverse of :meth:`to_dict`. A dict without ``eval`` (checkpoints written before the
        evaluation settings joined the Config) gets its profile's evaluation settings."""
        try:
            evaluation = EvalConfig(**d["eval"]) if "eval" in d else _profile_eval(d["profile"])
            return cls(
                profile=d["profile"],
                data=DataConfig(**d["data"]),
                model=ModelConfig(**_with_token_shape(d["model"], DataConfig(**d["data"]))),
                train=TrainConfig(**d["train"]),
                eval=evaluation,
            )
        except (KeyError, TypeError) as e:
            raise ConfigError(f"not a hybridlib configuration ({e}); was it written by another version?") from e


def _with_token_shape(model: dict[str, Any], data: DataConfig) -> dict[str, Any]:
    """A model dict written before ``pixel_levels`` and ``token_pixels`` existed gets them from its data."""
    if "pixel_levels" in model and "token_pixels" in model:
        return model
    _check_data(data)  # before data.token_shape: see get_config
    return {**data.token_shape, **model}


def _profile_eval(name: str) -> EvalConfig:
    return EvalConfig(n_probe_train=2_000, n_ood=300, n_corrupt=200) if name == "smoke" else EvalConfig()


# Each objective's learning rate where a profile tunes it per objective: the recipe study searched every objective
# by the same rule and chose these (results/cpu/recipe.md, stage 2; confirmed on 3 seeds in stage 3). Elsewhere
# every objective uses the profile's one TrainConfig.lr.
PROFILE_LR = {"cpu": {"contrastive": 1e-3, "generative": 4e-3, "hybrid": 2e-3}}


def _profile(name: str) -> Config:
    if name == "smoke":
        data = DataConfig(dataset="digits", image_size=8, levels=4, patch_size=2)
        model = ModelConfig(d_model=32, n_head=2, n_encoder_layers=1, n_decoder_layers=1, proj_dim=32)
        train = TrainConfig(steps=40, batch_size=64, warmup_steps=5, hflip=False, checkpoint_every=20, log_every=5)
    elif name == "cpu":
        # 2x2-pixel tokens: 49 tokens per image instead of 196, so attention and the MLPs
        # cost ~4x less per image and a 2-core laptop sees ~4x more images in the same time.
        # The likelihood stays exact per pixel (a token's 4096 values are the joint of 4 pixels).
        # The last 5 000 training images are the validation split, validated every 100 steps: the recipe study
        # (docs/recipe.md) chose on it, and each training run logs its curve.
        data = DataConfig(dataset="fashion-mnist", image_size=14, levels=8, patch_size=2, n_val=5_000)
        # QK-norm and zero-initialised output projections: adopted by the recipe study for every objective
        model = ModelConfig(d_model=128, n_head=4, n_encoder_layers=3, n_decoder_layers=2, proj_dim=64, qk_norm=True,
                            zero_init_proj=True)
        # the budget from the scaling study: the most steps of its budgets that keep `make reproduce` within
        # 45 minutes on 2 cores (docs/benchmarks.md); the recipe (Muon, warmup-stable-decay, the learning rate per
        # objective: PROFILE_LR) from the recipe study, which reaches the old recipe's 2000-step quality here
        train = TrainConfig(steps=1000, batch_size=128, warmup_steps=50, optimizer="muon", schedule="wsd",
                            eval_every=100, checkpoint_every=100, log_every=10, compile=True)
    elif name == "gpu-small":
        # 16x16 pixels (256 tokens) and d=256: each training notebook fits a class slot on a T4
        # (docs/profiles.md has the arithmetic)
        data = DataConfig(dataset="cifar10", image_size=16, palette_size=512, patch_size=1)
        model = ModelConfig(d_model=256, n_head=4, n_encoder_layers=4, n_decoder_layers=2, proj_dim=128)
        train = TrainConfig(steps=2000, batch_size=128, warmup_steps=100, lr=6e-4, checkpoint_every=250,
                            log_every=25, compile=True)
    elif name == "gpu":
        data = DataConfig(dataset="cifar10", image_size=32, palette_size=512, patch_size=1)
        model = ModelConfig(d_model=384, n_head=6, n_encoder_layers=4, n_decoder_layers=4, proj_dim=128)
        train = TrainConfig(steps=4000, batch_size=128, warmup_steps=200, lr=6e-4, checkpoint_every=500, log_every=50,
                            compile=True)
    else:
        raise ConfigError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILE_CHOICES)}")
    model = replace(model, **data.token_shape)
    return Config(profile=name, data=data, model=model, train=train, eval=_profile_eval(name))


# What the recipe study changed in a profile's recipe, as it was before: the study's baseline (its "old" recipe),
# so that the study, the names of its runs and its committed results stay what they were, and the studies that ran
# on the old recipe (scaling, ablations, heads: `--recipe baseline`) reproduce their tables.
RECIPE_BASELINES = {"cpu": {"train": {"lr": 1e-3, "optimizer": "adamw", "schedule": "cosine", "eval_every": 0},
                            "model": {"qk_norm": False, "zero_init_proj": False}, "data": {"n_val": 0}}}


def recipe_baseline(config: Config, objective: str | None = None) -> Config:
    """``config`` for ``objective`` (default: its own) with its profile's recipe from before the recipe study
    (RECIPE_BASELINES: one learning rate for all objectives); a profile the study left alone as it is."""
    config = config.with_train(objective=objective or config.train.objective)
    pinned = RECIPE_BASELINES.get(config.profile, {})
    # train first: eval_every=0 before the validation split goes (validate() checks each step)
    return config.with_train(**pinned.get("train", {})).with_model(**pinned.get("model", {})) \
        .with_data(**pinned.get("data", {}))


LARGE_GPU_MEMORY_GB = 40  # the gpu profile's measured peak (results/gpu-check/) plus the allocator's reserve


def is_large_gpu(device: int = 0) -> bool:
    """Native bf16 and at least 40 GB: a GPU the full ``gpu`` profile fits, in memory and in time."""
    return cuda_has_bf16(torch.device("cuda", device)) and \
        torch.cuda.get_device_properties(device).total_memory >= LARGE_GPU_MEMORY_GB * 1e9


def resolve_profile(profile: str | None = None) -> str:
    """Turn ``None`` (the HYBRIDLIB_PROFILE variable, else auto) or ``auto`` into a profile name.

    ``auto``: ``gpu`` on a large modern GPU, ``gpu-small`` on any other GPU (a T4, a 24 GB card),
    ``cpu`` without CUDA.
    """
    if profile is None:
        profile = os.environ.get("HYBRIDLIB_PROFILE", "auto") or "auto"
    if profile == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        return "gpu" if is_large_gpu() else "gpu-small"
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILE_CHOICES)}")
    return profile


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "eval": EvalConfig}


def get_config(profile: str | None = None, objective: str = "hybrid", **overrides: Any) -> Config:
    """The configuration of a profile, with ``overrides`` given by field name (e.g. ``steps=100``).

    ``None`` values are ignored, so command-line options can be passed straight through.
    """
    config = _profile(resolve_profile(profile))
    if objective in PROFILE_LR.get(config.profile, {}):
        config = replace(config, train=replace(config.train, lr=PROFILE_LR[config.profile][objective]))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    overrides["objective"] = objective
    updates: dict[str, dict[str, Any]] = {s: {} for s in _SECTIONS}
    for key, value in overrides.items():
        section = next((s for s, cls in _SECTIONS.items() if key in {f.name for f in fields(cls)}), None)
        if section is None:
            valid = sorted(f.name for cls in _SECTIONS.values() for f in fields(cls))
            raise ConfigError(f"unknown setting {key!r}; valid settings: {', '.join(valid)}")
        updates[section][key] = value
    data = replace(config.data, **updates["data"])
    _check_data(data)  # before data.vocab_size: a huge patch_size would make levels ** patch_size**2 run for ever
    model = replace(config.model, **updates["model"])
    if updates["data"]:  # token shape follows the data unless set explicitly
        model = replace(model, **{k: updates["model"].get(k, v) for k, v in data.token_shape.items()})
    config = Config(profile=config.profile, data=data, model=model, train=replace(config.train, **updates["train"]),
                    eval=replace(config.eval, **updates["eval"]))
    validate(config)
    return config


# Sanity bounds, so that no configuration (a typo, or a checkpoint from elsewhere) can ask for more
# memory than a machine has before anything is allocated; the profiles are far below them.
MAX_SEED = 2**32  # seeds are mixed into 64-bit generator seeds (step.BatchSampler, step.step_generator)
MAX_VOCAB_BITS = 24  # at most 2**24 distinct tokens
MAX_SEQ_LEN = 4096  # image tokens per image
MAX_PARAMETERS = 10**9


def parameter_count(m: ModelConfig) -> int:
    """The number of parameters of ``HybridTransformer(m)``, computed without building it."""
    d = m.d_model
    block = 12 * d * d + 13 * d + (2 * (d // m.n_head) if m.qk_norm else 0)  # LayerNorms, qkv, proj, 4x MLP, QK-norm
    pixels, levels = m.token_pixels, m.pixel_levels
    w = m.head_width * d
    head = m.vocab_size * d if m.head == "joint" else d * w + w + pixels * levels * w + pixels * w + pixels * w * levels \
        + pixels * levels
    blocks = m.n_encoder_layers + m.n_decoder_layers + int(m.contrastive_block)
    return ((m.vocab_size + 1) * d + (m.seq_len + 1) * d + blocks * block
            + 2 * d + d * d + d + d * m.proj_dim + m.proj_dim + 2 * d + head)


_TYPE_WORDS = {int: "an integer", float: "a finite number", bool: "True or False", str: "a string",
               type(None): "None"}


def _is(value: Any, kind: type) -> bool:
    if kind is float:  # an int is a valid float setting (lr=1); a bool is neither
        return isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _check_types(section: Any) -> None:
    """Each field of a dataclass has its annotated type (floats finite); ConfigError naming the first that has not."""
    hints = typing.get_type_hints(type(section))
    for f in fields(section):
        value = getattr(section, f.name)
        kinds = typing.get_args(hints[f.name]) or (hints[f.name],)
        if not any(_is(value, kind) for kind in kinds):
            expected = " or ".join(_TYPE_WORDS[kind] for kind in kinds)
            raise ConfigError(f"{f.name} must be {expected}, got {value!r} ({type(value).__name__})")


def _check_data(d: DataConfig) -> None:
    _check_types(d)
    if d.dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {d.dataset!r}; choose one of: {', '.join(DATASETS)}")
    for name, value in {"image_size": d.image_size, "palette_size": d.palette_size, "patch_size": d.patch_size}.items():
        if not value > 0:
            raise ConfigError(f"{name} must be positive, got {value!r}")
    if d.n_train is not None and d.n_train <= 0:
        raise ConfigError(f"n_train must be positive, got {d.n_train!r}")
    if d.n_val < 0:
        raise ConfigError(f"n_val must be zero or positive, got {d.n_val!r}")
    if not 2 <= d.levels <= 256:
        raise ConfigError(f"levels must be from 2 to 256 (pixels have 8 bits), got {d.levels}")
    if d.image_size % d.patch_size:
        raise ConfigError(f"image_size {d.image_size} is not divisible by patch_size {d.patch_size}")
    if d.channels == 3 and d.patch_size != 1:
        raise ConfigError("RGB data sets use one palette token per pixel: set patch_size=1")
    bits = math.log2(d.palette_size) if d.channels == 3 else d.patch_size**2 * math.log2(d.levels)
    if bits > MAX_VOCAB_BITS:
        raise ConfigError(f"the vocabulary ({'palette_size' if d.channels == 3 else 'levels ** patch_size**2'}) "
                          f"would exceed 2**{MAX_VOCAB_BITS} tokens; use fewer levels or a smaller patch_size")
    if d.seq_len > MAX_SEQ_LEN:
        raise ConfigError(f"(image_size / patch_size)**2 = {d.seq_len} tokens per image exceeds {MAX_SEQ_LEN}; "
                          "use a smaller image_size or a larger patch_size")


def validate(config: Config) -> None:
    """Raise ConfigError naming the first invalid value and the valid choices.

    The one check of every configuration: ``get_config`` and checkpoint loading both use it. It checks
    types (floats finite), ranges, consistency, and that the model stays below MAX_PARAMETERS.
    """
    if not isinstance(config, Config):
        raise ConfigError(f"not a hybridlib configuration: {type(config).__name__}")
    if config.profile not in PROFILES:
        raise ConfigError(f"unknown profile {config.profile!r}; choose one of: {', '.join(PROFILES)}")
    d, m, t, e = config.data, config.model, config.train, config.eval
    _check_data(d)
    _check_types(m)
    _check_types(t)
    _check_types(e)
    for name in ("n_probe_train", "n_ood", "n_corrupt", "knn_k", "eval_batch_size"):
        if not getattr(e, name) > 0:
            raise ConfigError(f"{name} must be positive, got {getattr(e, name)!r}")
    if e.eval_seed < 0:
        raise ConfigError(f"eval_seed must be zero or positive, got {e.eval_seed!r}")
    if e.n_test is not None and e.n_test <= 0:
        raise ConfigError(f"n_test must be positive, got {e.n_test!r}")
    if t.objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {t.objective!r}; choose one of: {', '.join(OBJECTIVES)}")
    positive = {
        "d_model": m.d_model, "n_head": m.n_head, "head_width": m.head_width, "n_encoder_layers": m.n_encoder_layers,
        "proj_dim": m.proj_dim,
        "steps": t.steps, "batch_size": t.batch_size, "lr": t.lr, "temperature": t.temperature,
        "checkpoint_every": t.checkpoint_every, "log_every": t.log_every, "val_index": t.val_index,
    }
    for name, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{name} must be positive, got {value!r}")
    non_negative = {"n_decoder_layers": m.n_decoder_layers, "warmup_steps": t.warmup_steps, "lam": t.lam,
                    "lam_warmup_steps": t.lam_warmup_steps,
                    "weight_decay": t.weight_decay, "grad_clip": t.grad_clip, "dropout": m.dropout, "seed": t.seed,
                    "eval_every": t.eval_every}
    for name, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{name} must be zero or positive, got {value!r}")
    if t.seed >= MAX_SEED:
        raise ConfigError(f"seed must be below 2**32, got {t.seed}")
    shape = d.token_shape
    if {k: getattr(m, k) for k in shape} != shape:
        raise ConfigError(f"the model's vocab_size {m.vocab_size} and seq_len {m.seq_len} must be the data's "
                          f"{d.vocab_size} and {d.seq_len}, with tokens of {m.token_pixels} values of {m.pixel_levels} "
                          f"levels (the data's: {shape['token_pixels']} of {shape['pixel_levels']}); leave them unset "
                          "and they follow the data")
    if m.head not in HEADS:
        raise ConfigError(f"unknown head {m.head!r}; choose one of: {', '.join(HEADS)}")
    if m.pool not in POOLS:
        raise ConfigError(f"unknown pool {m.pool!r}; choose one of: {', '.join(POOLS)}")
    if m.d_model % m.n_head:
        raise ConfigError(f"d_model {m.d_model} is not divisible by n_head {m.n_head}")
    if parameter_count(m) > MAX_PARAMETERS:
        raise ConfigError(f"the model would have {parameter_count(m):.3g} parameters, more than {MAX_PARAMETERS:.0e}; "
                          "use a smaller d_model, fewer layers or a smaller vocabulary")
    if m.n_decoder_layers == 0 and t.objective != "contrastive":
        raise ConfigError("the generative and hybrid objectives need n_decoder_layers >= 1")
    if t.objective != "generative" and t.batch_size < 2:
        raise ConfigError("contrastive objectives need batch_size >= 2 (negatives come from the batch)")
    if t.generative_input not in ("views", "clean"):
        raise ConfigError(f"unknown generative_input {t.generative_input!r}; choose one of: views, clean")
    if t.stop_contrastive_gradient and (t.objective != "hybrid" or not m.contrastive_block):
        raise ConfigError("stop_contrastive_gradient is a control of the hybrid with contrastive_block=True (without a "
                          "block of its own the contrastive loss would train only the projection head); use "
                          "objective hybrid and contrastive_block=True, or stop_contrastive_gradient=False")
    if t.precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {t.precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if not 0 < t.crop_scale <= 1:
        raise ConfigError(f"crop_scale must be in (0, 1], got {t.crop_scale}")
    if t.schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {t.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    if t.optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {t.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if not 0 < t.decay_fraction <= 1:
        raise ConfigError(f"decay_fraction must be in (0, 1], got {t.decay_fraction}")
    if t.eval_every and not d.n_val:
        raise ConfigError("eval_every needs a validation set: set n_val (the training images held out), "
                          "or eval_every=0")
    if not 0 <= t.min_lr_ratio <= 1:
        raise ConfigError(f"min_lr_ratio must be in [0, 1], got {t.min_lr_ratio}")
    if not m.dropout < 1:
        raise ConfigError(f"dropout must be below 1, got {m.dropout}")
    if not 0 <= t.jitter <= 1:
        raise ConfigError(f"jitter must be in [0, 1], got {t.jitter}")


__all__ = [
    "HEADS", "OBJECTIVES", "OPTIMIZERS", "SCHEDULES", "PROFILES", "GPU_PROFILES", "PROFILE_CHOICES", "DATASETS",
    "TRAINING_SECTIONS", "PROFILE_LR", "RECIPE_BASELINES", "Config", "DataConfig", "ModelConfig", "TrainConfig",
    "EvalConfig", "get_config", "parameter_count", "recipe_baseline", "resolve_profile", "validate"
]
