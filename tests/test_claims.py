"""The claims table and its one rule, on hand-made numbers."""
import pytest

from hybridlib.claims import CLAIMS, judge, judge_all

BASE = {"linear_probe_acc": 0.7, "knn_acc": 0.6, "ood_auroc_near": 0.8, "ood_auroc_far": 0.99, "corruption_acc_mean": 0.5, "ece": 0.02,
        "test_bits_per_dim": 1.0, "few_label_probe_acc_10": 0.6}


def fake_models(**over):
    """The five models with equal numbers, except ``model__metric=value``."""
    models = {n: dict(BASE) for n in ("contrastive", "generative", "hybrid", "raw_pixels", "random_init")}
    for key, value in over.items():
        name, metric = key.split("__")
        models[name][metric] = value
    return models


def verdicts(*per_seed):
    return {c["id"]: c["verdict"] for c in judge_all(list(per_seed))}


def test_every_claim_has_one_definition():
    assert [c.id for c in CLAIMS] == ["a", "b", "c1", "c2", "c3", "check", "few"]
    assert len({c.id for c in CLAIMS}) == len(CLAIMS)


@pytest.mark.parametrize("claim_id, better, worse", [
    ("a", {"contrastive__linear_probe_acc": 0.8}, {"generative__linear_probe_acc": 0.8}),
    ("b", {"generative__ood_auroc_near": 0.9}, {"contrastive__ood_auroc_near": 0.9}),
    ("c1", {"hybrid__linear_probe_acc": 0.8}, {"contrastive__linear_probe_acc": 0.8}),
    ("c2", {"hybrid__ood_auroc_near": 0.9}, {"generative__ood_auroc_near": 0.9}),
    ("c3", {"hybrid__test_bits_per_dim": 0.9}, {"hybrid__test_bits_per_dim": 1.05}),
    ("check", {"hybrid__linear_probe_acc": 0.8}, {"raw_pixels__linear_probe_acc": 0.8}),
    ("few", {"hybrid__few_label_probe_acc_10": 0.8}, {"raw_pixels__few_label_probe_acc_10": 0.8}),
])
def test_each_claim_points_the_right_way_on_one_seed(claim_id, better, worse):
    assert verdicts(fake_models(**better))[claim_id] == "held"
    assert verdicts(fake_models(**worse))[claim_id] == "not held"


def test_bits_per_dim_claim_allows_three_percent():
    assert verdicts(fake_models(hybrid__test_bits_per_dim=1.029))["c3"] == "held"
    assert verdicts(fake_models(hybrid__test_bits_per_dim=1.031))["c3"] == "not held"
    c3 = next(c for c in CLAIMS if c.id == "c3")
    assert judge(c3, [1.0], [1.0])["gap"] == pytest.approx(0.03)  # 3 % of generative's 1.0


def test_equal_numbers_are_undecided_except_with_a_tolerance():
    v = verdicts(fake_models())
    assert v["a"] == v["b"] == v["c1"] == v["c2"] == v["check"] == "undecided"
    assert v["c3"] == "held"


def test_several_seeds_count_only_gaps_beyond_the_spread():
    seeds = [fake_models(contrastive__linear_probe_acc=0.75 + d, hybrid__linear_probe_acc=0.745 + 2 * d,
                         hybrid__test_bits_per_dim=1.2 + d) for d in (-0.01, 0.0, 0.01)]
    v = verdicts(*seeds)
    assert v["a"] == "held"  # 0.05 ahead, spread 0.01
    assert v["c1"] == "undecided"  # 0.005 behind, spread 0.02
    assert v["c3"] == "not held"
    c = next(c for c in judge_all(seeds) if c["id"] == "c1")
    assert c["gap"] == pytest.approx(-0.005) and c["spread"] == pytest.approx(0.02)


def test_claims_with_a_missing_model_or_metric_are_left_out():
    models = fake_models()
    del models["raw_pixels"]
    models["contrastive"]["test_bits_per_dim"] = None
    assert [c["id"] for c in judge_all([models])] == ["a", "b", "c1", "c2", "c3"]


def test_a_single_seed_gap_inside_the_run_to_run_spread_decides_nothing():
    models = fake_models(hybrid__linear_probe_acc=0.705)  # 0.005 ahead of contrastive and raw pixels
    assert verdicts(models)["c1"] == "held"  # no floor: any gap decides one seed
    floored = {c["id"]: c for c in judge_all([models], {"linear_probe_acc": 0.006})}
    assert floored["c1"]["verdict"] == "undecided" and floored["c1"]["spread"] == 0.006
    assert floored["c1"]["held"] is None and verdicts(models)["c1"] == "held"
    worse_bits = fake_models(hybrid__linear_probe_acc=0.705, hybrid__test_bits_per_dim=1.1)  # 10 % behind
    assert [c["held"] for c in judge_all([worse_bits]) if c["id"] in ("c1", "c3")] == [True, False]  # as yes/no
    assert floored["c2"]["spread"] == 0.0  # a floor belongs to its metric only
    seeds = [fake_models(hybrid__linear_probe_acc=0.72 + d) for d in (-0.01, 0.0, 0.01)]
    c1 = next(c for c in judge_all(seeds, {"linear_probe_acc": 0.006}) if c["id"] == "c1")
    assert c1["spread"] == pytest.approx(0.01) and c1["verdict"] == "held"  # the seeds' spread is the larger
