"""Experiments over Configs: the summary cache, several seeds, and the exercises' computed answers."""
import json
import math

import pytest
import torch

from hybridlib import solutions
from hybridlib.config import get_config
from hybridlib.exercises import EXERCISES, is_correct
from hybridlib.evaluate import EVAL_PROTOCOL
from hybridlib.experiments import run_seeds, saved_seeds, saved_summary
from hybridlib.losses import Objective
from hybridlib.model import HybridTransformer
from hybridlib.paths import results_dir, results_stem
from hybridlib.report import COLUMNS, tradeoff_figure


def test_a_saved_summary_is_reused_only_for_the_same_configuration(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDLIB_RESULTS", str(tmp_path))
    config = get_config("smoke", "hybrid", seed=1)
    summary = {"seed": 1, "config": config.to_dict(), "models": {}}
    path = tmp_path / "smoke" / "seed1" / "summary.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(summary))
    assert saved_summary(config) is None  # no protocol: made before the evaluation protocol it would be compared under
    summary["protocol"] = EVAL_PROTOCOL - 1
    path.write_text(json.dumps(summary))
    assert saved_summary(config) is None
    summary["protocol"] = EVAL_PROTOCOL
    path.write_text(json.dumps(summary))
    assert saved_summary(config) == summary
    assert saved_summary(config.with_train(objective="generative")) == summary  # the summary covers all three
    assert saved_summary(config.with_train(seed=2)) is None  # another seed
    assert saved_summary(get_config("smoke", "hybrid", seed=1, n_ood=100)) is None  # other evaluation settings
    del summary["config"]["eval"]  # written before the evaluation settings joined the Config: the profile's
    path.write_text(json.dumps(summary))
    assert saved_summary(config) == summary
    summary["config"]["train"]["steps"] += 1  # written before the profile changed: stale
    path.write_text(json.dumps(summary))
    assert saved_summary(config) is None


def test_seeds_aggregate_the_saved_summaries(tmp_path, monkeypatch):
    """Each seed's summary is found (written by `make reproduce` or an earlier `make seeds`): nothing is trained,
    and the means, standard deviations and claims come from them. (evaluate_all itself runs in notebook 5.)"""
    monkeypatch.setenv("HYBRIDLIB_RESULTS", str(tmp_path))
    config = get_config("smoke")
    models = {name: {"linear_probe_acc": 0.7, "knn_acc": 0.6, "ood_auroc_near": 0.8, "ood_auroc_far": 0.99, "corruption_acc_mean": 0.5,
                     "ece": 0.02, "test_bits_per_dim": 1.0, "ood": {"knn_distance": {"digits": {"auroc": 0.8}}},
                     "ood_sets": {"near": ["digits"], "far": []}, "corruption": {"noise": [0.6, 0.5, 0.5, 0.4, 0.4],
                                                                      "blur": [0.6, 0.5, 0.5, 0.4, 0.4]}}
              for name in ("contrastive", "generative", "hybrid",
                                                                          "raw_pixels", "random_init")}
    for seed, acc in ((0, 0.80), (1, 0.84)):
        summary = {"seed": seed, "config": config.with_train(seed=seed).to_dict(), "protocol": EVAL_PROTOCOL,
                   "models": {**models, "hybrid": {**models["hybrid"], "linear_probe_acc": acc}}}
        (tmp_path / "smoke" / f"seed{seed}").mkdir(parents=True)
        (tmp_path / "smoke" / f"seed{seed}" / "summary.json").write_text(json.dumps(summary))
    out = run_seeds(config, (0, 1), progress=False)
    acc = out["models"]["hybrid"]["linear_probe_acc"]
    assert acc["values"] == [0.80, 0.84] and acc["mean"] == pytest.approx(0.82) and acc["std"] == pytest.approx(0.0283, abs=1e-4)
    curve = out["models"]["hybrid"]["corruption_curve"]  # severity 0 is the clean probe, then the corruptions' mean
    assert curve["mean"] == pytest.approx([0.82, 0.6, 0.5, 0.5, 0.4, 0.4]) and curve["std"][0] == pytest.approx(0.0283, abs=1e-4)
    claims = {c["id"]: c["verdict"] for c in out["claims"]}
    assert claims["c1"] == "held" and claims["a"] == "undecided"  # 0.12 ahead with spread 0.028; equal numbers
    assert (results_dir() / "smoke" / "seeds.md").read_text().startswith("# Profile `smoke`")
    # notebook 5 finds them for these settings, whichever seed it runs, and not for others
    assert saved_seeds(config.with_train(seed=1))["models"] == out["models"]
    assert saved_seeds(config.with_train(lam=0.5)) is None


def test_exercise_answers():
    assert is_correct("tokens-vocab", 262144)
    assert is_correct("bits-per-dim", 1.0)
    assert is_correct("nt-xent-orthogonal", math.log(1 + 2 * math.exp(-2)))
    assert not is_correct("tokens-vocab", 4096) and not is_correct("tokens-vocab", None)
    assert {"tokens-vocab", "nt-xent-orthogonal", "bits-per-dim", "hybrid-lambda"} <= set(EXERCISES)


def test_the_lambda_answer_weighs_the_two_initial_losses_equally():
    """The λ exercise's answer is read off the formula ln(V) / ln(2N - 1); the check here is against the
    losses an untrained cpu-profile model really has (random tokens, random views), not the formula again."""
    config = get_config("cpu", "hybrid").with_train(batch_size=solutions.LAMBDA_BATCH)  # the exercise's batch
    torch.manual_seed(0)
    objective = Objective(HybridTransformer(config.model), config.train, config.data.dims_per_token)
    tokens = [torch.randint(0, config.model.vocab_size, (config.train.batch_size, config.model.seq_len))
              for _ in range(3)]
    with torch.no_grad():
        out = objective(*tokens)
    ratio = float(out["gen_nll"] / out["con_loss"])
    answer = EXERCISES["hybrid-lambda"][0]()
    assert answer == pytest.approx(ratio, rel=0.1)
    assert is_correct("hybrid-lambda", answer) and not is_correct("hybrid-lambda", ratio * 1.5)


def test_a_sweep_with_other_settings_is_saved_beside_the_committed_one(tmp_path, monkeypatch):
    """Notebook 6 with a short STEPS (a class) or another seed must not replace the committed sweep's files."""
    monkeypatch.setenv("HYBRIDLIB_RESULTS", str(tmp_path))
    base = get_config("smoke", "hybrid")
    assert results_stem("tradeoff", base) == "tradeoff"
    assert results_stem("tradeoff", base.with_train(steps=10)) == "tradeoff-steps10"
    assert results_stem("tradeoff", base.with_train(seed=1, temperature=0.5)) == "tradeoff-temperature0.5-seed1"
    rows = [{"lam": lam, **{key: 0.5 for key in COLUMNS}} for lam in (0.0, 1.0)]
    rows.append({"lam": math.inf, **{key: 0.5 for key in COLUMNS}, "test_bits_per_dim": None})
    tradeoff_figure({"rows": rows, "generative": {"lam": None, **{key: 0.5 for key in COLUMNS}}},
                    base.with_train(steps=10))
    assert [p.name for p in (tmp_path / "smoke" / "figures").iterdir()] == ["tradeoff-steps10.png"]


def test_the_sweeps_lambda_0_is_the_hybrid_on_views_and_generative_only_stands_beside_it(tmp_path, monkeypatch):
    """λ = 0 of the sweep is the hybrid with its contrastive term off (its generative loss on the augmented views),
    not generative-only, which the sweep reports separately as the paper's reference."""
    import hybridlib.experiments as experiments
    monkeypatch.setenv("HYBRIDLIB_RESULTS", str(tmp_path))
    trained = []
    monkeypatch.setattr(experiments, "prepare_data", lambda cfg: None)
    monkeypatch.setattr(experiments, "ensure_trained", lambda config, *a, **k: trained.append(config) or config)
    monkeypatch.setattr(experiments, "evaluate_run", lambda config, *a, **k: {"linear_probe_acc": config.train.lam})
    base = get_config("smoke", "hybrid")
    sweep = experiments.lambda_sweep(base, lams=(0.1, 1.0), progress=False)
    assert [(r["lam"], r["objective"]) for r in sweep["rows"]] == [
        (0.0, "hybrid"), (0.1, "hybrid"), (1.0, "hybrid"), (math.inf, "contrastive")]
    assert [(c.train.objective, c.train.lam) for c in trained[:3]] == [("hybrid", 0.0), ("hybrid", 0.1), ("hybrid", 1.0)]
    assert trained[0].train.generative_input == base.train.generative_input != "clean"  # views, as the hybrid's
    assert sweep["generative"]["objective"] == "generative" and trained[-1].train.objective == "generative"
    saved = json.loads((tmp_path / "smoke" / "tradeoff.json").read_text())
    assert saved["generative"]["lam"] is None and saved["rows"][0]["lam"] == 0.0
