"""Figures for the notebooks and the report. Each function returns a matplotlib Figure."""
from __future__ import annotations

import math
import textwrap
from typing import Any, Sequence

import matplotlib.pyplot as plt
from matplotlib.ticker import NullLocator
import numpy as np
import torch.nn.functional as F
from torch import Tensor, cat

from .evaluate import corruption_curve

MODEL_COLOURS = {"contrastive": "tab:blue", "generative": "tab:orange", "hybrid": "tab:green",
                 "raw_pixels": "tab:gray", "random_init": "lightgray"}


def _imshow(ax: plt.Axes, image: Tensor) -> None:
    """One (C, H, W) image in [0, 1]: grey levels or RGB, pixels shown as blocks."""
    img = image.detach().cpu().float()
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")


def show_images(images: Tensor, nrow: int = 8, titles: Sequence[str] | None = None, scale: float = 1.2,
                suptitle: str | None = None) -> plt.Figure:
    """A grid of (N, C, H, W) images in [0, 1]."""
    n = len(images)
    ncol = min(nrow, n)
    rows = math.ceil(n / ncol)
    fig, axes = plt.subplots(rows, ncol, figsize=(scale * ncol, scale * rows + (0.3 if suptitle else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            _imshow(ax, images[i])
            if titles is not None:
                ax.set_title(titles[i], fontsize=10)
    if suptitle:
        fig.suptitle(suptitle, fontsize=12)
    fig.tight_layout()
    return fig


def show_rows(rows: dict[str, Tensor], scale: float = 1.0) -> plt.Figure:
    """Several labelled rows of images, e.g. originals / view 1 / view 2."""
    n = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), n, figsize=(scale * n, scale * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                _imshow(ax, images[c])
            if c == 0:
                ax.set_ylabel(label, fontsize=11)
    fig.tight_layout()
    return fig


def completions(given: Tensor, completed: Tensor, prompt_rows: int, scale: float = 1.0) -> plt.Figure:
    """Test images over the model's completions of them; a red line on each completion where the prompt (its top
    ``prompt_rows`` pixel rows, copied from the test image) ends and the sampled part begins."""
    fig = show_rows({"test image": given, "completed": completed}, scale=scale)
    for ax in fig.axes[len(given):]:
        ax.axhline(prompt_rows - 0.5, color="red", lw=2)
    fig.axes[len(given)].set_ylabel("completed\n(below red)", fontsize=11)
    return fig


# what each logged number is, with its unit: NT-Xent and the next-token loss are natural-log cross-entropies
HISTORY_LABELS = {"loss": "total loss (nats)", "con_loss": "contrastive loss L_con (nats)",
                  "gen_nll": "generative loss L_gen (nats per token)", "bits_per_dim": "training bits/dim",
                  "val_bits_per_dim": "validation bits/dim", "val_knn_acc": "validation kNN accuracy",
                  "lr": "learning rate"}


def history_label(key: str) -> str:
    return HISTORY_LABELS.get(key, key.replace("_", " "))


def plot_history(history: list[dict[str, float]], keys: Sequence[str], title: str = "") -> plt.Figure:
    """Training curves: one panel per key that the history holds, against the step. A key logged at some steps only
    (the validation metrics, every ``eval_every`` steps) is drawn through its own points, marked."""
    def points(key: str) -> list[tuple[float, float]]:
        return [(row["step"], row[key]) for row in history if not math.isnan(row.get(key, math.nan))]

    keys = [k for k in keys if points(k)]
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(4 * max(1, len(keys)), 3), squeeze=False)
    for ax, key in zip(axes[0], keys):
        xy = points(key)
        sparse = len(xy) < len(history) / 2
        ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o" if sparse else None, ms=3)
        ax.set_xlabel("step")
        ax.set_title(history_label(key))
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def compare_histories(histories: dict[str, list[dict[str, float]]], key: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 3))
    for name, history in histories.items():
        ax.plot([r["step"] for r in history], [r.get(key, float("nan")) for r in history], label=name,
                color=MODEL_COLOURS.get(name))
    ax.set_xlabel("step")
    ax.set_ylabel(history_label(key))
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def compare_bars(models: dict[str, dict[str, Any]], keys: Sequence[str],
                 errors: dict[str, dict[str, float]] | None = None, per_row: int = 4) -> plt.Figure:
    """One panel per metric, one bar per model (missing values are left out); ``errors`` (model -> metric ->
    standard deviation over seeds) draws error bars. At most ``per_row`` panels a row, so that seven metrics make a
    figure of about 3:2, not a strip."""
    n_rows = math.ceil(len(keys) / per_row)
    n_cols = min(len(keys), per_row)
    fig, grid = plt.subplots(n_rows, n_cols, figsize=(3.2 * n_cols, 3.4 * n_rows), squeeze=False)
    axes = grid.ravel()[:len(keys)]
    for ax in grid.ravel()[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes, keys):
        names = [n for n in models if models[n].get(key) is not None]
        values = [models[n][key] for n in names]
        yerr = [errors.get(n, {}).get(key, 0.0) for n in names] if errors is not None else None
        bars = ax.bar(range(len(names)), values, yerr=yerr, capsize=4,
                      color=[MODEL_COLOURS.get(n, "tab:purple") for n in names])
        ax.set_xticks(range(len(names)), names, fontsize=10, rotation=35, ha="right")
        ax.set_title(key.replace("_", " "), fontsize=12)
        ax.bar_label(bars, fmt="%.3f", fontsize=9)
        if values:  # zoomed in on the values, or differences of 0.01 would not show: said under the figure
            lo = min(v - (e or 0) for v, e in zip(values, yerr or [0] * len(values)))
            hi = max(v + (e or 0) for v, e in zip(values, yerr or [0] * len(values)))
            ax.set_ylim(max(0.0, lo - 0.15 * (hi - lo + 1e-3) - 0.05), hi + 0.15 * (hi - lo + 1e-3) + 0.02)
    fig.tight_layout()
    if any(ax.get_ylim()[0] > 0 for ax in axes):
        fig.text(0.5, -0.02, "the y axes do not start at 0", ha="center", va="top", fontsize=10, style="italic")
    return fig


def corruption_curves(models: dict[str, dict[str, Any]], seeds: dict[str, Any] | None = None) -> plt.Figure:
    """Probe accuracy against severity (0 = clean), averaged over corruptions: this run's, or with ``seeds``
    (`run_seeds`' output) the mean over its seeds with their standard deviation as error bars."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, r in models.items():
        curve = (seeds or {}).get("models", {}).get(name, {}).get("corruption_curve")
        mean, std = (curve["mean"], curve["std"]) if curve else (corruption_curve(r), None)
        ax.errorbar(range(6), mean, yerr=std, marker="o", capsize=3, label=name, color=MODEL_COLOURS.get(name))
    ax.set_xlabel("severity (0 = clean)", fontsize=11)
    ax.set_ylabel("linear-probe accuracy", fontsize=11)
    if seeds is not None:
        ax.set_title(f"seeds {', '.join(map(str, seeds['seeds']))}: mean ± standard deviation", fontsize=11)
    ax.legend(fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def reliability_diagrams(models: dict[str, dict[str, Any]]) -> plt.Figure:
    """Each model's probe on the clean test images (Guo et al., 2017): above, the accuracy in each confidence bin of
    the ECE against the diagonal; below, how many images each bin holds (log axis), the weights of the ECE's mean."""
    fig, axes = plt.subplots(2, len(models), figsize=(2.8 * len(models), 4.3), squeeze=False, sharex=True,
                             gridspec_kw={"height_ratios": [3, 1.3]})
    for (ax, counts), (name, r) in zip(axes.T, models.items()):
        width = 1 / len(r["reliability"])
        bins = [b for b in r["reliability"] if b["count"]]
        centres = [(b["lower"] + b["upper"]) / 2 for b in bins]
        colour = MODEL_COLOURS.get(name, "tab:purple")
        ax.bar(centres, [b["accuracy"] for b in bins], width=width, edgecolor="k", color=colour, alpha=0.8)
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        corrupted = f"\ncorrupted {r['ece_corrupted']:.3f}" if r.get("ece_corrupted") is not None else ""
        ax.set_title(f"{name}\nECE {r['ece']:.3f}{corrupted}", fontsize=11)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        counts.bar(centres, [b["count"] for b in bins], width=width, edgecolor="k", color="0.7")
        counts.set_yscale("log")
        counts.set_xlabel("confidence", fontsize=10)
    axes[0, 0].set_ylabel("accuracy")
    axes[1, 0].set_ylabel("images")
    fig.tight_layout()
    return fig


def ood_heatmap(models: dict[str, dict[str, Any]]) -> plt.Figure:
    """AUROC of every model and fixed score (one row each) on every OOD set, near sets left of the line."""
    rows = [(n, score) for n, r in models.items() for score in r["ood"]]
    groups = next(iter(models.values()))["ood_sets"]
    sets = groups["near"] + groups["far"]
    grid = np.array([[models[n]["ood"][score][s]["auroc"] for s in sets] for n, score in rows])
    fig, ax = plt.subplots(figsize=(1.2 * len(sets) + 2.8, 0.45 * len(rows) + 1.4))
    im = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=1.0)
    ax.axvline(len(groups["near"]) - 0.5, color="white", lw=3)
    ax.set_xticks(range(len(sets)), [s.replace("_", " ") for s in sets], fontsize=10, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [f"{n} · {score.replace('_', ' ')}" for n, score in rows], fontsize=10)
    ax.set_title("near-OOD  |  far-OOD", fontsize=11)
    for i in range(len(rows)):
        for j in range(len(sets)):
            ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=9,
                    color="white" if grid[i, j] < 0.6 else "black")
    fig.colorbar(im, ax=ax, label="AUROC (0.5: chance; below it, OOD\nimages score as more typical)")
    fig.tight_layout()
    return fig


def tradeoff_plot(rows: list[dict[str, Any]], keys: Sequence[str], generative: dict[str, Any] | None = None,
                  spread: dict[str, float] | None = None) -> plt.Figure:
    """Each metric against the hybrid weight λ (log axis): the hybrids as a line; as horizontal lines, since
    neither end has a place on a log axis, the hybrid at λ = 0 (its generative loss on augmented views), the
    contrastive-only limit λ → ∞ and ``generative`` (generative-only on clean images, the paper's reference),
    which is not the λ = 0 end. ``spread`` (metric -> the run-to-run spread): a band of ± it around the hybrids.
    A missing value (the contrastive model's bits/dim: its decoder is never trained) is left out."""
    hybrids = sorted((r for r in rows if 0 < r["lam"] < math.inf), key=lambda r: r["lam"])
    lines = [(generative, MODEL_COLOURS["generative"], "--", "generative only (clean images)"),
             (next((r for r in rows if r["lam"] == 0), None), MODEL_COLOURS["hybrid"], "-.",
              "hybrid at λ = 0 (generative loss on views)"),
             (next((r for r in rows if math.isinf(r["lam"])), None), MODEL_COLOURS["contrastive"], ":",
              "contrastive only (λ → ∞)")]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.9 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        lams, values = [r["lam"] for r in hybrids], np.array([r.get(key) for r in hybrids], dtype=float)
        ax.plot(lams, values, marker="o", lw=2, color=MODEL_COLOURS["hybrid"], label="hybrid")
        if (spread or {}).get(key):
            ax.fill_between(lams, values - spread[key], values + spread[key], color=MODEL_COLOURS["hybrid"],
                            alpha=0.2, lw=0, label="± run-to-run spread")
        for row, colour, style, label in lines:
            if row is not None and row.get(key) is not None:
                ax.axhline(row[key], color=colour, ls=style, lw=2, label=label)
        ax.set_xscale("log")
        ax.set_xlabel("λ", fontsize=11)
        ax.set_title(key.replace("_", " "), fontsize=12)
        ax.tick_params(labelsize=10)
        ax.grid(alpha=0.3)
    legend = {}  # every line of every panel once (a panel may lack one: the contrastive model's bits/dim)
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=4, fontsize=10, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def save(fig: plt.Figure, path, close: bool = True) -> None:
    """Save as PNG (what GitHub and nbval handle well) and close it, unless a notebook still shows it."""
    fig.savefig(path, dpi=110, bbox_inches="tight")
    if close:
        plt.close(fig)


def _budget_axis(ax: plt.Axes, budgets: Sequence[int]) -> None:
    """A log x axis with one plain tick per budget (matplotlib's default labels them 3x10^2, 4x10^2, ...)."""
    ax.set_xscale("log")
    ax.set_xticks(sorted(set(budgets)), [str(b) for b in sorted(set(budgets))], fontsize=10)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("training steps (log scale)", fontsize=11)


def scaling_metrics(rows: list[dict[str, Any]], keys: Sequence[str], reference: dict[str, Any] | None = None
                    ) -> plt.Figure:
    """Each metric against the training budget (log x), one line per objective, mean ± std over seeds;
    ``reference`` (the raw-pixel baseline, which trains nothing) a dotted line where it has the metric."""
    fig, axes = plt.subplots(2, math.ceil(len(keys) / 2), figsize=(4.2 * math.ceil(len(keys) / 2), 7), squeeze=False)
    objectives = list(dict.fromkeys(r["objective"] for r in rows))
    for ax, key in zip(axes.flat, keys):
        for objective in objectives:
            budgets = sorted({r["steps"] for r in rows if r["objective"] == objective and r.get(key) is not None})
            if not budgets:
                continue
            values = [[r[key] for r in rows if r["objective"] == objective and r["steps"] == s] for s in budgets]
            ax.errorbar(budgets, [np.mean(v) for v in values],
                        yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in values], marker="o", capsize=3,
                        label=objective, color=MODEL_COLOURS.get(objective))
        if reference is not None and reference.get(key) is not None:
            ax.axhline(reference[key], color="0.4", linestyle=":", lw=1.5, label="raw pixels")
        _budget_axis(ax, [r["steps"] for r in rows])
        ax.set_title(key.replace("_", " "), fontsize=12)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(keys):]:
        ax.axis("off")
    if objectives:  # none yet where nothing has finished (--finished-only)
        axes.flat[0].legend(fontsize=10)
    fig.tight_layout()
    return fig


def scaling_claims(claims: list[dict[str, Any]]) -> plt.Figure:
    """Each claim's gap against budget, equal steps (solid) and equal compute (dashed); the bars are the spread
    (above it the claim is held, below minus it not held)."""
    ids = list(dict.fromkeys(c["id"] for c in claims))
    n_cols = math.ceil(len(ids) / 2)
    fig, axes = plt.subplots(2, n_cols, figsize=(4.4 * n_cols, 7.4), squeeze=False)
    for ax, claim_id in zip(axes.flat, ids):
        for budget, style in (("equal steps", "-"), ("equal compute", "--")):
            cs = sorted((c for c in claims if c["id"] == claim_id and c["budget"] == budget), key=lambda c: c["steps"])
            if cs:
                ax.errorbar([c["steps"] for c in cs], [c["gap"] for c in cs], yerr=[c["spread"] for c in cs],
                            linestyle=style, marker="o", capsize=3, label=budget)
        ax.axhline(0, color="k", lw=1)
        _budget_axis(ax, [c["steps"] for c in claims])
        ax.set_title(f"claim ({claim_id})", fontsize=12)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(ids):]:
        ax.axis("off")
    for row in axes:
        row[0].set_ylabel("gap (> 0: the claim's direction)", fontsize=11)
    axes[0, 0].legend(fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- notebook 5: looking inside the evaluation

def bits_histograms(bits: dict[str, np.ndarray], title: str = "", n_bins: int = 40) -> plt.Figure:
    """Histograms of per-image bits/dim, one per image set on shared bins, each set's mean a dashed line: the
    likelihood's OOD failure (Nalisnick et al., 2019) shows as an OOD set to the left of the test images."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    values = np.concatenate([np.asarray(v, float).ravel() for v in bits.values()])
    edges = np.histogram_bin_edges(values, bins=n_bins)
    for i, (name, v) in enumerate(bits.items()):
        v = np.asarray(v, float).ravel()
        colour = f"C{i}"
        ax.hist(v, bins=edges, alpha=0.5, color=colour, label=f"{name} (mean {v.mean():.2f})")
        ax.axvline(v.mean(), color=colour, ls="--", lw=2)
    ax.set_xlabel("bits/dim of the image (lower: the model finds it more likely)", fontsize=11)
    ax.set_ylabel("images", fontsize=11)
    ax.tick_params(labelsize=10)
    ax.legend(fontsize=10)
    ax.set_title(title or "per-image bits/dim", fontsize=12)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def layer_probe(accuracies: dict[str, Sequence[float]], n_encoder: int,
                references: dict[str, float] | None = None,
                errors: dict[str, Sequence[float]] | None = None) -> plt.Figure:
    """Linear-probe accuracy on the features after each block (1 = the first), one line per model; the dotted
    vertical line is the encoder/decoder boundary, ``references`` (name -> accuracy) horizontal lines and ``errors``
    (name -> one standard error per block) error bars."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    n_blocks = max(len(a) for a in accuracies.values())
    for name, acc in accuracies.items():
        ax.errorbar(range(1, len(acc) + 1), acc, yerr=(errors or {}).get(name), marker="o", lw=2, capsize=4,
                    label=name, color=MODEL_COLOURS.get(name))
    for name, value in (references or {}).items():
        ax.axhline(value, color=MODEL_COLOURS.get(name, "gray"), ls=":", lw=1.5, label=name)
    ax.axvline(n_encoder + 0.5, color="k", ls="--", lw=1.5)
    ax.text(n_encoder + 0.45, 0.02, "encoder ", transform=ax.get_xaxis_transform(), ha="right", fontsize=10)
    ax.text(n_encoder + 0.55, 0.02, " decoder", transform=ax.get_xaxis_transform(), ha="left", fontsize=10)
    ax.set_xticks(range(1, n_blocks + 1))
    ax.set_xlim(0.5, n_blocks + 0.5)
    ax.set_xlabel("features after block", fontsize=11)
    ax.set_ylabel("linear-probe accuracy", fontsize=11)
    ax.set_title("which layer holds the best features?", fontsize=12)
    ax.tick_params(labelsize=10)
    ax.legend(fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def embedding_2d(points: dict[str, np.ndarray], labels: np.ndarray, class_names: Sequence[str],
                 method: str = "t-SNE") -> plt.Figure:
    """(N, 2) points of each model side by side, coloured by class, with one legend of the class names."""
    labels = np.asarray(labels)
    legend_width = max(1.0, 0.6 + 0.09 * max(len(str(c)) for c in class_names))  # inches, for the class names
    width = 4.2 * len(points) + legend_width
    fig, axes = plt.subplots(1, len(points), figsize=(width, 4.4), squeeze=False)
    colours = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for ax, (name, xy) in zip(axes[0], points.items()):
        xy = np.asarray(xy)
        for c, class_name in enumerate(class_names):
            m = labels == c
            ax.scatter(xy[m, 0], xy[m, 1], s=8, color=colours(c), label=class_name)
        ax.set_title(name, fontsize=12)
        ax.set_xlabel(f"{method} 1", fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel(f"{method} 2", fontsize=11)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="center right", fontsize=10, markerscale=2.5, title="class", title_fontsize=10)
    fig.tight_layout(rect=(0, 0, 1 - legend_width / width, 1))
    return fig


def retrieval_rows(queries: Tensor, neighbours: dict[str, Tensor], same_class: dict[str, np.ndarray] | None = None,
                   scale: float = 1.0) -> plt.Figure:
    """Nearest-neighbour retrieval of several models: one block of rows per model (its name at the left, a line
    between blocks), one row per query, the query in the first column and its (Q, K, C, H, W) neighbours after it.
    ``same_class`` (model -> (Q, K) booleans): each neighbour framed green if it has the query's class, red if not."""
    n_queries = len(queries)
    k = max(v.shape[1] for v in neighbours.values())
    rows = len(neighbours) * n_queries
    fig, axes = plt.subplots(rows, k + 1, figsize=(scale * (k + 1) + 1.0, scale * rows + 0.6), squeeze=False)
    for m, (name, found) in enumerate(neighbours.items()):
        for q in range(n_queries):
            r = m * n_queries + q
            for c in range(k + 1):
                ax = axes[r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                if c == 0:
                    _imshow(ax, queries[q])
                    for spine in ax.spines.values():
                        spine.set(color="k", lw=3)
                elif c - 1 < found.shape[1]:
                    _imshow(ax, found[q, c - 1])
                    if same_class is not None:
                        for spine in ax.spines.values():
                            spine.set(color="tab:green" if same_class[name][q, c - 1] else "tab:red", lw=2.5)
    axes[0, 0].set_title("query", fontsize=10)
    for c in range(1, k + 1):
        axes[0, c].set_title(f"neighbour {c}", fontsize=10)
    fig.suptitle("nearest training images by cosine similarity of the features", fontsize=12)
    fig.tight_layout(rect=(0.9 / (scale * (k + 1) + 1.0), 0, 1, 1))
    for m, name in enumerate(neighbours):
        top, bottom = axes[m * n_queries, 0].get_position(), axes[(m + 1) * n_queries - 1, 0].get_position()
        fig.text(0.3 / (scale * (k + 1) + 1.0), (top.y1 + bottom.y0) / 2, name, rotation=90, ha="center",
                 va="center", fontsize=12, fontweight="bold", color=MODEL_COLOURS.get(name, "k"))
        if m:
            below = axes[m * n_queries - 1, 0].get_position()
            y = (below.y0 + top.y1) / 2
            fig.add_artist(plt.Line2D([0.01, 0.99], [y, y], color="gray", lw=1.5, transform=fig.transFigure))
    return fig


# the architecture, as notebook 1's Mermaid diagram draws it: (label, x, y, branch) per box, then the arrows
_ARCHITECTURE_BOXES = {
    "tokens": ("image tokens (B, T)", 0.0, 6.0, "shared"),
    "embed": ("start token + token and\nposition embeddings (B, T+1, d)", 0.0, 5.0, "shared"),
    "encoder": ("encoder blocks\n(causal attention)", 0.0, 4.0, "shared"),
    "pool": ("LayerNorm, mean over positions:\nrepresentation (B, d), read by the probes", -2.2, 3.0, "contrastive"),
    "proj": ("projection head (B, p)", -2.2, 2.0, "contrastive"),
    "con": ("NT-Xent on two views:\nL_con", -2.2, 1.0, "contrastive"),
    "decoder": ("decoder blocks\n(causal attention)", 2.2, 3.0, "generative"),
    "head": ("LayerNorm, head:\np(next token)", 2.2, 2.0, "generative"),
    "gen": ("next-token cross-entropy:\nL_gen (bits/dim)", 2.2, 1.0, "generative"),
    "hybrid": ("hybrid (notebook 4): L = L_gen + λ L_con", 0.0, 0.0, "hybrid"),
}
_ARCHITECTURE_ARROWS = [("tokens", "embed"), ("embed", "encoder"), ("encoder", "pool"), ("pool", "proj"),
                        ("proj", "con"), ("encoder", "decoder"), ("decoder", "head"), ("head", "gen"),
                        ("con", "hybrid"), ("gen", "hybrid")]


def architecture() -> plt.Figure:
    """The model and where each loss attaches, drawn with matplotlib (for viewers that do not render Mermaid)."""
    colours = {"shared": "whitesmoke", "hybrid": "honeydew", "contrastive": "aliceblue", "generative": "papayawhip"}
    edges = {"shared": "dimgray", **{k: MODEL_COLOURS[k] for k in ("contrastive", "generative", "hybrid")}}
    fig, ax = plt.subplots(figsize=(10, 6.5))
    for label, x, y, branch in _ARCHITECTURE_BOXES.values():
        ax.text(x, y, label, ha="center", va="center", fontsize=11, zorder=2,
                bbox=dict(boxstyle="round,pad=0.45", facecolor=colours[branch], edgecolor=edges[branch], lw=1.5))
    for a, b in _ARCHITECTURE_ARROWS:
        (_, xa, ya, _), (_, xb, yb, _) = _ARCHITECTURE_BOXES[a], _ARCHITECTURE_BOXES[b]
        ax.annotate("", xy=(xb, yb + 0.38), xytext=(xa, ya - 0.38), zorder=1,
                    arrowprops=dict(arrowstyle="-|>", color="dimgray", lw=1.3, shrinkA=0, shrinkB=0))
    ax.text(-2.2, 4.0, "contrastive\n(notebook 2)", ha="center", va="center", fontsize=11,
            color=MODEL_COLOURS["contrastive"])
    ax.text(2.2, 4.0, "generative\n(notebook 3)", ha="center", va="center", fontsize=11,
            color=MODEL_COLOURS["generative"])
    ax.set_xlim(-4.2, 4.2)
    ax.set_ylim(-0.6, 6.6)
    ax.axis("off")
    fig.tight_layout()
    return fig


def similarity_matrix(z1: Tensor, z2: Tensor, temperature: float) -> plt.Figure:
    """NT-Xent's view of a batch, one panel: the (2N, 2N) cosine similarities over τ of N images' two views (the N
    first views, then the N second), each row's positive (its image's other view) framed, the diagonal (a view
    against itself, masked out of the loss) left blank. Each row is one softmax over the 2N - 1 candidates."""
    n = len(z1)
    z = F.normalize(cat([z1, z2]).float(), dim=1)
    sim = (z @ z.T / temperature).double().numpy()
    np.fill_diagonal(sim, np.nan)
    fig, ax = plt.subplots(figsize=(7.5, 6.2))
    im = ax.imshow(sim, cmap=plt.get_cmap("viridis").with_extremes(bad="white"))
    for row in range(2 * n):
        col = (row + n) % (2 * n)
        ax.add_patch(plt.Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", lw=2.5))
    labels = [f"{i + 1}a" for i in range(n)] + [f"{i + 1}b" for i in range(n)]
    ax.set_xticks(range(2 * n), labels, fontsize=12)
    ax.set_yticks(range(2 * n), labels, fontsize=12)
    ax.axhline(n - 0.5, color="white", lw=2)
    ax.axvline(n - 0.5, color="white", lw=2)
    ax.set_xlabel("candidate (image, view)", fontsize=14)
    ax.set_ylabel("anchor (image, view)", fontsize=14)
    ax.set_title(f"NT-Xent: cosine / τ (τ = {temperature:g}); red: the positive, blank: masked", fontsize=14)
    fig.colorbar(im, ax=ax, label="cosine / τ").ax.tick_params(labelsize=12)
    fig.tight_layout()
    return fig


def causal_mask(n_positions: int = 6) -> plt.Figure:
    """The causal mask, one panel: which positions each position's attention may read (j ≤ i) and which it may not
    (j > i, set to −∞ before the softmax); position 0 is the start token."""
    hidden = np.triu(np.ones((n_positions, n_positions)), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(hidden, cmap="Greys", vmin=0, vmax=1.6)
    for i in range(n_positions):
        for j in range(n_positions):
            ax.text(j, i, "−∞" if hidden[i, j] else "read", ha="center", va="center", fontsize=13,
                    color="white" if hidden[i, j] else "black")
    names = ["start"] + [f"token {t}" for t in range(n_positions - 1)]
    ax.set_xticks(range(n_positions), names, fontsize=12, rotation=30, ha="right")
    ax.set_yticks(range(n_positions), names, fontsize=12)
    ax.set_xlabel("key: the position read (j)", fontsize=14)
    ax.set_ylabel("query: the position reading (i),\nwhich predicts the next token", fontsize=14)
    ax.set_title("the causal mask: position i reads only j ≤ i", fontsize=15)
    fig.tight_layout()
    return fig


def recipe_scores(rows: list[dict[str, Any]], margin: float) -> plt.Figure:
    """The recipe search: each setting's score against its objective's default (one panel per objective, stage 1
    and 2 rows), the selection margin dotted on either side of zero."""
    objectives = list(dict.fromkeys(r["objective"] for r in rows))
    fig, axes = plt.subplots(1, max(1, len(objectives)), figsize=(4.6 * max(1, len(objectives)), 5.2),
                             squeeze=False)
    for ax, objective in zip(axes.flat, objectives):
        mine = [r for r in rows if r["objective"] == objective and r.get("score") is not None]
        # a stage-2 setting is the objective's combination at a learning rate: the bar says the rate, the note
        # under the panel the combination, so that the long names do not run into the next panel
        names = [r["setting"] if r["stage"] == 1 else "stage 2: " + r["setting"].rpartition("; ")[2] for r in mine]
        combination = next((r["setting"].rpartition("; ")[0] for r in mine if r["stage"] == 2), "")
        scores = [100 * r["score"] for r in mine]
        ax.barh(range(len(mine)), scores, color=[MODEL_COLOURS.get(objective) if s >= 100 * margin else "0.7"
                                                 for s in scores])
        ax.set_yticks(range(len(mine)), names, fontsize=8)
        ax.invert_yaxis()
        for x in (-100 * margin, 100 * margin):
            ax.axvline(x, color="0.3", linestyle=":", lw=1)
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set_xlabel("score against the default (%)", fontsize=10)
        ax.set_title(objective, fontsize=12)
        ax.grid(axis="x", alpha=0.3)
        if combination:
            ax.text(0.5, -0.16, "stage 2: " + textwrap.fill(combination, 48), transform=ax.transAxes, ha="center",
                    va="top", fontsize=8)
    fig.tight_layout()
    return fig


def recipe_curves(rows: list[dict[str, Any]]) -> plt.Figure:
    """Validation metric against training minutes, the old recipe (grey) against the new (the objective's colour),
    one thin line per seed: kNN accuracy for every objective (top), bits/dim where the decoder trains (bottom)."""
    objectives = list(dict.fromkeys(r["objective"] for r in rows))
    fig, axes = plt.subplots(2, max(1, len(objectives)), figsize=(4.4 * max(1, len(objectives)), 7), squeeze=False)
    for col, objective in enumerate(objectives):
        for row_axis, key, label in ((0, "val_knn_acc", "validation kNN accuracy"),
                                     (1, "val_bits_per_dim", "validation bits/dim")):
            ax = axes[row_axis, col]
            for r in (r for r in rows if r["objective"] == objective):
                points = [(p["elapsed_s"] / 60, p[key]) for p in r.get("curve", []) if p.get(key) is not None]
                if points:
                    x, y = zip(*points)
                    new = r["recipe"] == "new"
                    ax.plot(x, y, marker="o", ms=3, lw=1.2, color=MODEL_COLOURS.get(objective) if new else "0.6",
                            label=f"{r['recipe']} recipe" if r["seed"] == 0 else None)
            if not ax.lines:
                ax.axis("off")
                continue
            ax.set_title(f"{objective}: {label}", fontsize=11)
            ax.set_xlabel("training minutes", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def controls_bits(rows: list[dict[str, Any]], tolerance: float = 0.03) -> plt.Figure:
    """Test bits/dim of each control (mean ± std over seeds), generative-only's value and its (c3) band: which
    configurations close the hybrid's gap. One horizontal bar per configuration, top to bottom in the study's order."""
    rows = [r for r in rows if r.get("test_bits_per_dim") is not None]
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * max(len(rows), 1) + 1.4))
    y = np.arange(len(rows))[::-1]
    colours = [MODEL_COLOURS["generative"] if r["objective"] == "generative" else MODEL_COLOURS["hybrid"] for r in rows]
    ax.barh(y, [r["test_bits_per_dim"] for r in rows], xerr=[r["test_bits_per_dim_std"] or 0 for r in rows],
            color=colours, alpha=0.85, capsize=3)
    reference = rows[0]["test_bits_per_dim"] if rows else None
    if reference is not None:
        ax.axvline(reference, color="0.3", lw=1.2)
        ax.axvspan(reference, reference * (1 + tolerance), color="0.85", zorder=0, label=f"within {tolerance:.0%} of G")
        ax.legend(fontsize=9, loc="lower right")
        # the whole 3 % band always in view, so that close bars do not look far apart
        lo = min(min(r["test_bits_per_dim"] for r in rows), reference)
        hi = max(max(r["test_bits_per_dim"] + (r["test_bits_per_dim_std"] or 0) for r in rows),
                 reference * (1 + tolerance))
        ax.set_xlim(lo - 0.15 * (hi - lo), hi + 0.05 * (hi - lo))
    ax.set_yticks(y, [f"{r['name']}  ({len(r['seeds'])} seed{'s' if len(r['seeds']) > 1 else ''})" for r in rows],
                  fontsize=10)
    ax.set_xlabel("test bits/dim (lower is better)", fontsize=11)
    ax.set_title("Where the hybrid's bits/dim go", fontsize=12)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def capacity_penalty(rows: list[dict[str, Any]]) -> plt.Figure:
    """The hybrid's bits/dim penalty against parameters (log x; mean ± std over seeds), and both models' bits/dim."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.9))
    with_penalty = [r for r in rows if r.get("penalty") is not None]
    left.errorbar([r["parameters"] / 1e6 for r in with_penalty], [100 * r["penalty"] for r in with_penalty],
                  yerr=[100 * (r["penalty_std"] or 0) for r in with_penalty], marker="o", capsize=3,
                  color=MODEL_COLOURS["hybrid"])
    left.axhline(3, color="0.4", ls=":", lw=1.5, label="3 % (claim c3)")
    left.set_ylabel("hybrid's bits/dim above generative-only's (%)", fontsize=10)
    left.legend(fontsize=9)
    for name, objective in (("G", "generative"), ("H", "hybrid")):
        present = [r for r in rows if r.get(f"test_bits_per_dim_{name}") is not None]
        right.errorbar([r["parameters"] / 1e6 for r in present], [r[f"test_bits_per_dim_{name}"] for r in present],
                       yerr=[r[f"test_bits_per_dim_{name}_std"] or 0 for r in present], marker="o", capsize=3,
                       color=MODEL_COLOURS[objective], label=f"{objective} ({name})")
    right.set_ylabel("test bits/dim", fontsize=10)
    right.legend(fontsize=9)
    for ax in (left, right):
        ax.set_xscale("log")
        ticks = [r["parameters"] / 1e6 for r in rows]
        ax.set_xticks(ticks, [f"{t:.2f} M\n(d = {r['d_model']})" for t, r in zip(ticks, rows)], fontsize=9)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("parameters (log scale)", fontsize=10)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def few_label_curves(models: dict[str, dict[str, Any]], seeds: dict[str, Any] | None = None) -> plt.Figure:
    """Probe and kNN accuracy against labelled images per class (log x), one line per model: mean ± std over the
    label draws of one run, or over seeds where ``seeds`` (`make seeds`' output) is given. The full probe (every
    label of the pool) is each model's value at the right edge, dotted."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, kind, full in zip(axes, ("probe", "knn"), ("linear_probe_acc", "knn_acc")):
        for name, r in models.items():
            budgets = r.get("few_label", {})
            shots = sorted(int(n) for n in budgets)
            if not shots:
                continue
            if seeds is not None and name in seeds["models"]:
                stats = seeds["models"][name]
                keys = [f"few_label_{kind}_acc_{n}" for n in shots]
                mean = [stats[k]["mean"] for k in keys]
                std = [stats[k]["std"] for k in keys]
            else:
                mean = [budgets[str(n)][f"{kind}_acc"] for n in shots]
                std = [budgets[str(n)][f"{kind}_acc_std"] for n in shots]
            colour = MODEL_COLOURS.get(name)
            ax.errorbar(shots, mean, yerr=std, marker="o", capsize=3, color=colour, label=name)
            if r.get(full) is not None:
                ax.plot([shots[-1], shots[-1] * 3], [mean[-1], r[full]], ls=":", color=colour)
        ax.set_xscale("log")
        ax.set_xticks([1, 10, 100, 300], ["1", "10", "100", "all"], fontsize=10)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("labelled images per class (log scale)", fontsize=11)
        ax.set_title("linear probe" if kind == "probe" else "kNN", fontsize=12)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy", fontsize=11)
    axes[0].legend(fontsize=9)
    fig.tight_layout()
    return fig
