"""The probe after every block: its features, its rule fixed in advance, and the study's files."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hybridlib import layers
from hybridlib.layers import (ONE_SEED, best_blocks, block_features, block_probes, layer_verdict, paired, run_layers,
                              saved_layers)
from hybridlib.model import HybridTransformer
from hybridlib.train import TrainResult

from conftest import cli


def standardised(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / x.std(0)


def test_the_last_encoder_blocks_features_are_the_representation_up_to_scale_and_shift(smoke_config, smoke_data):
    torch.manual_seed(0)
    model = HybridTransformer(smoke_config.model).eval()
    with torch.no_grad():  # a LayerNorm scale and shift that are not the identity, so the test can fail
        model.ln_rep.weight.uniform_(0.5, 2.0)
        model.ln_rep.bias.normal_()
    images = smoke_data.train_images[:64]
    features = block_features(model, smoke_data, images, batch_size=16)
    assert len(features) == smoke_config.model.n_encoder_layers + smoke_config.model.n_decoder_layers
    assert all(f.shape == (64, smoke_config.model.d_model) for f in features)
    with torch.no_grad():
        representation = model.represent(smoke_data.tokenizer.encode(images)).float().numpy()
    n_enc = smoke_config.model.n_encoder_layers
    np.testing.assert_allclose(standardised(features[n_enc - 1]), standardised(representation), atol=2e-2)  # bf16 where the CPU has it
    assert not np.allclose(features[n_enc - 1], representation, atol=0.2)


def test_the_paired_difference_by_hand():
    a = np.array([True, True, False, True])
    b = np.array([True, False, False, False])
    d, se = paired(a, b)  # per image: 0, 1, 0, 1
    assert d == 0.5 and se == pytest.approx(0.5 / 2)


@pytest.mark.parametrize("mean, std, error, verdict", [
    (0.0048, 0.0043, 0.0027, "level"),  # within twice the paired error
    (0.0080, 0.0043, 0.0027, "above"), (-0.0080, 0.0043, 0.0027, "below"),
    (0.0060, 0.0070, 0.0010, "level"),  # within the seeds' spread
])
def test_the_rule_fixed_before_the_runs(mean, std, error, verdict):
    assert layer_verdict(mean, std, error) == verdict


def test_one_seed_gets_no_verdict_and_tied_blocks_are_all_best():
    assert layer_verdict(0.05, None, 0.001) == ONE_SEED
    assert best_blocks([0.79, 0.80, 0.8103, 0.8103, 0.80]) == [3, 4]
    assert best_blocks([0.79, 0.81, 0.80]) == [2]


def test_the_study_writes_a_row_per_objective_and_leaves_out_missing_seeds(smoke_config, smoke_data, tmp_path,
                                                                           monkeypatch, capsys):
    monkeypatch.setenv("HYBRIDLIB_RESULTS", str(tmp_path))
    seen = []

    def fake_ensure_trained(config, data, progress, train_missing):  # two untrained models, seed 1 "missing"
        seen.append((config.train.objective, config.train.seed, train_missing))
        if config.train.seed == 1:
            raise layers.CheckpointError("no finished run")
        torch.manual_seed(config.train.seed)
        return TrainResult(tmp_path, config, HybridTransformer(config.model).eval(), [], 0, 0.0)

    monkeypatch.setattr(layers, "ensure_trained", fake_ensure_trained)
    out = run_layers(smoke_config, (0, 1, 2), finished_only=True, progress=False)
    assert {s for _, s, _ in seen} == {0, 1, 2} and not any(t for _, _, t in seen)
    printed = capsys.readouterr().out
    assert "seed 1 left out" in printed and "leaving layers.json as it was" in printed
    assert set(out["models"]) == {"generative", "hybrid"}
    n_enc = smoke_config.model.n_encoder_layers
    n_blocks = n_enc + smoke_config.model.n_decoder_layers
    for m in out["models"].values():
        assert m["seeds"] == [0, 2] and len(m["accuracy"]["mean"]) == n_blocks
        runs = [m["per_seed"][s] for s in ("0", "2")]
        for r in runs:  # the first decoder block minus the last encoder block, not another pair
            assert r["first_decoder_minus_representation"] == pytest.approx(r["accuracy"][n_enc] - r["accuracy"][n_enc - 1])
        d = [r["first_decoder_minus_representation"] for r in runs]
        spread = m["first_decoder_minus_representation"]
        assert spread["mean"] == pytest.approx(np.mean(d)) and spread["std"] == pytest.approx(np.std(d, ddof=1))
        assert m["verdict"] == layer_verdict(spread["mean"], spread["std"], m["mean_paired_standard_error"])
    assert not (tmp_path / "smoke" / "layers.json").exists() and saved_layers(smoke_config) is None  # partial
    assert out == json.loads((tmp_path / "smoke" / "layers-seeds0_2.json").read_text())
    assert "| generative | 0, 2 |" in (tmp_path / "smoke" / "layers-seeds0_2.md").read_text()


def test_the_full_study_is_the_one_saved_and_one_seed_has_no_spread(smoke_config, tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDLIB_RESULTS", str(tmp_path))

    def untrained(config, data, progress, train_missing):
        torch.manual_seed(config.train.seed)
        return TrainResult(tmp_path, config, HybridTransformer(config.model).eval(), [], 0, 0.0)

    monkeypatch.setattr(layers, "ensure_trained", untrained)
    out = run_layers(smoke_config, layers.SEEDS, progress=False)
    assert saved_layers(smoke_config) == out and all(m["seeds"] == list(layers.SEEDS) for m in out["models"].values())
    one = run_layers(smoke_config, (0,), progress=False)
    assert saved_layers(smoke_config) == out  # the one-seed study went elsewhere
    m = one["models"]["generative"]
    assert m["accuracy"]["std"] is None and m["first_decoder_minus_representation"]["std"] is None
    assert m["verdict"] == ONE_SEED
    md = (tmp_path / "smoke" / "layers-seeds0.md").read_text()
    assert "± 0.0000" not in md and ONE_SEED in md


def test_a_damaged_run_stops_the_study(smoke_config, tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDLIB_RESULTS", str(tmp_path))

    def damaged(config, data, progress, train_missing):
        raise layers.CheckpointError("a run of other settings")

    monkeypatch.setattr(layers, "ensure_trained", damaged)
    with pytest.raises(layers.CheckpointError):
        run_layers(smoke_config, (0, 1), progress=False)
    assert not (tmp_path / "smoke" / "layers.json").exists()


def test_block_probes_give_one_boolean_per_test_image_and_block(smoke_config, smoke_data):
    torch.manual_seed(0)
    correct = block_probes(HybridTransformer(smoke_config.model).eval(), smoke_data, smoke_config)
    n_test = len(smoke_data.test_images) if smoke_config.eval.n_test is None else \
        min(smoke_config.eval.n_test, len(smoke_data.test_images))
    assert len(correct) == smoke_config.model.n_encoder_layers + smoke_config.model.n_decoder_layers
    assert all(c.dtype == bool and c.shape == (n_test,) for c in correct)


def test_the_command_line_names_a_missing_profile_in_one_line(capsys):
    code, _, err = cli(capsys, "layers", "--profile", "no-such-profile")
    assert code == 2 and len(err) == 1
