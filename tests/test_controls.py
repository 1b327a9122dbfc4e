"""The controls of the hybrid's bits/dim gap, the capacity sweep and the few-label axis (docs/controls.md): each
variant's wiring (which loss reaches which block), their validation, the few-label protocol, and that both studies
write their tables and resume."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from hybridlib import controls, fewlabel
from hybridlib.claims import judge_all
from hybridlib.config import EvalConfig, get_config, parameter_count
from hybridlib.errors import ConfigError
from hybridlib.flops import model_flops_per_step
from hybridlib.losses import Objective
from hybridlib.model import HybridTransformer
from hybridlib.paths import results_dir, run_dir_for
from hybridlib.probes import LinearProbe, whitened_basis

from conftest import assert_one_line_error, cli

TINY = EvalConfig(n_probe_train=300, n_test=200, n_ood=100, n_corrupt=20)
OWN = {"n_encoder_layers": 1, "n_decoder_layers": 2, "contrastive_block": True}


def _objective(stop: bool = False, **model):
    config = get_config("smoke", "hybrid").with_model(**{**OWN, **model}).with_train(stop_contrastive_gradient=stop)
    torch.manual_seed(0)
    model = HybridTransformer(config.model)
    tokens = [torch.randint(0, config.model.vocab_size, (8, config.model.seq_len)) for _ in range(3)]
    return model, Objective(model, config.train, config.data.dims_per_token), tokens


def _grads(model, prefix):
    return [p.grad for n, p in model.named_parameters() if n.startswith(prefix)]


def _touched(grads):
    return any(g is not None and bool(g.abs().sum() > 0) for g in grads)


def test_the_contrastive_block_receives_no_generative_gradient():
    model, objective, (clean, v1, v2) = _objective()
    objective(clean, v1, v2)["gen_nll"].backward()
    assert not _touched(_grads(model, "con_block")) and not _touched(_grads(model, "proj_head"))
    assert _touched(_grads(model, "encoder")) and _touched(_grads(model, "decoder"))


def test_the_contrastive_loss_reaches_the_shared_blocks_unless_stopped():
    for stop in (False, True):
        model, objective, (clean, v1, v2) = _objective(stop)
        objective(clean, v1, v2)["con_loss"].backward()
        assert _touched(_grads(model, "con_block")) and _touched(_grads(model, "proj_head"))
        # stopped: NT-Xent trains its own block and head only, never the shared blocks, embeddings or decoder
        assert _touched(_grads(model, "encoder") + _grads(model, "tok_emb")) is not stop
        assert not _touched(_grads(model, "decoder"))


def test_the_representation_is_pooled_from_the_contrastive_block():
    model, _, (tokens, _, _) = _objective()
    model.eval()
    h = model.forward_encoder(tokens)
    assert torch.allclose(model.represent(tokens), model.ln_rep(model.con_block(h)).mean(1))
    assert model.con_block is not None and HybridTransformer(get_config("smoke").model).con_block is None


def test_parameters_and_flops_count_the_contrastive_block():
    plain = get_config("smoke", "hybrid")
    own = plain.with_model(contrastive_block=True)
    model = HybridTransformer(own.model)
    assert parameter_count(own.model) == sum(p.numel() for p in model.parameters())
    assert parameter_count(own.model) > parameter_count(plain.model)
    assert model_flops_per_step(own) > model_flops_per_step(plain)


def test_the_stop_gradient_needs_the_hybrid_with_a_block_of_its_own(capsys):
    with pytest.raises(ConfigError, match="contrastive_block=True"):
        get_config("smoke", "hybrid", stop_contrastive_gradient=True)
    with pytest.raises(ConfigError, match="objective hybrid"):
        get_config("smoke", "generative", contrastive_block=True, stop_contrastive_gradient=True)
    assert_one_line_error(cli(capsys, "capacity", "--profile", "smoke", "--widths", "48"), "multiples of 32")


def test_the_controls_are_the_protocols_seven_configurations():
    config = get_config("cpu", "hybrid")
    made = {c.name: c.config(config, seed=1) for c in controls.controls(config)}
    assert len(made) == 7 and all(c.train.seed == 1 for c in made.values())
    g, h = made["G"], made["H"]
    assert g == get_config("cpu", "generative", seed=1) and h == get_config("cpu", "hybrid", seed=1)
    assert made["G, hybrid's lr"].train.lr == h.train.lr != g.train.lr
    views = made["G on views (λ = 0)"]
    assert views.train.objective == "hybrid" and views.train.lam == 0 and views.train.generative_input == "views"
    assert made["H, clean"].train.generative_input == "clean"
    own, stopped = made["H, own top block"], made["H, own top block, stop-gradient"]
    for c in (own, stopped):  # the generative path keeps its depth: 2 shared + 1 + 2 blocks
        assert (c.model.n_encoder_layers, c.model.n_decoder_layers, c.model.contrastive_block) == (2, 3, True)
    assert stopped.train.stop_contrastive_gradient and not own.train.stop_contrastive_gradient
    assert len({run_dir_for(c) for c in made.values()}) == 7  # no two share a run folder


def test_capacity_widths_keep_32_dimensions_per_head():
    configs = controls.capacity_configs(get_config("cpu", "hybrid"), 256)
    assert configs["G"].train.objective == "generative" and configs["H"].train.objective == "hybrid"
    assert all((c.model.d_model, c.model.n_head, c.model.proj_dim) == (256, 8, 128) for c in configs.values())
    assert controls.capacity_configs(get_config("cpu", "hybrid"), 128)["H"] == get_config("cpu", "hybrid")


# ---------------------------------------------------------------- few labels

def test_label_draws_are_class_balanced_reproducible_and_distinct():
    labels = np.repeat(np.arange(4), 30)
    a = fewlabel.draw_labelled(labels, 5, seed=3)
    assert np.array_equal(a, fewlabel.draw_labelled(labels, 5, seed=3))
    assert np.bincount(labels[a]).tolist() == [5] * 4 and len(set(a)) == 20
    assert not np.array_equal(a, fewlabel.draw_labelled(labels, 5, seed=4))
    seeds = {fewlabel.draw_seed(0, s, d, sel) for s in fewlabel.SHOTS for d in range(fewlabel.DRAWS) for sel in (0, 1)}
    assert len(seeds) == 2 * len(fewlabel.SHOTS) * fewlabel.DRAWS
    with pytest.raises(ValueError, match="fewer than 31"):
        fewlabel.draw_labelled(labels, 31, seed=0)


def _blobs(n_per_class, d=8, classes=3, seed=0, noise=0.3):
    centres = np.random.default_rng(0).normal(size=(classes, d)) * 3  # the same classes in every sample
    g = np.random.default_rng(seed)
    y = g.permutation(np.repeat(np.arange(classes), n_per_class))  # classes interleaved, as in a data set
    return (centres[y] + noise * g.normal(size=(len(y), d))).astype(np.float32), y


def test_few_label_reads_the_test_set_only_to_score():
    f_pool, y_pool = _blobs(200)
    f_test, y_test = _blobs(50, seed=1)
    out = fewlabel.few_label(f_pool, y_pool, f_test, y_test, knn_k=20)
    shuffled = fewlabel.few_label(f_pool, y_pool, f_test, np.random.default_rng(0).permutation(y_test), knn_k=20)
    assert set(out["few_label"]) == {"1", "10", "100"}
    for shots in ("1", "10", "100"):
        assert out["few_label"][shots]["C"] == shuffled["few_label"][shots]["C"]  # chosen without the test labels
        assert out["few_label"][shots]["knn_k"] == min(20, int(shots))
    assert out["few_label_probe_acc_100"] > 0.9 and out["few_label_knn_acc_10"] > 0.9  # separable blobs
    assert out["few_label_probe_acc_10_sem"] >= 0


def test_a_budget_a_class_cannot_give_is_skipped():
    f_pool, y_pool = _blobs(40)  # about 30 per class in the draw part
    out = fewlabel.few_label(f_pool, y_pool, *_blobs(10, seed=1), knn_k=20)
    assert set(out["few_label"]) == {"1", "10"} and "few_label_probe_acc_100" not in out


def test_the_probe_standardised_by_its_own_features_is_the_plain_probe():
    f, y = _blobs(30)
    plain, same = LinearProbe().fit(f, y), LinearProbe().fit(f, y, basis=whitened_basis(f))
    assert np.allclose(plain.predict_proba(f), same.predict_proba(f), atol=1e-5)
    few = np.concatenate([np.flatnonzero(y == c)[:2] for c in range(3)])  # two labelled images per class
    other = LinearProbe().fit(f[few], y[few], basis=whitened_basis(f))
    assert torch.allclose(other.mean, torch.from_numpy(f).mean(0))  # statistics of the unlabelled reference
    assert (other.predict(f) == y).mean() > 0.9


def test_a_few_label_claims_spread_is_at_least_its_draws_standard_error():
    models = {"hybrid": {"few_label_probe_acc_10": 0.70, "few_label_probe_acc_10_sem": 0.02},
              "raw_pixels": {"few_label_probe_acc_10": 0.69, "few_label_probe_acc_10_sem": 0.01}}
    claim = next(c for c in judge_all([models]) if c["id"] == "few")
    assert claim["spread"] == pytest.approx(0.02) and claim["verdict"] == "undecided"


# ---------------------------------------------------------------- the studies, on a tiny grid

def _tiny(steps=6):
    config = get_config("smoke", "hybrid", steps=steps, checkpoint_every=steps, n_encoder_layers=2)
    return dataclasses.replace(config, eval=TINY)


@pytest.mark.slow
def test_the_controls_study_tabulates_and_resumes():
    config = _tiny()
    pending = controls.run_controls(config, seeds=(0,), progress=False, finished_only=True)
    assert len(pending["pending"]) == 7 and not pending["rows"]
    out = controls.run_controls(config, seeds=(0,), progress=False)
    rows = {r["name"]: r for r in out["rows"]}
    assert len(rows) == 7 and rows["G"]["penalty"] == 0 and "vs_H" not in rows["H"]
    assert all(r["few_label_probe_acc_10"] is not None for r in rows.values())
    assert rows["H, own top block"]["parameters"] > rows["H"]["parameters"]
    written = json.loads((results_dir() / "smoke" / "controls.json").read_text())
    assert written["rule"] == controls.CONTROLS_RULE and not written["pending"]
    assert "What each cause costs" in (results_dir() / "smoke" / "controls.md").read_text()
    assert (results_dir() / "smoke" / "figures" / "controls_bits.png").exists()
    again = controls.run_controls(config, seeds=(0,), progress=False, finished_only=True)  # all read back
    assert again["rows"] == out["rows"]


@pytest.mark.slow
def test_the_capacity_study_judges_the_penalty_across_widths():
    config = _tiny()
    out = controls.run_capacity(config, widths=(32, 64), seeds=(0,), progress=False)
    assert [r["d_model"] for r in out["rows"]] == [32, 64]
    assert out["rows"][0]["parameters"] < out["rows"][1]["parameters"]
    assert out["trend"]["verdict"] in ("shrinks", "grows", "undecided") and out["trend"]["seeds"] == 1
    md = (results_dir() / "smoke" / "capacity.md").read_text()
    assert "the protocol asks for 3" in md and (results_dir() / "smoke" / "figures" / "capacity_penalty.png").exists()
