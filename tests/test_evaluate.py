import dataclasses
import json

import numpy as np
import pytest
import torch

from hybridlib.config import EvalConfig, get_config
from hybridlib.corruptions import CORRUPTIONS, corrupt
from hybridlib.evaluate import (
    SUMMARY_KEYS, align_ood, auroc, evaluate_baselines, evaluate_checkpoint, evaluate_model,
    expected_calibration_error, ood_groups, ood_sets,
)
from hybridlib.probes import fit_linear_probe, knn_accuracy
from hybridlib.files import write_json
from hybridlib.train import train

from conftest import state_dicts_equal

rng = np.random.default_rng(0)
TINY = EvalConfig(n_probe_train=300, n_test=200, n_ood=100, n_corrupt=50)


def test_auroc_of_identical_distributions_is_one_half_and_of_separable_ones_is_one():
    a, b = rng.normal(size=20_000), rng.normal(size=20_000)
    assert auroc(a, b)[0] == pytest.approx(0.5, abs=0.01)
    value, fpr95 = auroc(rng.uniform(0, 1, 500), rng.uniform(2, 3, 500))
    assert value == 1.0 and fpr95 == 0.0
    assert auroc(rng.uniform(2, 3, 500), rng.uniform(0, 1, 500))[0] == 0.0  # orientation: higher = more OOD


def test_ece_of_a_calibrated_predictor_is_near_zero_and_of_an_overconfident_one_is_not():
    n, k = 50_000, 4
    confidence = rng.uniform(0.5, 1.0, n)  # the predicted class keeps the largest probability
    labels = rng.integers(0, k, n)
    correct = rng.uniform(size=n) < confidence  # right exactly as often as it claims
    predicted = np.where(correct, labels, (labels + 1) % k)
    probs = np.full((n, k), 0.0)
    probs[np.arange(n), predicted] = confidence
    probs[np.arange(n), (predicted + 1) % k] = 1 - confidence
    assert expected_calibration_error(probs, labels) < 0.01
    overconfident = np.zeros((n, k))
    overconfident[np.arange(n), predicted] = 1.0
    assert expected_calibration_error(overconfident, labels) == pytest.approx(1 - correct.mean(), abs=1e-9)


def test_probe_and_knn_solve_a_separable_problem():
    x = np.r_[rng.normal(-3, 1, (200, 5)), rng.normal(3, 1, (200, 5))]
    y = np.r_[np.zeros(200), np.ones(200)].astype(int)
    probe = fit_linear_probe(x, y)
    assert (probe.predict(x) == y).mean() > 0.99
    assert knn_accuracy(x, y, x, y, k=5) > 0.99


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruptions_are_deterministic_and_monotone_in_severity(name, smoke_data):
    from hybridlib.data import resize

    images = resize(smoke_data.source.test_images[:200], 14)  # the cpu profile's resolution
    damage = [float((corrupt(images, name, s, seed=0) - images).abs().mean()) for s in range(1, 6)]
    assert all(a < b for a, b in zip(damage, damage[1:])), damage
    assert torch.equal(corrupt(images, name, 3, seed=0), corrupt(images, name, 3, seed=0))
    out = corrupt(images, name, 5, seed=0)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1


def test_ood_sets_are_offline_and_shaped_like_the_data(smoke_data):
    sets = ood_sets(smoke_data, 50)
    assert {"vflip", "gaussian_noise", "uniform_noise", "constant"} <= set(sets)
    assert all(x.shape == (50, 1, 8, 8) and x.min() >= 0 and x.max() <= 1 for x in sets.values())


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, smoke_data):
    out = tmp_path_factory.mktemp("eval") / "hybrid"
    train(get_config("smoke", "hybrid", steps=30), out, progress=False, data=smoke_data)
    return out


@pytest.mark.slow
def test_evaluation_leaves_the_encoder_frozen(trained_run, smoke_data):
    from hybridlib.checkpoint import load_model

    model = load_model(trained_run)[0]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    evaluate_model(model, smoke_data, "hybrid", TINY, progress=False)
    assert state_dicts_equal(before, model.state_dict())


@pytest.mark.slow
def test_one_call_evaluates_every_axis_and_saves_json(trained_run, smoke_data, tmp_path):
    r = evaluate_checkpoint(trained_run, device="cpu", progress=False, cfg=TINY, data=smoke_data)
    for key in SUMMARY_KEYS + ("test_bits_per_dim",):
        assert 0 <= r[key] <= (1 if key != "test_bits_per_dim" else 2)
    assert r["linear_probe_acc"] > 0.2  # chance is 0.1 on digits
    assert set(r["ood"]) == {"knn_distance", "likelihood"}  # a hybrid has a trained decoder: both fixed scores
    assert r["ood_sets"] == {"near": ["vflip"], "far": ["gaussian_noise", "uniform_noise", "constant"]}  # digits data
    assert r["ood_auroc_near"] == r["ood"]["knn_distance"]["vflip"]["auroc"]
    assert r["ood_likelihood_auroc_far"] == pytest.approx(
        np.mean([r["ood"]["likelihood"][s]["auroc"] for s in r["ood_sets"]["far"]]))
    assert set(r["corruption"]) == set(CORRUPTIONS) and all(len(v) == 5 for v in r["corruption"].values())
    write_json(tmp_path / "r.json", r)
    loaded = json.loads((tmp_path / "r.json").read_text())
    assert loaded["objective"] == "hybrid" and loaded["step"] == 30


@pytest.mark.slow
def test_baselines(smoke_data):
    b = evaluate_baselines(dataclasses.replace(get_config("smoke"), eval=TINY), smoke_data, progress=False)
    assert set(b) == {"raw_pixels", "random_init"}
    assert b["raw_pixels"]["feature_dim"] == 64 and b["raw_pixels"]["linear_probe_acc"] > 0.8
    assert "test_bits_per_dim" not in b["raw_pixels"]
    assert set(b["random_init"]["ood"]) == {"knn_distance"}  # no trained decoder: no likelihood score, no bits/dim
    assert "test_bits_per_dim" not in b["random_init"] and "ood_likelihood_auroc_near" not in b["random_init"]


def test_ood_sets_split_into_near_and_far_in_order():
    assert ood_groups(["digits", "mnist", "vflip", "gaussian_noise", "uniform_noise", "constant"]) == {
        "near": ["digits", "mnist", "vflip"], "far": ["gaussian_noise", "uniform_noise", "constant"]}


def test_runs_with_different_ood_sets_are_compared_on_the_sets_both_have():
    def run(per_set):
        ood = {s: {"auroc": a} for s, a in per_set.items()}
        groups = ood_groups(list(per_set))
        return {"m": {"ood": {"knn_distance": ood}, "ood_sets": groups,
                      "ood_auroc_near": float(np.mean([per_set[s] for s in groups["near"]]))}}

    with_mnist = run({"digits": 0.8, "mnist": 0.5, "vflip": 0.9, "constant": 1.0})
    without = run({"digits": 0.7, "vflip": 0.8, "constant": 0.9})
    a, b = align_ood([with_mnist, without])
    assert a["m"]["ood_sets"] == {"near": ["digits", "vflip"], "far": ["constant"]}
    assert a["m"]["ood_auroc_near"] == pytest.approx(0.85) and b["m"]["ood_auroc_near"] == pytest.approx(0.75)
    assert with_mnist["m"]["ood_auroc_near"] == pytest.approx(0.7333, abs=1e-4)  # the inputs are left as they were


def test_linear_probe_reaches_scikit_learns_optimum():
    """The same objective (L2-penalised multinomial logistic regression, C = 1, standardised features) solved
    by scikit-learn run to a tight tolerance: the same probabilities, on correlated features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    g = np.random.default_rng(1)
    latent = g.normal(size=(1500, 6))
    x = (latent @ g.normal(size=(6, 24)) + 0.3 * g.normal(size=(1500, 24))).astype(np.float32)  # correlated columns
    y = (latent[:, :4] + 0.5 * g.normal(size=(1500, 4))).argmax(1)  # four classes, not separable
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, tol=1e-10, max_iter=20_000)).fit(x, y)
    ours = fit_linear_probe(x, y)
    assert np.abs(ours.predict_proba(x) - reference.predict_proba(x)).max() < 2e-3


def test_knn_accuracy_equals_scikit_learns_classifier():
    from sklearn.neighbors import KNeighborsClassifier

    g = np.random.default_rng(0)
    train, test = g.normal(size=(500, 16)).astype(np.float32), g.normal(size=(300, 16)).astype(np.float32)
    y_train, y_test = g.integers(0, 4, 500), g.integers(0, 4, 300)
    for k in (1, 5, 20):
        sk = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(train, y_train)
        assert knn_accuracy(train, y_train, test, y_test, k, chunk=64) == float((sk.predict(test) == y_test).mean())
