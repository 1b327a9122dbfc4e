"""The long studies on a tiny grid: what they write, that the ablation rule picks what it says, and that
a second call trains and evaluates nothing (they resume across sittings)."""
import dataclasses
import json

import pytest
import torch

from hybridlib import studies
from hybridlib.config import EvalConfig, get_config
from hybridlib.experiments import evaluate_run
from hybridlib.losses import Objective, lam_at
from hybridlib.model import HybridTransformer
from hybridlib.paths import results_dir
from hybridlib.train import ensure_trained, train

TINY = EvalConfig(n_probe_train=300, n_test=200, n_ood=100, n_corrupt=20)


def tiny(steps: int = 10):
    return dataclasses.replace(get_config("smoke", "hybrid", steps=steps, checkpoint_every=steps), eval=TINY)


def test_lambda_ramps_linearly_over_its_warm_up_and_then_stays():
    cfg = get_config("smoke", "hybrid", lam=0.5, lam_warmup_steps=4).train
    assert [lam_at(s, cfg) for s in range(6)] == [0.0, 0.125, 0.25, 0.375, 0.5, 0.5]
    assert lam_at(0, get_config("smoke", "hybrid", lam=0.5).train) == 0.5  # no warm-up: λ from the start


def test_the_objective_weighs_the_contrastive_loss_by_the_steps_lambda():
    config = get_config("smoke", "hybrid", lam=2.0, lam_warmup_steps=10)
    torch.manual_seed(0)
    objective = Objective(HybridTransformer(config.model), config.train, config.data.dims_per_token)
    tokens = torch.randint(0, config.model.vocab_size, (8, config.model.seq_len))
    for step, weight in ((0, 0.0), (5, 1.0), (12, 2.0)):
        objective.set_step(step)
        out = objective(tokens, tokens, tokens.flip(0))
        loss, gen, con = (float(out[k].detach()) for k in ("loss", "gen_nll", "con_loss"))
        assert loss == pytest.approx(gen + weight * con, rel=1e-6)


def test_the_last_position_representation_is_the_encoders_last_output():
    config = get_config("smoke", "hybrid").with_model(pool="last")
    torch.manual_seed(0)
    model = HybridTransformer(config.model).eval()
    tokens = torch.randint(0, config.model.vocab_size, (3, config.model.seq_len))
    h = model.forward_encoder(tokens)
    assert torch.equal(model.representation(h), model.ln_rep(h)[:, -1])
    changed = tokens.clone()
    changed[:, 0] = (changed[:, 0] + 1) % config.model.vocab_size  # the last position sees every token
    assert not torch.allclose(model.represent(changed), model.represent(tokens))


def test_ablation_variants_change_one_factor_each_from_the_default():
    config = get_config("cpu", "hybrid")
    variants = studies.ablation_variants(config)
    assert variants[0].name == "default" and not variants[0].model and not variants[0].train
    assert all(len(v.model) + len(v.train) == 1 or v.factor == "encoder/decoder split" for v in variants[1:])
    depth = config.model.n_encoder_layers + config.model.n_decoder_layers
    for v in variants:
        v.apply(config)  # every variant is a valid configuration
        if v.factor == "encoder/decoder split":
            assert v.model["n_encoder_layers"] + v.model["n_decoder_layers"] == depth
    assert {v.factor for v in variants} == {"default", "λ", "λ warm-up", "generative input", "pool",
                                           "encoder/decoder split", "temperature"}


@pytest.mark.slow
def test_scaling_writes_rows_claims_and_figures_and_resumes(smoke_data, monkeypatch):
    monkeypatch.setattr(studies, "prepare_data", lambda cfg: smoke_data)
    nothing = studies.run_scaling(tiny(), steps=(5, 10), seeds={5: (0,), 10: (0, 1)}, finished_only=True)
    assert nothing["rows"] == [] and len(nothing["pending"]) == 9  # nothing trained yet, and nothing trained now
    assert "Not run yet" in (results_dir() / "smoke" / "scaling.md").read_text()
    out = studies.run_scaling(tiny(), steps=(5, 10), seeds={5: (0,), 10: (0, 1)}, progress=False)
    assert len(out["rows"]) == 9 and {r["objective"] for r in out["rows"]} == {"contrastive", "generative", "hybrid"}
    assert [(r["steps"], r["seed"]) for r in out["rows"][::3]] == [(5, 0), (10, 0), (10, 1)]  # seed 0 first
    at10 = [c for c in out["claims"] if c["steps"] == 10 and c["budget"] == "equal steps"]
    assert {c["id"] for c in at10} == {"a", "b", "c1", "c2", "c3", "check", "few"} and all(c["seeds"] == [0, 1] for c in at10)
    compute = {c["id"]: c for c in out["claims"] if c["budget"] == "equal compute" and c["steps"] == 5}
    assert compute["c3"]["other_steps"] == 10 and compute["c3"]["compute_ratio"] < 1.5  # the hybrid costs ~2x
    at_the_top = [c for c in out["claims"] if c["budget"] == "equal compute" and c["steps"] == 10]
    assert "c3" not in {c["id"] for c in at_the_top}  # its nearest partner, generative at 10 steps, is 2x off
    folder = results_dir() / "smoke"
    assert json.loads((folder / "scaling.json").read_text())["rows"] == out["rows"]
    assert (folder / "figures" / "scaling_metrics.png").exists() and (folder / "figures" / "scaling_claims.png").exists()
    assert "| hybrid | 10 | 0,1 |" in (folder / "scaling.md").read_text()
    assert "| raw pixels | – | – | " in (folder / "scaling.md").read_text()  # the check's baseline, untrained

    def no_more_work(*args, **kwargs):
        raise AssertionError("a finished run was trained or evaluated again")

    monkeypatch.setattr("hybridlib.experiments.evaluate_model", no_more_work)
    monkeypatch.setattr("hybridlib.train.train", no_more_work)
    again = studies.run_scaling(tiny(), steps=(5, 10), seeds={5: (0,), 10: (0, 1)}, progress=False, finished_only=True)
    assert again["rows"] == out["rows"] and again["pending"] == []


@pytest.mark.slow
def test_ablations_follow_the_declared_rule(smoke_data, monkeypatch):
    monkeypatch.setattr(studies, "prepare_data", lambda cfg: smoke_data)
    out = studies.run_ablations(tiny(8), finalists=2, seeds=(0, 1), progress=False)
    stage1 = [r for r in out["rows"] if r["stage"] == 1]
    assert [r["variant"] for r in stage1] == [v.name for v in studies.ablation_variants(tiny(8))]
    best = {}
    for r in stage1[1:]:
        levels = [stage1[0]] + [x for x in stage1 if x["factor"] == r["factor"]]
        best[r["factor"]] = max(levels, key=lambda x: (x["claims_held"], x["linear_probe_acc"]))["variant"]
    assert out["stages"]["2"]["best_level"] == best
    final = [r for r in out["rows"] if r["stage"] == 3]
    assert len(final) == 2 and all(r["seeds"] == [0, 1] for r in final)
    winner = max(final, key=lambda x: (x["claims_held"], x["linear_probe_acc"]))
    assert out["stages"]["3"]["winner"]["name"] == winner["variant"]
    text = (results_dir() / "smoke" / "ablations.md").read_text()
    assert "Fixed before any ablation ran" in text and f"Winner: {winner['variant']}" in text


@pytest.mark.slow
def test_an_evaluation_is_reused_only_for_the_same_weights(smoke_data, monkeypatch, tmp_path):
    monkeypatch.setenv("HYBRIDLIB_RUNS", str(tmp_path))
    config = tiny()
    run = ensure_trained(config, smoke_data, progress=False)
    first = evaluate_run(run, smoke_data, config.eval, progress=False)
    calls = []
    monkeypatch.setattr("hybridlib.experiments.evaluate_model", lambda *a, **k: calls.append(1) or {"again": True})
    assert (run.out_dir / "evaluation.json").exists()
    # read back (the finished run loaded again): the same numbers as computed, NaN as None in both
    again = evaluate_run(ensure_trained(config, smoke_data, progress=False), smoke_data, config.eval, progress=False)
    assert again == first and calls == []
    # the same folder trained again (same steps, another training): evaluated again
    retrained = train(config, run.out_dir, overwrite=True, progress=False, data=smoke_data)
    assert evaluate_run(retrained, smoke_data, config.eval, progress=False) == {"again": True} and calls == [1]
    # other evaluation settings: evaluated again
    evaluate_run(retrained, smoke_data, dataclasses.replace(config.eval, knn_k=3), progress=False)
    assert calls == [1, 1]
