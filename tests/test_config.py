import pytest

from hybridlib.config import OBJECTIVES, PROFILES, Config, get_config, resolve_profile
from hybridlib.errors import ConfigError


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_have_consistent_token_shapes(profile):
    c = get_config(profile, "hybrid")
    assert c.model.vocab_size == c.data.vocab_size
    assert c.model.seq_len == c.data.seq_len
    assert Config.from_dict(c.to_dict()) == c


def test_profile_shapes_are_the_documented_ones():
    cpu = get_config("cpu")
    assert (cpu.data.dataset, cpu.data.image_size, cpu.data.levels, cpu.data.patch_size) == ("fashion-mnist", 14, 8, 2)
    assert (cpu.model.vocab_size, cpu.model.seq_len, cpu.data.dims_per_token) == (4096, 49, 4)
    gpu = get_config("gpu")
    assert (gpu.data.dataset, gpu.model.vocab_size, gpu.model.seq_len, gpu.data.dims_per_token) == ("cifar10", 512, 1024, 3)


def test_objectives_differ_only_in_the_loss():
    configs = [get_config("cpu", o).to_dict() for o in OBJECTIVES]
    for c in configs:
        c["train"].pop("objective")
    assert configs[0] == configs[1] == configs[2]


def test_auto_and_environment(monkeypatch):
    monkeypatch.setenv("HYBRIDLIB_PROFILE", "smoke")
    assert resolve_profile(None) == "smoke"
    assert resolve_profile("auto") in ("cpu", "gpu")


@pytest.mark.parametrize("kwargs, message", [
    ({"profile": "laptop"}, "choose one of: smoke, cpu, gpu-small, gpu, auto"),
    ({"objective": "jigsaw"}, "choose one of: contrastive, generative, hybrid"),
    ({"dataset": "imagenet"}, "choose one of: digits"),
    ({"steps": 0}, "steps must be positive"),
    ({"batch_size": -4}, "batch_size must be positive"),
    ({"lam": -1.0}, "lam must be zero or positive"),
    ({"patch_size": 3}, "not divisible by patch_size"),
    ({"n_head": 3}, "not divisible by n_head"),
    ({"stepz": 3}, "unknown setting 'stepz'"),
])
def test_bad_values_are_named(kwargs, message):
    kwargs = {"profile": "smoke", "objective": "hybrid", **kwargs}
    with pytest.raises(ConfigError, match=message):
        get_config(kwargs.pop("profile"), kwargs.pop("objective"), **kwargs)


def test_overriding_data_updates_the_token_shape():
    c = get_config("smoke", patch_size=1, levels=8)
    assert (c.model.vocab_size, c.model.seq_len) == (8, 64)
