"""The recipe's settings and study: which tensors each update rule gets, the validation split, the schedules, the
new settings' validation, a Muon run's resume, the search rule, and that the study resumes after a kill."""
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import torch

from hybridlib import losses, recipe
from hybridlib.config import OBJECTIVES, EvalConfig, get_config, recipe_baseline
from hybridlib.data import load_data
from hybridlib.errors import ConfigError, NonFiniteLossError
from hybridlib.model import HybridTransformer
from hybridlib.paths import run_dir_for
from hybridlib.step import lr_factor, make_optimizers, parameter_groups
from hybridlib.train import read_history, train

from conftest import python_cmd, state_dicts_equal, subprocess_env

TINY = EvalConfig(n_probe_train=300, n_test=200, n_ood=100, n_corrupt=20)
HIDDEN = ("attn.qkv.weight", "attn.proj.weight", "mlp.0.weight", "mlp.2.weight")


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
@pytest.mark.parametrize("decay_embeddings", [True, False])
def test_each_parameter_gets_one_update_rule_muon_only_the_hidden_matrices(optimizer, decay_embeddings):
    config = get_config("cpu", "hybrid", optimizer=optimizer, decay_embeddings=decay_embeddings, qk_norm=True)
    model = HybridTransformer(config.model)
    groups = parameter_groups(model, config.train)
    names = [n for n, _ in model.named_parameters()]
    assert sorted(sum(groups.values(), [])) == sorted(names)  # every parameter once
    shapes = dict(model.named_parameters())
    hidden = [n for n in names if n.startswith(("encoder.", "decoder.")) and n.endswith(HIDDEN) or
              n.startswith("proj_head.") and n.endswith("weight")]
    assert len(hidden) == 4 * (config.model.n_encoder_layers + config.model.n_decoder_layers) + 2
    if optimizer == "muon":
        assert sorted(groups["muon"]) == sorted(hidden) and all(shapes[n].ndim == 2 for n in groups["muon"])
    else:
        assert groups["muon"] == [] and set(hidden) <= set(groups["decay"])
    embeddings = [n for n in names if shapes[n].ndim >= 2 and n not in hidden and not n.endswith("pos_emb")]
    assert "tok_emb.weight" in embeddings  # the token embedding and the output head's matrices
    assert set(embeddings) <= set(groups["decay" if decay_embeddings else "no_decay"])
    assert all(shapes[n].ndim == 2 for n in groups["decay"])  # never a bias, a norm or the QK-norm's scale
    assert any(n.endswith("q_norm.weight") for n in groups["no_decay"]) and \
        any(n.endswith("pos_emb") for n in groups["no_decay"])
    optimizers = make_optimizers(model, config.train, torch.device("cpu"))
    assert [type(o).__name__ for o in optimizers] == ["AdamW"] + (["Muon"] if optimizer == "muon" else [])
    adamw = optimizers[0].param_groups
    assert adamw[0]["weight_decay"] == config.train.weight_decay and adamw[1]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for o in optimizers for g in o.param_groups) == len(names)


def test_the_validation_split_is_the_last_training_images_and_overlaps_neither_training_nor_test():
    config = get_config("smoke").data
    full = load_data(config)
    held = load_data(config.__class__(**{**config.__dict__, "n_val": 300, "n_train": 1000}))
    n = len(full.train_images)
    assert held.val_index.tolist() == list(range(n - 300, n)) and held.train_index.tolist() == list(range(1000))
    assert not set(held.val_index.tolist()) & set(held.train_index.tolist())
    assert torch.equal(held.val_images, full.train_images[n - 300:])
    assert torch.equal(held.train_images, full.train_images[:1000])
    assert torch.equal(held.test_images, full.test_images)  # the test set is untouched
    # by content too: no validation image is a training or a test image of the same array
    val = {bytes(x) for x in held.val_images.numpy()}
    assert not val & {bytes(x) for x in held.train_images.numpy()}
    assert not val & {bytes(x) for x in held.test_images.numpy()}
    with pytest.raises(ConfigError, match="leaves no training images"):
        load_data(config.__class__(**{**config.__dict__, "n_val": n}))


def test_warmup_stable_decay_holds_then_decays_linearly_to_the_floor():
    cfg = get_config("smoke", steps=100, warmup_steps=10, schedule="wsd", decay_fraction=0.2, min_lr_ratio=0.1).train
    factors = np.array([lr_factor(s, cfg) for s in range(100)])
    assert np.allclose(factors[:10], np.arange(1, 11) / 10)  # the warm-up
    assert np.all(factors[10:80] == 1.0)  # stable
    assert np.allclose(factors[80:], 1 - 0.9 * np.arange(20) / 20) and np.all(np.diff(factors[80:]) < 0)
    assert lr_factor(100, cfg) == pytest.approx(0.1)
    cosine = get_config("smoke", steps=100, warmup_steps=10).train
    assert lr_factor(99, cosine) > 0.1 and lr_factor(55, cosine) == pytest.approx(0.55)  # cosine's midpoint


@pytest.mark.parametrize("setting, message", [
    ({"optimizer": "sgd"}, "optimizer"), ({"schedule": "linear"}, "schedule"),
    ({"decay_fraction": 0.0}, "decay_fraction"),
    ({"decay_fraction": 1.5}, "decay_fraction"), ({"eval_every": 10}, "n_val"), ({"n_val": -1}, "n_val"),
    ({"val_index": 0}, "val_index"),
])
def test_bad_recipe_settings_get_one_clear_line(setting, message):
    with pytest.raises(ConfigError, match=message) as e:
        get_config("smoke", **setting)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_a_muon_run_resumed_after_a_crash_equals_an_uninterrupted_one_and_logs_validation(tmp_path, monkeypatch):
    config = get_config("smoke", "hybrid", steps=12, checkpoint_every=6, log_every=3, optimizer="muon",
                        schedule="wsd", qk_norm=True, zero_init_proj=True, n_val=200, eval_every=6)
    full = train(config, tmp_path / "full", progress=False)
    history = read_history(tmp_path / "full")
    assert [r["step"] for r in history if not np.isnan(r["val_knn_acc"])] == [6, 12]
    assert all(0 < r["val_bits_per_dim"] < 2 for r in history if r["step"] in (6, 12))  # log2(4 levels) = 2
    assert np.isnan(history[0]["val_knn_acc"])  # between evaluations: no validation
    real_forward, calls = losses.Objective.forward, {"n": 0}

    def crash_at_step_9(self, *args):
        calls["n"] += 1
        if calls["n"] == 10:
            raise RuntimeError("simulated crash")
        return real_forward(self, *args)

    monkeypatch.setattr(losses.Objective, "forward", crash_at_step_9)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(config, tmp_path / "crashed", progress=False)
    monkeypatch.setattr(losses.Objective, "forward", real_forward)
    assert torch.load(tmp_path / "crashed" / "checkpoint.pt", weights_only=False)["muon"]["state"]  # Muon's momentum
    resumed = train(config, tmp_path / "crashed", resume=True, progress=False)
    assert state_dicts_equal(full.model.state_dict(), resumed.model.state_dict())
    assert read_history(tmp_path / "crashed")[-1]["val_knn_acc"] == history[-1]["val_knn_acc"]


def test_zero_initialised_output_projections_make_every_block_the_identity():
    config = get_config("smoke", "hybrid", zero_init_proj=True)
    torch.manual_seed(0)
    model = HybridTransformer(config.model)
    x = torch.randn(2, 5, config.model.d_model)
    for block in [*model.encoder, *model.decoder]:
        assert not block.attn.proj.weight.any() and not block.mlp[2].weight.any()
        assert torch.equal(block(x), x)  # the biases start at zero too: both residual branches add nothing
    default = HybridTransformer(get_config("smoke", "hybrid").model)
    assert not torch.equal(default.encoder[0](x), x)


def _row(objective, setting, factor, score, stage=1):
    return {"stage": stage, "objective": objective, "setting": setting, "factor": factor, "score": score}


def test_the_stage1_rule_chooses_per_objective_and_adopts_shared_levels_by_majority():
    settings = recipe.search_settings(recipe_baseline(get_config("cpu")))
    scores = {o: {s.name: 0.0 for s in settings} for o in OBJECTIVES}
    scores["contrastive"]["lr 0.0005"], scores["contrastive"]["lr 0.002"] = 0.004, 0.003  # below the margin
    scores["generative"]["lr 0.002"], scores["generative"]["lr 0.004"] = 0.02, 0.03  # the best level wins
    scores["hybrid"]["optimizer muon"] = 0.01
    scores["contrastive"]["batch 256"], scores["hybrid"]["batch 256"] = 0.02, 0.006  # two of three: adopted
    scores["generative"]["batch 256"] = -0.05
    scores["contrastive"]["QK-norm on"] = 0.5  # one of three: not adopted
    scores["generative"]["head pixels"] = 0.02  # one of the two decoders: not adopted
    rows = [_row(o, s.name, s.factor, scores[o][s.name]) for s in settings for o in s.objectives]
    choice = recipe.choose_stage1(rows, settings)
    assert choice["per_objective"] == {"contrastive": [], "generative": ["lr 0.004"], "hybrid": ["optimizer muon"]}
    assert choice["shared"] == ["batch 256"]
    c = recipe.combined(settings, choice["per_objective"]["generative"] + choice["shared"], "generative", 2.0, 1e-3)
    assert c.train == {"lr": 0.008, "batch_size": 256} and c.model == {}


def test_a_diverged_run_is_recorded_loses_every_comparison_and_is_not_trained_again(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDLIB_RUNS", str(tmp_path / "runs"))
    config = recipe.search_config(get_config("smoke"), "generative", recipe.Setting("lr 1", "learning rate",
                                                                                    train={"lr": 1.0}), 128, 200)
    calls = []

    def diverging(*args, **kwargs):
        calls.append(args[0])
        raise NonFiniteLossError("the generative loss became NaN or infinite at step 3")

    monkeypatch.setattr(recipe, "ensure_trained", diverging)
    row = recipe._measured(config, None, progress=False, finished_only=False)
    assert row["diverged"] and row["val_knn_acc"] is None and len(calls) == 1
    assert "step 3" in json.loads((run_dir_for(config) / recipe.DIVERGED_NAME).read_text())["error"]
    assert recipe._measured(config, None, progress=False, finished_only=False) == row and len(calls) == 1  # skipped
    default = {"val_knn_acc": 0.5, "val_bits_per_dim": 1.0}
    assert recipe.score("generative", row, default) is None
    rows = [{**_row("generative", "lr 1", "learning rate", None), "diverged": True},
            _row("generative", "lr 0.002", "learning rate", -0.5)]
    assert recipe._score_of(rows[0]) < recipe._score_of(rows[1])
    settings = [recipe.Setting("lr 1", "learning rate"), recipe.Setting("lr 0.002", "learning rate")]
    by = {r["setting"]: r for r in rows}
    assert max(settings, key=lambda s: recipe._score_of(by[s.name])).name == "lr 0.002"
    assert recipe._winner([{**rows[0], "model": {}, "train": {}}], {**_row("generative", "default", "default", 0.0),
                                                                    "model": {}, "train": {}})["setting"] == "default"


def test_train_refuses_data_prepared_for_other_data_settings(tmp_path, smoke_data):
    config = get_config("smoke", n_val=200)
    with pytest.raises(ConfigError, match="prepare_data") as e:
        train(config, tmp_path / "run", progress=False, data=smoke_data)
    assert "\n" not in str(e.value) and not (tmp_path / "run").exists()  # refused before anything is written


def test_run_keys_keep_their_names_after_the_profile_adopted_the_recipe():
    config = get_config("cpu")
    old = recipe.final_config(config, "generative", recipe.Setting("default", "default"), 5_000).with_train(seed=1)
    assert recipe.run_key(old) == "cpu/seed1/generative-n_val5000-eval_every100"
    assert (old.train.optimizer, old.train.lr, old.model.qk_norm) == ("adamw", 1e-3, False)  # the study's baseline
    new = recipe.Setting("new", "combined", model={"qk_norm": True, "zero_init_proj": True},
                         train={"lr": 0.004, "schedule": "wsd", "optimizer": "muon"})
    run = recipe.final_config(config, "generative", new, 5_000)
    assert recipe.run_key(run) == ("cpu/seed0/generative-n_val5000-qk_normTrue-zero_init_projTrue-lr0.004-schedulewsd-"
                                   "optimizermuon-eval_every100")
    assert run == get_config("cpu", "generative")  # stage 3's new recipe is the profile's own run


def test_a_search_run_spends_the_same_images_whatever_its_batch():
    config = get_config("cpu")
    for setting in recipe.search_settings(config):
        run = recipe.search_config(config, "hybrid", setting, 38_400, 5_000)
        assert run.train.steps * run.train.batch_size == 38_400 and run.data.n_val == 5_000
        assert run.train.eval_every == run.train.steps  # validated at the end
        assert run.train.warmup_steps == round(run.train.steps * 0.05)
    with pytest.raises(ConfigError, match="n_val must be positive"):
        recipe.run_recipe(config, n_val=0)


@pytest.mark.slow
def test_the_recipe_study_resumes_after_a_kill(tmp_path, smoke_data, monkeypatch):
    env = subprocess_env(HYBRIDLIB_RUNS=str(tmp_path / "runs"), HYBRIDLIB_RESULTS=str(tmp_path / "results"))
    monkeypatch.setenv("HYBRIDLIB_RUNS", env["HYBRIDLIB_RUNS"])
    monkeypatch.setenv("HYBRIDLIB_RESULTS", env["HYBRIDLIB_RESULTS"])
    study = tmp_path / "results" / "smoke" / "recipe.json"
    proc = subprocess.Popen(python_cmd("-m", "hybridlib", "recipe", "--profile", "smoke", "--n-val", "200",
                                       "--images", "256", "--stage", "1"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not (study.exists() and len(json.loads(study.read_text())["rows"]) >= 4):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-study: a sitting that ends
    proc.wait()
    before = json.loads(study.read_text())["rows"]
    assert len(before) >= 4
    trained = []

    def counting_train(config, *args, **kwargs):
        trained.append(config)
        return train(config, *args, **kwargs)

    monkeypatch.setattr("hybridlib.train.train", counting_train)
    out = recipe.run_recipe(get_config("smoke"), n_val=200, images=256, progress=False, stop_after_stage=1)
    settings = recipe.search_settings(get_config("smoke"))
    assert len(out["rows"]) == sum(len(s.objectives) for s in settings) and out["pending"] == []
    assert out["rows"][:len(before)] == before  # the finished runs read back, the same numbers
    assert 0 < len(trained) <= len(out["rows"]) - len(before) + 1  # only what had not finished (and the one killed)
    by_name = {s.name: s for s in settings}
    finished = {run_dir_for(recipe.search_config(get_config("smoke"), r["objective"], by_name[r["setting"]],
                                                 out["images"], 200)) for r in before}
    assert not finished & {run_dir_for(c) for c in trained}  # no finished run trained again


@pytest.mark.slow
def test_stages_3_and_4_confirm_by_the_claims_rule_time_each_target_and_resume(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDLIB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("HYBRIDLIB_RESULTS", str(tmp_path / "results"))
    config = dataclasses.replace(get_config("smoke", steps=8), eval=TINY)
    # a new recipe for two objectives, whatever the tiny runs score: stage 2's largest learning rate wins, and the
    # contrastive search keeps the old recipe
    monkeypatch.setattr(recipe, "score", lambda objective, row, default: 0.1 if row["stage"] == 2 and objective !=
                        "contrastive" and row["lr"] > 1.5 * config.train.lr else 0.0)
    out = recipe.run_recipe(config, n_val=200, images=128, progress=False, seeds=(0, 1))
    new = {o: out["stages"]["2"][o]["setting"] != "default" for o in OBJECTIVES}
    assert new == {"contrastive": False, "generative": True, "hybrid": True}
    assert len(out["confirm"]) == 2 * (3 + sum(new.values())) and out["pending"] == []
    for objective, decision in out["stages"]["3"].items():
        if not new[objective]:
            assert decision == {"adopted": False, "why": "the search kept the old recipe"}
            continue
        rows = {label: [r for r in out["confirm"] if r["objective"] == objective and r["recipe"] == label]
                for label in ("old", "new")}
        assert [r["seed"] for r in rows["new"]] == [0, 1] and all(r["steps"] * r["batch_size"] == 8 * 64
                                                                   for r in rows["new"] + rows["old"])
        assert all(len(r["curve"]) >= min(recipe.CURVE_POINTS, r["steps"]) for r in rows["old"])  # validation curves
        for metric, v in decision["verdicts"].items():
            sign = -1 if metric == "test_bits_per_dim" else 1
            g = sign * (np.mean([r[metric] for r in rows["new"]]) - np.mean([r[metric] for r in rows["old"]]))
            assert v["gap"] == pytest.approx(g)
        verdicts = [v["verdict"] for v in decision["verdicts"].values()]
        assert decision["adopted"] == ("held" in verdicts and "not held" not in verdicts)
    folder = tmp_path / "results" / "smoke"
    assert (folder / "figures" / "recipe_curves.png").exists() and "## Stage 3" in (folder / "recipe.md").read_text()

    def no_more_work(*args, **kwargs):
        raise AssertionError("a finished run was trained or evaluated again")

    with monkeypatch.context() as m:
        m.setattr("hybridlib.experiments.evaluate_model", no_more_work)
        m.setattr("hybridlib.train.train", no_more_work)
        again = recipe.run_recipe(config, n_val=200, images=128, progress=False, seeds=(0, 1), finished_only=True,
                                  stop_after_stage=3)
    assert again["confirm"] == out["confirm"] and again["stages"] == out["stages"]

    # stage 4 against targets of an old ladder (three seeds at 8 and 16 steps, as scaling.json holds them)
    old = [{"objective": o, "steps": steps, "seed": seed, "linear_probe_acc": acc, "test_bits_per_dim": bits}
           for o in OBJECTIVES for steps, acc, bits in ((8, 0.30, 1.9), (16, 0.99, 0.1)) for seed in (0, 1, 2)]
    (folder / "scaling.json").write_text(json.dumps({"rows": old}))
    timed = recipe.run_recipe(config, n_val=200, images=128, progress=False, seeds=(0, 1), stop_after_stage=4)
    t = timed["time_to_target"]
    assert {r["objective"] for r in t["rows"]} == {o for o in OBJECTIVES if new[o]}
    for r in t["rows"]:
        ladder = [p for p in t["ladder"] if p["objective"] == r["objective"]]
        assert r["old_steps"] == r["target_steps"]  # the old ladder reaches its own mean there, not before
        reached = [p["steps"] for p in ladder if (p[r["metric"]] <= r["target"] if r["metric"] == "test_bits_per_dim"
                                                   else p[r["metric"]] >= r["target"])]
        assert r["new_steps"] == (reached[0] if reached else None)
        if r["old_minutes"] and r["new_minutes"]:
            assert r["speedup"] == pytest.approx(r["old_minutes"] / r["new_minutes"])
        assert [p["budget"] for p in ladder] == list(recipe.LADDER[:len(ladder)])
    assert all(rate > 0 for rate in t["img_per_s"].values()) and "## Stage 4" in (folder / "recipe.md").read_text()
    assert set(t["img_per_s"]) == {f"{label} {o}" for o in ("generative", "hybrid") for label in ("old", "new")}
    with monkeypatch.context() as m:  # the throughput was measured once: a rerun reads it back
        m.setattr(recipe, "recipe_throughputs", no_more_work)
        again = recipe.run_recipe(config, n_val=200, images=128, progress=False, seeds=(0, 1), stop_after_stage=4)
    assert again["time_to_target"]["rows"] == t["rows"]
    # a fresh clone: no runs/ at all, only the committed recipe.json; nothing is trained or evaluated again
    shutil.rmtree(tmp_path / "runs")
    with monkeypatch.context() as m:
        m.setattr("hybridlib.experiments.evaluate_model", no_more_work)
        m.setattr("hybridlib.train.train", no_more_work)
        m.setattr(recipe, "recipe_throughputs", no_more_work)
        cloned = recipe.run_recipe(config, n_val=200, images=128, progress=False, seeds=(0, 1), stop_after_stage=4)
    assert cloned["pending"] == [] and cloned["rows"] == again["rows"] and cloned["confirm"] == again["confirm"]
    assert cloned["stages"] == again["stages"] and cloned["time_to_target"] == again["time_to_target"]


def test_recorded_runs_are_only_those_of_the_same_study(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDLIB_RESULTS", str(tmp_path))
    config = get_config("smoke")
    assert recipe.recorded_runs(recipe.recorded_study(config, 200, 128)) == {}  # no study yet
    run = recipe.search_config(config, "generative", recipe.Setting("default", "default"), 128, 200)
    key = recipe.run_key(run)
    assert key.startswith("smoke/seed0/generative-n_val200")
    row = {"stage": 1, "objective": "generative", "val_knn_acc": 0.5, "run": key}
    study = {"base_config": recipe._as_json(config), "n_val": 200, "images": 128, "rows": [row], "confirm": []}
    (tmp_path / "smoke").mkdir()
    (tmp_path / "smoke" / "recipe.json").write_text(json.dumps(study))
    assert recipe.recorded_runs(recipe.recorded_study(config, 200, 128)) == {key: row}
    assert recipe.recorded_runs(recipe.recorded_study(config, 200, 256)) == {}  # another search budget
    assert recipe.recorded_runs(recipe.recorded_study(config, 100, 128)) == {}  # another validation split
    assert recipe.recorded_runs(recipe.recorded_study(config.with_train(lr=0.01), 200, 128)) == {}  # another profile recipe
