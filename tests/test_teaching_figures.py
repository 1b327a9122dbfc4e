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
