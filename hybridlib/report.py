"""The results as files a reader opens: markdown tables, the claims' verdicts and the figures of
``results/<profile>/`` (summary.md, seeds.md, figures/*.png)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from . import plots
from .claims import RULE, claim_lines
from .evaluate import SUMMARY_KEYS
from .files import write_json, write_text
from .paths import results_dir

COLUMNS = SUMMARY_KEYS + ("test_bits_per_dim",)


def markdown_table(models: dict[str, dict[str, Any]]) -> str:
    """One row per model, one column per headline metric (– where a model has none)."""
    head = "| model | " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    rows = []
    for name, r in models.items():
        cells = [f"{r[c]:.3f}" if r.get(c) is not None else "–" for c in COLUMNS]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *rows])


def summary_figures(models: dict[str, dict[str, Any]], folder: Path) -> list[str]:
    """The comparison, corruption, OOD and reliability figures as PNG files in ``folder``; their names."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = {"comparison": plots.compare_bars(models, COLUMNS), "corruption": plots.corruption_curves(models),
               "ood": plots.ood_heatmap(models), "reliability": plots.reliability_diagrams(models)}
    for name, fig in figures.items():
        plots.save(fig, folder / f"{name}.png")
    return list(figures)


def summary_markdown(summary: dict[str, Any], figures: list[str]) -> str:
    training = ", ".join(f"{k} trained in {v['wall_time_s'] / 60:.1f} min" for k, v in summary["training"].items())
    return "\n".join([
        f"# Results: profile `{summary['profile']}`, seed {summary['seed']}, {summary['dataset']}",
        "",
        f"{summary['steps']} training steps of batch {summary['batch_size']} per objective "
        f"(equal steps: the three objectives see the same number of images). {training}.",
        "",
        markdown_table(summary["models"]),
        "",
        "Accuracies and AUROC are fractions; ECE is the linear probe's (15 bins); OOD AUROC is the mean over OOD "
        "sets of each model's best score type (kNN distance or likelihood).",
        "",
        "## The paper's claims in this run",
        "",
        f"One seed: each claim is {RULE}; with one seed the spread is zero.",
        "",
        *claim_lines(summary["claims"]),
        "",
        *[f"![{name}](figures/{name}.png)\n" for name in figures],
    ])


def write_summary(summary: dict[str, Any], out_dir: Path | None = None, figures: bool = True) -> Path:
    """Write summary.json, summary.md and (``figures``) the figures into ``out_dir`` (default:
    results/<profile>/); returns the folder."""
    out_dir = Path(out_dir) if out_dir is not None else results_dir() / summary["profile"]
    write_json(out_dir / "summary.json", summary)
    names = summary_figures(summary["models"], out_dir / "figures") if figures else []
    write_text(out_dir / "summary.md", summary_markdown(summary, names))
    return out_dir


def seeds_markdown(out: dict[str, Any]) -> str:
    head = "| model | " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |"
    rows = [head, "|---|" + "---:|" * len(COLUMNS)]
    for name, stats in out["models"].items():
        cells = [f"{stats[c]['mean']:.3f} ± {stats[c]['std']:.3f}" if c in stats else "–" for c in COLUMNS]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([f"# Profile `{out['profile']}`, {out['dataset']}, seeds {out['seeds']} (mean ± std)", "",
                      *rows, "", f"## Claims: each is {RULE}", "", *claim_lines(out["claims"]), ""])


def anchors_markdown(out: dict[str, Any]) -> str:
    """The bits/dim anchors as a table: what non-neural predictors of the same test set cost."""
    what = {"uniform": "every level equally likely", "xz": "xz -9e over the whole test set, a byte per pixel",
            "bz2": "bz2 -9 over the whole test set, a byte per pixel",
            "context4": "counts of the next pixel given left, up-left, up, up-right (add-one)",
            "context6": "the same given six neighbours (adding two-left, two-up)"}
    rows = [f"| {name} | {value:.3f} | {what[name]} |" for name, value in out["bits_per_dim"].items()]
    return "\n".join([f"# Bits/dim anchors: profile `{out['profile']}`, {out['dataset']} {out['image_size']}x"
                      f"{out['image_size']}, {out['levels']} levels, {out['test_images']} test images", "",
                      "| anchor | bits/dim | what |", "|---|---:|---|", *rows, ""])


def heads_markdown(out: dict[str, Any]) -> str:
    """The output heads compared: one row per run, the headline metrics and the training it took."""
    head = "| objective | head | steps | img/s | train min | " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |"
    rows = [head, "|---|---|---:|---:|---:|" + "---:|" * len(COLUMNS)]
    for r in out["rows"]:
        cells = [f"{r[c]:.3f}" if r.get(c) is not None else "–" for c in COLUMNS]
        rows.append(f"| {r['objective']} | {r['head']} | {r['steps']} | {r['img_per_s']:.0f} | {r['train_minutes']:.1f} | "
                    + " | ".join(cells) + " |")
    return "\n".join([f"# Output heads: profile `{out['profile']}`, seed {out['seed']}", "",
                      "The joint head (one softmax over all token values) at the profile's steps; the pixel head "
                      "(the token's pixels one by one, heads.py) at the same steps and at the same training time "
                      "(steps scaled by the measured images per second).", "", *rows, ""])


def tradeoff_figure(rows: list[dict[str, Any]], profile: str | None = None) -> plt.Figure:
    """The λ sweep against λ on a log axis, saved to results/<profile>/figures/tradeoff.png when a
    profile is given. λ = 0 (generative-only) is drawn at a quarter of the smallest λ and λ = ∞
    (contrastive-only) at four times the largest; the contrastive-only bits/dim is left out, since
    its decoder is never trained."""
    finite = [r["lam"] for r in rows if 0 < r["lam"] < math.inf]
    x = [min(finite) / 4 if r["lam"] == 0 else max(finite) * 4 if math.isinf(r["lam"]) else r["lam"] for r in rows]
    metrics = {k: [r[k] for r in rows] for k in ("linear_probe_acc", "ood_auroc_mean", "corruption_acc_mean")}
    metrics["test_bits_per_dim"] = [float("nan") if math.isinf(r["lam"]) else r["test_bits_per_dim"] for r in rows]
    fig = plots.tradeoff_plot(x, metrics)
    if profile is not None:
        out = results_dir() / profile / "figures" / "tradeoff.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        plots.save(fig, out, close=False)
    return fig
