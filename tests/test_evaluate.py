import dataclasses
import json

import numpy as np
import pytest
import torch

from hybridlib.config import EvalConfig, get_config
from hybridlib.corruptions import CORRUPTIONS, corrupt
from hybridlib.evaluate import (
    SUMMARY_KEYS, auroc, evaluate_baselines, evaluate_checkpoint, evaluate_model, expected_calibration_error,
    fit_linear_probe, knn_accuracy, ood_sets,
)
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
    assert set(r["ood"]) == {"knn_distance", "likelihood"} and r["ood_best_score"] in r["ood"]
    assert r["ood_auroc_mean"] == max(r["ood_auroc_mean_by_score"].values())
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


def test_knn_accuracy_equals_scikit_learns_classifier():
    from sklearn.neighbors import KNeighborsClassifier

    g = np.random.default_rng(0)
    train, test = g.normal(size=(500, 16)).astype(np.float32), g.normal(size=(300, 16)).astype(np.float32)
    y_train, y_test = g.integers(0, 4, 500), g.integers(0, 4, 300)
    for k in (1, 5, 20):
        sk = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(train, y_train)
        assert knn_accuracy(train, y_train, test, y_test, k, chunk=64) == float((sk.predict(test) == y_test).mean())
