import pytest

from hybridlib.config import OBJECTIVES, PROFILE_LR, PROFILES, Config, get_config, recipe_baseline, resolve_profile
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


@pytest.mark.parametrize("profile", PROFILES)
def test_objectives_differ_only_in_the_loss_and_its_learning_rate(profile):
    configs = [get_config(profile, o).to_dict() for o in OBJECTIVES]
    rates = [c["train"].pop("lr") for c in configs]
    for c in configs:
        c["train"].pop("objective")
    assert configs[0] == configs[1] == configs[2]
    assert rates == [PROFILE_LR.get(profile, {}).get(o, get_config(profile).train.lr) for o in OBJECTIVES]


def test_the_cpu_profile_has_the_recipe_studys_recipe():
    c = get_config("cpu", "generative")
    assert (c.train.optimizer, c.train.schedule, c.model.qk_norm, c.model.zero_init_proj) == ("muon", "wsd", True, True)
    assert (c.data.n_val, c.train.eval_every, c.train.lr) == (5_000, 100, 4e-3)


def test_another_objective_gets_its_learning_rate_and_keeps_every_change():
    hybrid = get_config("cpu", "hybrid", seed=2, lam=0.3, n_val=1000)
    contrastive = hybrid.with_train(objective="contrastive")
    assert contrastive == get_config("cpu", "contrastive", seed=2, lam=0.3, n_val=1000)
    assert hybrid.for_objective("generative").train.lr == 4e-3
    assert hybrid.with_train(objective="generative", lr=0.01).train.lr == 0.01
    by_hand = get_config("cpu", "hybrid", lr=5e-3)
    assert by_hand.with_train(objective="contrastive").train.lr == 5e-3  # set by hand: it stays
    assert contrastive.with_train(objective="hybrid") == hybrid
    smoke = get_config("smoke", "hybrid", steps=7)
    assert smoke.with_train(objective="generative") == get_config("smoke", "generative", steps=7)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_the_recipe_baseline_is_the_profile_before_the_study(objective):
    old = recipe_baseline(get_config("cpu", "hybrid", seed=1), objective)
    assert (old.train.objective, old.train.seed, old.train.lr, old.train.optimizer, old.train.schedule) == \
        (objective, 1, 1e-3, "adamw", "cosine")
    assert (old.model.qk_norm, old.model.zero_init_proj, old.data.n_val, old.train.eval_every) == (False, False, 0, 0)
    assert recipe_baseline(old) == old
    assert recipe_baseline(get_config("smoke", objective)) == get_config("smoke", objective)  # the study left it


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


def test_every_setting_the_notebooks_tell_a_reader_to_change_exists():
    """A notebook's text that says `hl.setup(..., levels=16)` names a setting get_config takes, with a valid value."""
    import ast
    import re
    from pathlib import Path

    calls = [m.group(0) for source in sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("0*.py"))
             for line in source.read_text().splitlines() if line.startswith("# ")
             for m in re.finditer(r"hl\.setup\([^)`]*\)", line)]
    assert calls, "no notebook text names a setting: the test reads nothing"
    for call in calls:
        settings = {k.arg: ast.literal_eval(k.value) for k in ast.parse(call).body[0].value.keywords}
        get_config("smoke", "hybrid", **settings)


def test_on_colab_a_notebook_takes_the_profile_whose_weights_ship_unless_told_otherwise(monkeypatch, capsys):
    import sys
    import types

    from hybridlib.notebook import COLAB_PROFILE, notebook_profile

    monkeypatch.delenv("HYBRIDLIB_PROFILE", raising=False)
    monkeypatch.setattr("hybridlib.notebook.resolve_profile", lambda p: "gpu" if p is None else p)  # a GPU runtime
    assert notebook_profile(None) == "gpu"  # not on Colab: auto
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert notebook_profile(None) == COLAB_PROFILE == "cpu" and "on Colab" in capsys.readouterr().out
    assert notebook_profile("gpu-small") == "gpu-small"  # the parameters cell says otherwise
    monkeypatch.setenv("HYBRIDLIB_PROFILE", "smoke")
    assert notebook_profile(None) == "gpu"  # so does the environment: resolve_profile reads it
