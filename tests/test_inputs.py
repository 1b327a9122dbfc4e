"""Issue 16 (items 5, 6, 11, 12): every public function checks its inputs and raises a typed error that
names the argument. The configuration checks run over every field of every section, so a field added
later is covered without a new test."""
import gzip
import math
import typing
from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from hybridlib import data as data_mod
from hybridlib.config import (
    MAX_PARAMETERS, PROFILES, DataConfig, ModelConfig, TrainConfig, get_config, parameter_count, validate,
)
from hybridlib.data import load_dataset
from hybridlib.errors import ConfigError, DataError, InputError
from hybridlib.model import HybridTransformer
from hybridlib.tokenizer import GrayTokenizer, PaletteTokenizer

# ---------------------------------------------------------------- configuration: one validation for every field

_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
# model.vocab_size and seq_len follow the data; they are checked against it below
_FIELDS = [(s, f) for s, cls in _SECTIONS.items() for f in fields(cls) if f.name not in ("vocab_size", "seq_len")]
_WRONG = {  # values of the wrong type for each annotated type
    int: ["10", 1.5, True, None, float("nan")],
    float: ["0.1", "abc", True, None, float("inf"), float("-inf"), float("nan"), 10**400],
    bool: ["yes", 1, None],
    str: [1, None, b"views"],
}


def _kind(section: str, name: str) -> type:
    hint = typing.get_type_hints(_SECTIONS[section])[name]
    return next(k for k in (typing.get_args(hint) or (hint,)) if k is not type(None))


@pytest.mark.parametrize("section, field", _FIELDS, ids=[f"{s}.{f.name}" for s, f in _FIELDS])
def test_every_setting_of_the_wrong_type_or_not_finite_is_refused_by_name(section, field):
    for value in _WRONG[_kind(section, field.name)]:
        if value is None and field.name == "n_train":
            continue  # None means "all images"
        config = get_config("smoke", "hybrid")
        bad = replace(config, **{section: replace(getattr(config, section), **{field.name: value})})
        with pytest.raises(ConfigError, match=rf"^{field.name} must be .*got"):
            validate(bad)
        if value is not None:  # get_config ignores None (unset command-line options)
            args, kwargs = (("smoke", value), {}) if field.name == "objective" else (("smoke",), {field.name: value})
            with pytest.raises(ConfigError, match=rf"^{field.name} must be"):
                get_config(*args, **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": "10"}, "steps must be an integer, got '10'"),
    ({"lr": "abc"}, "lr must be a finite number, got 'abc'"),
    ({"steps": 1.5}, "steps must be an integer, got 1.5"),
    ({"steps": True}, "steps must be an integer, got True"),
    ({"seed": -1}, "seed must be zero or positive"),
    ({"seed": 2**32}, "seed must be below 2\\*\\*32"),
    ({"seed": 2**62}, "seed must be below 2\\*\\*32"),
    ({"dropout": 1.5}, "dropout must be below 1"),
    ({"dropout": -0.1}, "dropout must be zero or positive"),
    ({"jitter": 2.0}, "jitter must be in \\[0, 1\\]"),
    ({"lr": float("inf")}, "lr must be a finite number"),
    ({"lam": float("nan")}, "lam must be a finite number"),
    ({"temperature": float("inf")}, "temperature must be a finite number"),
    ({"levels": 300}, "levels must be from 2 to 256"),
    ({"levels": 1}, "levels must be from 2 to 256"),
    ({"vocab_size": 100}, "vocab_size 100 .* must be the data's 256"),
    ({"vocab_size": 10**8}, "must be the data's"),
    ({"seq_len": 4}, "seq_len 4 must be the data's .* 16"),
    ({"patch_size": 8, "levels": 16}, "vocabulary .* would exceed 2\\*\\*24"),
    ({"patch_size": 10**6, "image_size": 10**6}, "vocabulary .* would exceed"),  # must not compute 4 ** 10**12
    ({"image_size": 128, "patch_size": 1}, "16384 tokens per image exceeds 4096"),
    ({"d_model": 10**5, "n_head": 1}, "parameters, more than 1e\\+09"),
    ({"n_encoder_layers": 10**7}, "parameters, more than"),
    ({"n_head": 0}, "n_head must be positive"),
    ({"n_head": 3}, "not divisible by n_head"),
])
def test_bad_values_are_named(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        get_config("smoke", "hybrid", **kwargs)


@pytest.mark.parametrize("kwargs", [{"seed": 2**32 - 1}, {"lr": 1}, {"dropout": 0.5}, {"levels": 256, "patch_size": 1},
                                    {"jitter": 0.0}, {"n_train": None}])
def test_valid_edge_values_are_accepted(kwargs):
    get_config("smoke", "hybrid", **kwargs)


@pytest.mark.parametrize("profile", PROFILES)
def test_the_size_bound_counts_parameters_exactly(profile):
    m = get_config(profile).model
    with torch.device("meta"):
        assert parameter_count(m) == sum(p.numel() for p in HybridTransformer(m).parameters()) < MAX_PARAMETERS / 50
    odd = replace(m, d_model=24, n_head=3, proj_dim=5, n_encoder_layers=2, n_decoder_layers=0)
    with torch.device("meta"):
        assert parameter_count(odd) == sum(p.numel() for p in HybridTransformer(odd).parameters())


def test_validate_refuses_what_is_not_a_config():
    with pytest.raises(ConfigError, match="not a hybridlib configuration"):
        validate({"profile": "smoke"})
    with pytest.raises(ConfigError, match="unknown profile"):
        validate(replace(get_config("smoke"), profile="laptop"))


# ---------------------------------------------------------------- the model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return HybridTransformer(get_config("smoke").model).eval()  # vocabulary 256, 16 tokens


@pytest.mark.parametrize("tokens, message", [
    (torch.full((2, 16), 256), r"tokens must be in \[0, 256\), got values from 256 to 256"),  # the start token
    (torch.full((2, 16), -1), r"tokens must be in \[0, 256\), got values from -1"),
    (torch.zeros(2, 16), "tokens must hold integer token ids .* got dtype torch.float32"),
    (torch.zeros(2, 16, dtype=torch.uint8), "got dtype torch.uint8"),
    (torch.zeros(2, 17, dtype=torch.long), "17 tokens per sequence; the model takes at most 16"),
    (torch.zeros(16, dtype=torch.long), r"shape \(batch, length\), got \(16,\)"),
    ([[1, 2, 3]], "must be a torch tensor"),
])
def test_the_model_refuses_bad_tokens_by_name(model, tokens, message):
    for call in (model, model.represent, lambda t: model.complete(t, 1)):
        with pytest.raises(InputError, match=message):
            call(tokens)


def test_forward_encoder_checks_type_and_shape_without_a_sync(model):
    with pytest.raises(InputError, match="integer token ids"):
        model.forward_encoder(torch.zeros(2, 16))
    with pytest.raises(InputError, match="at most 16"):
        model.forward_encoder(torch.zeros(2, 20, dtype=torch.long))
    assert model.forward_encoder(torch.zeros(2, 16, dtype=torch.long)).shape == (2, 17, 32)


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 2, "temperature": -1.0}, "temperature must be a finite number >= 0, got -1.0"),
    ({"n": 2, "temperature": float("nan")}, "temperature must be"),
    ({"n": 2, "temperature": float("inf")}, "temperature must be"),
    ({"n": 0}, "n must be a positive integer, got 0"),
    ({"n": 2.0}, "n must be a positive integer"),
    ({"n": 2, "prompt": torch.zeros(2, 17, dtype=torch.long)}, "prompt has 17 tokens .* at most 16"),
    ({"n": 3, "prompt": torch.zeros(2, 4, dtype=torch.long)}, "prompt has 2 sequences for n=3"),
    ({"n": 2, "prompt": torch.full((2, 4), 300)}, r"prompt must be in \[0, 256\)"),
])
def test_generate_refuses_bad_arguments_by_name(model, kwargs, message):
    with pytest.raises(InputError, match=message):
        model.generate(**kwargs)


def test_complete_refuses_a_prompt_length_out_of_range(model):
    with pytest.raises(InputError, match="n_given must be an integer from 0 to 16, got 17"):
        model.complete(torch.zeros(2, 16, dtype=torch.long), 17)
    assert model.generate(2, temperature=0, generator=torch.Generator().manual_seed(0)).shape == (2, 16)


# ---------------------------------------------------------------- the tokenizers


@pytest.mark.parametrize("images, message", [
    (torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8), "floats in \\[0, 1\\], got dtype torch.uint8"),
    (torch.rand(2, 1, 8, 8) * 255, "floats in \\[0, 1\\] with no NaN, got values from"),
    (torch.full((2, 1, 8, 8), float("nan")), "with no NaN"),
    (torch.rand(2, 1, 7, 8), "7x8 pixels do not split into 2x2 patches"),
    (torch.rand(2, 3, 8, 8), "shape \\(batch, 1, height, width\\)"),
    (torch.rand(8, 8), "shape \\(batch, 1, height, width\\)"),
    (np.zeros((2, 1, 8, 8)), "must be a torch tensor"),
])
def test_the_gray_tokenizer_refuses_bad_images_by_name(images, message):
    with pytest.raises(InputError, match=message):
        GrayTokenizer(4, 2).encode(images)


def test_the_palette_tokenizer_and_decoding_refuse_bad_input():
    tok = PaletteTokenizer(torch.rand(16, 3))
    with pytest.raises(InputError, match="shape \\(batch, 3, height, width\\)"):
        tok.encode(torch.rand(2, 1, 4, 4))
    with pytest.raises(InputError, match="with no NaN"):
        tok.encode(torch.full((2, 3, 4, 4), float("nan")))
    with pytest.raises(InputError, match="tokens must be in \\[0, 16\\)"):
        tok.decode(torch.full((1, 16), 16))
    with pytest.raises(InputError, match="square image"):
        GrayTokenizer(4, 2).decode(torch.zeros(1, 15, dtype=torch.long))


# ---------------------------------------------------------------- data files: structure, not only length


def _idx(array_or_header, data=b""):
    if isinstance(array_or_header, np.ndarray):
        a = array_or_header
        return bytes([0, 0, 8, a.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in a.shape) + a.astype(
            np.uint8).tobytes()
    dims = array_or_header
    return bytes([0, 0, 8, len(dims)]) + b"".join(int(n).to_bytes(4, "big") for n in dims) + data


_GOOD = {"train-images-idx3-ubyte": np.zeros((4, 28, 28)), "train-labels-idx1-ubyte": np.arange(4),
         "t10k-images-idx3-ubyte": np.zeros((2, 28, 28)), "t10k-labels-idx1-ubyte": np.arange(2)}


@pytest.mark.parametrize("name, raw, message", [
    ("train-images-idx3-ubyte", _idx(np.zeros((0, 28, 28))), "shape \\(0, 28, 28\\), not 3-dimensional"),
    ("train-images-idx3-ubyte", _idx(np.zeros(4)), "shape \\(4,\\), not 3-dimensional"),
    ("train-images-idx3-ubyte", _idx(()) + b"\x00", "shape \\(\\), not 3-dimensional"),
    # 2**64 bytes of data, which np.prod wraps to 0, as many as the file holds
    ("train-images-idx3-ubyte", _idx((2**21, 2**21, 2**22)), "truncated or corrupt"),
    ("train-labels-idx1-ubyte", _idx(np.zeros((4, 1, 1))), "shape \\(4, 1, 1\\), not 1-dimensional"),
    ("train-labels-idx1-ubyte", _idx(np.array([0, 1, 2, 10])), "labels go up to 10, but there are 10 classes"),
    ("t10k-labels-idx1-ubyte", _idx(np.arange(3)), "test images and labels differ in number"),
])
def test_data_files_of_the_wrong_structure_are_one_clear_error(tmp_path, monkeypatch, name, raw, message):
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for stem, array in _GOOD.items():
        (folder / f"{stem}.gz").write_bytes(gzip.compress(_idx(array)))
    (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match=message):
        load_dataset("fashion-mnist", root=tmp_path, download=False)


def test_good_files_still_load(tmp_path, monkeypatch):
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    (tmp_path / "fashion-mnist").mkdir()
    for stem, array in _GOOD.items():
        (tmp_path / "fashion-mnist" / stem).write_bytes(_idx(array))
    d = load_dataset("fashion-mnist", root=tmp_path, download=False)
    assert d.train_images.shape == (4, 1, 28, 28) and d.test_labels.tolist() == [0, 1]
    assert math.isclose(float(d.train_images.float().mean()), 0.0)
