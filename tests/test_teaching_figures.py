"""The figures notebook 5 draws to look inside the evaluation, each on tiny synthetic inputs, and the per-block
hidden states its layer-wise probe reads."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.colors import to_rgba
from matplotlib.text import Annotation, Text

from hybridlib import plots
from hybridlib.config import ModelConfig
from hybridlib.model import HybridTransformer

CFG = ModelConfig(vocab_size=16, seq_len=9, d_model=32, n_head=4, n_encoder_layers=2, n_decoder_layers=3, proj_dim=8,
                  pixel_levels=2, token_pixels=4)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _font_sizes(fig: plt.Figure) -> list[float]:
    """The size of every piece of text with something in it: titles, axis labels, tick labels, legends, notes."""
    return [t.get_fontsize() for t in fig.findobj(Text) if t.get_text().strip()]


def test_bits_histograms_one_panel_one_histogram_and_mean_per_set():
    rng = np.random.default_rng(0)
    bits = {"test": 1 + rng.random(50), "vflip": 1.2 + rng.random(50), "constant": 0.2 * rng.random(50)}
    fig = plots.bits_histograms(bits, title="generative")
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == \
        [f"{name} (mean {v.mean():.2f})" for name, v in bits.items()]
    assert len(ax.lines) == 3 and ax.get_title() == "generative" and ax.get_xlabel() and ax.get_ylabel()
    assert min(_font_sizes(fig)) >= 10


def test_layer_probe_marks_the_encoder_decoder_boundary():
    accuracies = {"generative": [0.5, 0.6, 0.55, 0.4, 0.3], "hybrid": [0.6, 0.7, 0.6, 0.5, 0.45]}
    fig = plots.layer_probe(accuracies, n_encoder=2, references={"raw_pixels": 0.65})
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    curves = [line for line in ax.lines if len(line.get_xdata()) == 5]
    assert [list(line.get_ydata()) for line in curves] == list(accuracies.values())
    assert list(curves[0].get_xdata()) == [1, 2, 3, 4, 5]
    vertical = [line for line in ax.lines if list(line.get_xdata()) == [2.5, 2.5]]
    assert len(vertical) == 1  # between the last encoder block (2) and the first decoder block (3)
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    assert min(_font_sizes(fig)) >= 10


def test_embedding_2d_one_panel_per_model_and_a_legend_of_the_classes():
    rng = np.random.default_rng(0)
    labels = np.arange(30) % 3
    points = {name: rng.normal(size=(30, 2)) for name in ("contrastive", "generative", "hybrid")}
    fig = plots.embedding_2d(points, labels, ["zero", "one", "two"])
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == list(points)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["zero", "one", "two"]
    assert all(len(ax.collections) == 3 for ax in fig.axes)  # one scatter per class
    assert min(_font_sizes(fig)) >= 10


def test_retrieval_rows_one_block_of_rows_per_model():
    queries = torch.rand(2, 1, 4, 4)
    neighbours = {name: torch.rand(2, 5, 1, 4, 4) for name in ("contrastive", "generative", "hybrid")}
    same = {name: np.array([[True, False, True, True, False]] * 2) for name in neighbours}
    fig = plots.retrieval_rows(queries, neighbours, same)
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 3 * 2 * 6  # 3 models x 2 queries, query + 5 neighbours
    rows = np.array(fig.axes).reshape(6, 6)
    names = [t.get_text() for t in fig.texts]
    assert [n for n in names if n in neighbours] == list(neighbours)  # each block's name, at its left
    assert rows[0, 2].spines["left"].get_edgecolor() == to_rgba("tab:red")
    assert rows[0, 1].spines["left"].get_edgecolor() == to_rgba("tab:green")
    assert min(_font_sizes(fig)) >= 10
    assert len(plots.retrieval_rows(queries, neighbours).axes) == 36  # the class frames are optional


def test_hidden_states_are_the_outputs_of_every_block():
    torch.manual_seed(0)
    model = HybridTransformer(CFG).eval()
    tokens = torch.randint(0, 16, (3, 9))
    states = model.hidden_states(tokens)
    assert len(states) == CFG.n_encoder_layers + CFG.n_decoder_layers
    assert all(s.shape == (3, 10, 32) for s in states)
    h = model.forward_encoder(tokens)
    torch.testing.assert_close(states[CFG.n_encoder_layers - 1], h)
    torch.testing.assert_close(model.ln_f(states[-1]), model.decoder_hidden(h))
    # the last encoder state, layer-normed without scale or shift and mean-pooled, is the representation up to the
    # per-feature scale and shift of ln_rep, which a probe's standardisation removes
    pooled = F.layer_norm(states[CFG.n_encoder_layers - 1], (32,)).mean(1)
    torch.testing.assert_close(pooled * model.ln_rep.weight + model.ln_rep.bias, model.represent(tokens))


def test_tradeoff_plot_draws_the_ends_and_generative_only_as_lines_not_at_invented_lambdas():
    rows = [{"lam": 0.0, "probe": 0.71, "bits": 0.85}, {"lam": 0.1, "probe": 0.74, "bits": 0.95},
            {"lam": 1.0, "probe": 0.78, "bits": 1.05}, {"lam": float("inf"), "probe": 0.77, "bits": None}]
    fig = plots.tradeoff_plot(rows, ("probe", "bits"), generative={"lam": None, "probe": 0.70, "bits": 0.8})
    probe, bits = fig.axes
    hybrid = probe.lines[0]
    assert list(hybrid.get_xdata()) == [0.1, 1.0] and list(hybrid.get_ydata()) == [0.74, 0.78]
    # generative-only (clean images), the hybrid at λ = 0 and contrastive-only: horizontal lines spanning the axis
    assert [tuple(line.get_ydata()) for line in probe.lines[1:]] == [(0.70, 0.70), (0.71, 0.71), (0.77, 0.77)]
    assert [tuple(line.get_xdata()) for line in probe.lines[1:]] == [(0, 1)] * 3
    assert [line.get_label() for line in probe.lines[1:3]] == ["generative only (clean images)",
                                                              "hybrid at λ = 0 (generative loss on views)"]
    assert len(bits.lines) == 3  # the contrastive model has no bits/dim: no line for it
    assert probe.get_xscale() == "log" and min(_font_sizes(fig)) >= 10


def test_completions_mark_where_the_prompt_ends():
    given, completed = torch.rand(3, 1, 8, 8), torch.rand(3, 1, 8, 8)
    fig = plots.completions(given, completed, prompt_rows=4)
    marked = [ax for ax in fig.axes if ax.lines]
    assert len(fig.axes) == 6 and marked == fig.axes[3:]
    assert all(tuple(ax.lines[0].get_ydata()) == (3.5, 3.5) for ax in marked)


def test_compare_bars_says_when_an_axis_does_not_start_at_zero():
    models = {"a": {"acc": 0.80}, "b": {"acc": 0.82}}
    notes = [t.get_text() for t in plots.compare_bars(models, ["acc"]).texts]
    assert notes == ["the y axes do not start at 0"]
    assert plots.compare_bars({"a": {"x": 0.01}, "b": {"x": 0.5}}, ["x"]).texts == []


def test_the_architecture_figure_draws_every_box_and_where_each_loss_attaches():
    ax = plots.architecture().axes[0]
    labels = [t.get_text() for t in ax.texts if not isinstance(t, Annotation)]
    assert all(label in labels for label, *_ in plots._ARCHITECTURE_BOXES.values())
    assert sum("L_con" in t for t in labels) == 2 and sum("L_gen" in t for t in labels) == 2  # its loss and the sum
    assert len([t for t in ax.texts if isinstance(t, Annotation)]) == len(plots._ARCHITECTURE_ARROWS)


def test_layer_probe_draws_each_blocks_standard_error():
    accuracies = {"generative": [0.5, 0.6, 0.55], "hybrid": [0.6, 0.7, 0.6]}
    errors = {"generative": [0.01, 0.02, 0.03], "hybrid": [0.005, 0.005, 0.005]}
    ax = plots.layer_probe(accuracies, n_encoder=2, errors=errors).axes[0]
    bars = [c for c in ax.collections if len(c.get_segments()) == 3]
    assert len(bars) == 2
    for collection, (name, acc) in zip(bars, accuracies.items()):
        spans = [(seg[0][1], seg[1][1]) for seg in collection.get_segments()]
        assert np.allclose(spans, [(a - e, a + e) for a, e in zip(acc, errors[name])])


def test_compare_bars_wraps_seven_metrics_into_rows_not_a_strip():
    models = {"a": {f"m{i}": 0.5 for i in range(7)}, "b": {f"m{i}": 0.6 for i in range(7)}}
    fig = plots.compare_bars(models, [f"m{i}" for i in range(7)])
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 7 and [ax.get_title() for ax in shown] == [f"m{i}" for i in range(7)]
    width, height = fig.get_size_inches()
    assert width / height < 2.5  # a slide's shape, not a 7:1 strip


def test_reliability_diagrams_show_how_many_images_each_bin_holds():
    bins = [{"lower": i / 4, "upper": (i + 1) / 4, "count": c, "confidence": None if not c else (i + 0.5) / 4,
             "accuracy": None if not c else (i + 0.4) / 4} for i, c in enumerate((0, 3, 40, 900))]
    models = {"a": {"reliability": bins, "ece": 0.02, "ece_corrupted": 0.2}, "b": {"reliability": bins, "ece": 0.01}}
    fig = plots.reliability_diagrams(models)
    assert len(fig.axes) == 4  # row-major: the two diagrams, then the two count panels under them
    top, counts = fig.axes[:2], fig.axes[2:]
    assert [round(p.get_height()) for p in counts[0].patches] == [3, 40, 900]  # the empty bin is left out
    assert counts[0].get_yscale() == "log" and counts[0].get_ylabel() == "images"
    assert top[0].get_title() == "a\nECE 0.020\ncorrupted 0.200" and top[1].get_title() == "b\nECE 0.010"


def test_corruption_curves_draw_the_seeds_mean_and_spread_where_given():
    models = {"a": {"linear_probe_acc": 0.8, "corruption": {"noise": [0.7, 0.6, 0.5, 0.4, 0.3],
                                                              "blur": [0.7, 0.6, 0.5, 0.4, 0.3]}}}
    alone = plots.corruption_curves(models).axes[0]
    assert list(alone.lines[0].get_ydata()) == pytest.approx([0.8, 0.7, 0.6, 0.5, 0.4, 0.3]) and not alone.collections
    seeds = {"seeds": [0, 1, 2], "models": {"a": {"corruption_curve": {"mean": [0.9] * 6, "std": [0.02] * 6}}}}
    ax = plots.corruption_curves(models, seeds).axes[0]
    assert list(ax.lines[0].get_ydata()) == [0.9] * 6 and "seeds 0, 1, 2" in ax.get_title()
    spans = [(seg[0][1], seg[1][1]) for seg in ax.collections[0].get_segments()]
    assert np.allclose(spans, [(0.88, 0.92)] * 6)


def test_tradeoff_plot_bands_the_hybrids_with_the_run_to_run_spread():
    rows = [{"lam": 0.1, "probe": 0.74, "bits": 0.95}, {"lam": 1.0, "probe": 0.78, "bits": 1.05}]
    probe, bits = plots.tradeoff_plot(rows, ("probe", "bits"), spread={"probe": 0.01}).axes
    (band,) = probe.collections
    lows, highs = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
    assert (lows, highs) == pytest.approx((0.73, 0.79))
    assert not bits.collections  # no spread given for it: no band
    assert not plots.tradeoff_plot(rows, ("probe",)).axes[0].collections


def test_training_curves_say_their_units():
    history = [{"step": s, "con_loss": 5.0 - s / 10, "bits_per_dim": 1.0} for s in range(1, 11)]
    titles = [ax.get_title() for ax in plots.plot_history(history, ["con_loss", "bits_per_dim"]).axes]
    assert titles == ["contrastive loss L_con (nats)", "training bits/dim"]
    ax = plots.compare_histories({"hybrid": history}, "con_loss").axes[0]
    assert ax.get_ylabel() == "contrastive loss L_con (nats)"


def test_the_similarity_matrix_frames_each_rows_positive_and_blanks_the_diagonal():
    z1 = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    fig = plots.similarity_matrix(z1, z1 + 0.1, temperature=0.5)
    ax = fig.axes[0]
    grid = ax.images[0].get_array()
    assert grid.shape == (6, 6) and np.isnan(np.diag(np.asarray(grid.filled(np.nan), float))).all()
    z = F.normalize(torch.cat([z1, z1 + 0.1]), dim=1)
    assert grid[0, 1] == pytest.approx(float(z[0] @ z[1]) / 0.5, rel=1e-5)
    framed = sorted((round(p.get_y() + 0.5), round(p.get_x() + 0.5)) for p in ax.patches)
    assert framed == [(0, 3), (1, 4), (2, 5), (3, 0), (4, 1), (5, 2)]  # row k's positive: k + N, and back
    assert min(_font_sizes(fig)) >= 10


def test_the_causal_mask_hides_exactly_the_future():
    ax = plots.causal_mask(4).axes[0]
    hidden = np.asarray(ax.images[0].get_array())
    assert (hidden == np.triu(np.ones((4, 4)), 1)).all()
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert cells[(0, 1)] == "−∞" and cells[(1, 0)] == "read" and cells[(3, 3)] == "read"


def test_slides_are_written_one_png_each(tmp_path, monkeypatch):
    from hybridlib import slides
    from hybridlib.config import get_config

    monkeypatch.setenv("HYBRIDLIB_RESULTS", str(tmp_path))
    z = torch.randn(slides.SLIDE_IMAGES, 8, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(slides, "view_projections", lambda config, data, progress=True: (z, z + 0.1))
    paths = slides.write_slides(get_config("smoke", "contrastive"), data=None)
    assert [p.name for p in paths] == ["architecture.png", "causal_mask.png", "nt_xent_similarity.png"]
    assert all(p.parent == tmp_path / "smoke" / "slides" and p.stat().st_size > 10_000 for p in paths)
