"""The results as files a reader opens: markdown tables, the claims' verdicts and the figures of
``results/<profile>/`` (summary.md, seeds.md, figures/*.png)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from . import plots
from .claims import RULE, claim_lines
from .evaluate import SUMMARY_KEYS
from .fewlabel import DRAWS, SHOTS
from .files import write_json, write_text
from .config import Config
from .paths import results_dir, results_stem

COLUMNS = SUMMARY_KEYS + ("test_bits_per_dim",)
FEW_LABEL_KEYS = tuple(f"few_label_{kind}_acc_{shots}" for kind in ("probe", "knn") for shots in SHOTS)


def markdown_table(models: dict[str, dict[str, Any]]) -> str:
    """One row per model, one column per headline metric (– where a model has none)."""
    head = "| model | " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    rows = []
    for name, r in models.items():
        cells = [f"{r[c]:.3f}" if r.get(c) is not None else "–" for c in COLUMNS]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *rows])


def ood_markdown(models: dict[str, dict[str, Any]]) -> str:
    """Near and far mean AUROC of each fixed score, one column each (– where a model has no such score:
    only a trained decoder gives a likelihood)."""
    keys = ("ood_auroc_near", "ood_auroc_far", "ood_likelihood_auroc_near", "ood_likelihood_auroc_far")
    rows = ["| model | kNN distance, near | kNN distance, far | likelihood, near | likelihood, far |",
            "|---|---:|---:|---:|---:|"]
    for name, r in models.items():
        rows.append(f"| {name} | " + " | ".join(f"{r[k]:.3f}" if r.get(k) is not None else "–" for k in keys) + " |")
    return "\n".join(rows)


def few_label_markdown(models: dict[str, dict[str, Any]]) -> str:
    """Probe and kNN accuracy with few labels per class: the mean ± std over the label draws, the probe's C."""
    shots = [n for n in SHOTS if any(str(n) in r.get("few_label", {}) for r in models.values())]
    rows = ["| model | " + " | ".join(f"probe, {n} per class" for n in shots) + " | "
            + " | ".join(f"kNN, {n} per class" for n in shots) + " |", "|---|" + "---:|" * (2 * len(shots))]
    for name, r in models.items():
        budgets = r.get("few_label", {})
        cells = [f"{b[f'{kind}_acc']:.3f} ± {b[f'{kind}_acc_std']:.3f}" + (f" (C {b['C']:g})" if kind == "probe" else "")
                 if (b := budgets.get(str(n))) else "–" for kind in ("probe", "knn") for n in shots]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


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
        "Accuracies and AUROC are fractions; ECE is the linear probe's (15 bins). OOD AUROC is the kNN-distance "
        "score's (fixed in advance for every model), averaged over the near-OOD sets "
        f"({', '.join(summary['ood_sets']['near'])}) and the far-OOD sets ({', '.join(summary['ood_sets']['far'])}).",
        "",
        "### OOD detection by score",
        "",
        ood_markdown(summary["models"]),
        "",
        "### Few labels",
        "",
        few_label_markdown(summary["models"]),
        "",
        f"Linear probe and kNN with a few labelled images per class: mean ± std over {DRAWS} draws of labels (the same "
        "for every model), the probe's C chosen on a held-out quarter of the probe's training images "
        "(docs/controls.md).",
        "",
        "## The paper's claims in this run",
        "",
        f"One seed: each claim is {RULE}; with one seed the spread is the metric's run-to-run spread where it was "
        "measured (run_to_run.json), else zero.",
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


def seeds_table(out: dict[str, Any], columns: tuple[str, ...] = COLUMNS) -> str:
    """The models over several seeds (``run_seeds``' output): mean ± standard deviation of each headline number."""
    head = "| model | " + " | ".join(c.replace("_", " ") for c in columns) + " |"
    rows = [head, "|---|" + "---:|" * len(columns)]
    for name, stats in out["models"].items():
        cells = [f"{stats[c]['mean']:.3f} ± {stats[c]['std']:.3f}" if c in stats else "–" for c in columns]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def seeds_markdown(out: dict[str, Any]) -> str:
    few = [c for c in FEW_LABEL_KEYS if any(c in stats for stats in out["models"].values())]
    few_lines = ["## Few labels per class (each seed: the mean over its label draws)", "",
                 seeds_table(out, tuple(few)), ""] if few else []
    return "\n".join([f"# Profile `{out['profile']}`, {out['dataset']}, seeds {out['seeds']} (mean ± std)", "",
                      seeds_table(out), "", *few_lines, f"## Claims: each is {RULE}", "", *claim_lines(out["claims"]),
                      ""])


def anchors_markdown(out: dict[str, Any]) -> str:
    """The bits/dim anchors as a table: what non-neural predictors of the same test set cost."""
    what = {"uniform": "every level equally likely", "xz": "xz -9e over the whole test set, a byte per pixel",
            "bz2": "bz2 -9 over the whole test set, a byte per pixel",
            "context4": "counts of the next pixel given left, up-left, up, up-right (add-one)",
            "context6": "the same given six neighbours (adding two-left, two-up)"}
    rows = [f"| {name} | {value:.3f} | {what[name]} |" for name, value in out["bits_per_dim"].items()]
    best = min(out["bits_per_dim"].values())
    models = [f"| **{name}** | {m['bits_per_dim']:.3f} | the trained decoder ({m['steps']} steps, seed {m['seed']}): "
              f"{abs(1 - m['bits_per_dim'] / best):.0%} {'below' if m['bits_per_dim'] < best else 'above'} the best "
              "anchor |" for name, m in out.get("models", {}).items()]
    return "\n".join([f"# Bits/dim anchors: profile `{out['profile']}`, {out['dataset']} {out['image_size']}x"
                      f"{out['image_size']}, {out['levels']} levels, {out['test_images']} test images", "",
                      "| anchor | bits/dim | what |", "|---|---:|---|", *rows, *models, ""])


def heads_markdown(out: dict[str, Any]) -> str:
    """The output heads compared: one row per run, the headline metrics and the training it took."""
    head = "| objective | head | steps | img/s | train min | " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |"
    rows = [head, "|---|---|---:|---:|---:|" + "---:|" * len(COLUMNS)]
    for r in out["rows"]:
        cells = [f"{r[c]:.3f}" if r.get(c) is not None else "–" for c in COLUMNS]
        rows.append(f"| {r['objective']} | {r['head']} | {r['steps']} | {r['img_per_s']:.0f} | {r['train_minutes']:.1f} | "
                    + " | ".join(cells) + " |")
    return "\n".join([f"# Output heads: profile `{out['profile']}`, seed {out['seed']}", "",
                      f"The joint head (one softmax over all token values) at {out['steps']} steps; the pixel head "
                      "(the token's pixels one by one, heads.py) at the same steps and at the same training time "
                      "(steps scaled by the measured images per second).", "", *rows, ""])


def tradeoff_figure(sweep: dict[str, Any], config: Config | None = None, spread: dict[str, float] | None = None
                    ) -> plt.Figure:
    """The λ sweep of :func:`hybridlib.experiments.lambda_sweep` (:func:`hybridlib.plots.tradeoff_plot`; ``spread``:
    the band of the run-to-run spread), saved to results/<profile>/figures/tradeoff.png when the sweep's
    configuration is given (another name for other settings or seeds: :func:`results_stem`)."""
    fig = plots.tradeoff_plot(sweep["rows"], ("linear_probe_acc", "ood_auroc_near", "corruption_acc_mean",
                                              "test_bits_per_dim"), sweep.get("generative"), spread)
    if config is not None:
        out = results_dir() / config.profile / "figures" / f"{results_stem('tradeoff', config)}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        plots.save(fig, out, close=False)
    return fig


def ablations_markdown(out: dict[str, Any]) -> str:
    """Every ablation row with its verdicts, the declared rule first and the stages' outcome last."""
    keys = ("linear_probe_acc", "knn_acc", "ood_auroc_near", "ood_auroc_far", "corruption_acc_mean", "test_bits_per_dim")
    claim_ids = list(out["rows"][0]["verdicts"]) if out["rows"] else []
    head = ("| stage | configuration | seeds | claims held | " + " | ".join(claim_ids) + " | "
            + " | ".join(k.replace("_", " ") for k in keys) + " | train min |")
    rows = [head, "|---:|---|---|---:|" + "---|" * len(claim_ids) + "---:|" * (len(keys) + 1)]
    for r in out["rows"]:
        cells = [_mean_std(r, k) for k in keys]
        rows.append(f"| {r['stage']} | {r['variant']} | {','.join(map(str, r['seeds']))} | {r['claims_held']} | "
                    + " | ".join(r["verdicts"].get(c, "–") for c in claim_ids) + " | " + " | ".join(cells)
                    + f" | {r['train_minutes']:.1f} |")
    stages = out.get("stages", {})
    outcome = []
    if "2" in stages:
        outcome += ["", "Stage 2, each factor's best level: " + "; ".join(f"{f}: {v}" for f, v in
                                                                      stages["2"]["best_level"].items()) + "."]
    if "3" in stages:
        outcome += ["", f"Stage 3 finalists: {', '.join(stages['3']['finalists'])}. "
                        f"**Winner: {stages['3']['winner']['name']}.**"]
    pending = _pending(out, "ablations")
    return "\n".join([f"# Ablations of the hybrid: profile `{out['profile']}`, {out['steps']} steps", "",
                      f"**Selection rule.** {out['rule']}", "",
                      "Metrics are the hybrid's (mean ± standard deviation over the seeds of the row); a verdict "
                      f"is each claim's by the claims' rule ({RULE}).", "", *rows, *outcome, *pending, ""])


def _mean_std(row: dict[str, Any], key: str) -> str:
    if row.get(key) is None:
        return "–"
    std = row.get(f"{key}_std")
    return f"{row[key]:.3f}" + (f" ± {std:.3f}" if std and len(row["seeds"]) > 1 else "")


SCALING_METRICS = ("linear_probe_acc", "knn_acc", "ood_auroc_near", "ood_auroc_far", "corruption_acc_mean",
                   "test_bits_per_dim")


def scaling_figures(out: dict[str, Any], folder: Path) -> list[str]:
    """scaling_metrics.png (each metric against budget, mean ± std over seeds) and scaling_claims.png (each
    claim's gap against budget); their names."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = {"scaling_metrics": plots.scaling_metrics(out["rows"], SCALING_METRICS, out.get("raw_pixels"))}
    if out.get("claims"):
        figures["scaling_claims"] = plots.scaling_claims(out["claims"])
    for name, fig in figures.items():
        plots.save(fig, folder / f"{name}.png")
    return list(figures)


def scaling_markdown(out: dict[str, Any], figures: list[str]) -> str:
    """The scaling table (one row per objective and budget, mean ± std over seeds) and the claims per budget."""
    rows = ["| objective | steps | seeds | " + " | ".join(k.replace("_", " ") for k in SCALING_METRICS)
            + " | train min | train PFLOP |", "|---|---:|---|" + "---:|" * (len(SCALING_METRICS) + 2)]
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in out["rows"]:
        groups.setdefault((r["objective"], r["steps"]), []).append(r)
    for (objective, steps), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        cells = []
        for k in SCALING_METRICS:
            values = [r[k] for r in rs if r.get(k) is not None]
            cells.append("–" if not values else f"{np.mean(values):.3f}" +
                         (f" ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else ""))
        rows.append(f"| {objective} | {steps} | {','.join(str(r['seed']) for r in rs)} | " + " | ".join(cells)
                    + f" | {np.mean([r['train_minutes'] for r in rs]):.1f} | {rs[0]['train_pflops']:.2f} |")
    if out.get("raw_pixels"):  # the baseline the check compares with: no training, so no budget
        rows.append("| raw pixels | – | – | " + " | ".join("–" if out["raw_pixels"].get(k) is None
                                                          else f"{out['raw_pixels'][k]:.3f}" for k in SCALING_METRICS)
                    + " | – | – |")
    claims = ["| steps | budget | claim | verdict | gap | spread | compared with |", "|---:|---|---|---|---:|---:|---|"]
    for c in out.get("claims", []):
        other = (f"{c['other']} at {c['other_steps']} steps ({c['compute_ratio']:.2f}x the FLOPs)"
                 if c["budget"] == "equal compute" else f"{c['other']} at {c['steps']} steps")
        claims.append(f"| {c['steps']} | {c['budget']} | ({c['id']}) {c['statement']} | {c['verdict']} | "
                      f"{c['gap']:+.4f} | {c['spread']:.4f} | {other}, seeds {c['seeds']} |")
    pending = _pending(out, "scaling")
    return "\n".join([f"# Scaling: profile `{out['profile']}`, {out['dataset']}", "",
                      "Every objective at each training budget (steps of the profile's batch); mean ± standard "
                      "deviation over the seeds listed. Equal compute compares a claim's model with the other "
                      "model's run whose training FLOPs are nearest (the ratio is given), where that is within "
                      f"{out['compute_match']:g}x; a budget without such a run has no equal-compute row.", "", *rows,
                      "",
                      f"## The claims by budget: each is {RULE}", "", *claims, *pending, "",
                      *[f"![{name}](figures/{name}.png)\n" for name in figures]])


def recipe_figures(out: dict[str, Any], folder: Path) -> list[str]:
    """recipe_scores.png: every finished search run's score against its objective's default; its name."""
    folder.mkdir(parents=True, exist_ok=True)
    if not any(r.get("score") is not None for r in out["rows"]):
        return []
    plots.save(plots.recipe_scores(out["rows"], out["margin"]), folder / "recipe_scores.png")
    if not out.get("confirm"):
        return ["recipe_scores"]
    plots.save(plots.recipe_curves(out["confirm"]), folder / "recipe_curves.png")
    return ["recipe_scores", "recipe_curves"]


RECIPE_AXES = ("linear_probe_acc", "knn_acc", "ood_auroc_near", "corruption_acc_mean", "ece", "test_bits_per_dim")


def recipe_confirmation(out: dict[str, Any]) -> list[str]:
    """Stage 3's table (each objective's old and new recipe on the test set, mean ± std over seeds) and decisions."""
    if not out.get("confirm"):
        return []
    lines = ["", "## Stage 3: the final budget on the test set", "",
             "| objective | recipe | seeds | " + " | ".join(k.replace("_", " ") for k in RECIPE_AXES) + " | train min |",
             "|---|---|---|" + "---:|" * (len(RECIPE_AXES) + 1)]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in out["confirm"]:
        groups.setdefault((r["objective"], r["recipe"]), []).append(r)
    for (objective, recipe), rs in groups.items():
        diverged = [str(r["seed"]) for r in rs if r.get("diverged")]
        rs = [r for r in rs if not r.get("diverged")] or rs
        cells = []
        for k in RECIPE_AXES:
            values = [r[k] for r in rs if r.get(k) is not None]
            cells.append("–" if not values else f"{np.mean(values):.3f}" +
                         (f" ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else ""))
        lines.append(f"| {objective} | {recipe}: {rs[0]['setting']} | {','.join(str(r['seed']) for r in rs)} | "
                     + " | ".join(cells) + " | " + (f"{np.mean([r['train_minutes'] for r in rs]):.1f}" if
                                                     "train_minutes" in rs[0] else "–")
                     + (f" (diverged: seed {', '.join(diverged)})" if diverged else "") + " |")
    for objective, d in out.get("stages", {}).get("3", {}).items():
        if "verdicts" not in d:
            lines += ["", f"- {objective}: {d['why']}."]
            continue
        evidence = "; ".join(f"{m.replace('_', ' ')} gap {v['gap']:+.4f} (spread {v['spread']:.4f}): {v['verdict']}"
                             for m, v in d["verdicts"].items())
        lines += ["", f"- **{objective}: {'adopted' if d['adopted'] else 'not adopted'}** ({d['setting']}): {evidence}."]
    return lines + _time_to_target(out.get("time_to_target"))


def _time_to_target(t: dict[str, Any] | None) -> list[str]:
    """Stage 4's table: training minutes to each target, old recipe against new."""
    if not t or not t.get("rows"):
        return []
    lines = ["", "## Stage 4: training minutes to each target", "",
             "Quality from the cheapest budget whose 3-seed mean reaches the target (the old recipe's ladder: "
             "scaling.json; the new recipe's: trained here); minutes = those steps times each recipe's seconds per "
             "step, measured side by side in one process on " + t.get("device", "cpu") + " (img/s: " + ", ".join(
                 f"{name} {rate:.0f}" for name, rate in t["img_per_s"].items()) + ").", "",
             "| objective | target | old: steps | old: min | new: steps | new: min | speed-up |",
             "|---|---|---:|---:|---:|---:|---:|"]

    def cell(value: float | None, fmt: str) -> str:
        return "not reached" if value is None else format(value, fmt)

    for r in t["rows"]:
        lines.append(f"| {r['objective']} | {r['metric'].replace('_', ' ')} {r['target']:.3f} (old, {r['target_steps']} "
                     f"steps) | {cell(r['old_steps'], 'd')} | {cell(r['old_minutes'], '.1f')} | "
                     f"{cell(r['new_steps'], 'd')} | {cell(r['new_minutes'], '.1f')} | "
                     + ("–" if r["speedup"] is None else f"{r['speedup']:.2f}x") + " |")
    return lines


def recipe_markdown(out: dict[str, Any], figures: list[str]) -> str:
    """The recipe search: the rule, one row per run (validation metrics, cost, score), the stages' choices."""
    rows = ["| stage | objective | setting | steps × batch | val kNN acc | val bits/dim | train min | img/s | score |",
            "|---:|---|---|---|---:|---:|---:|---:|---:|"]
    for r in out["rows"]:
        if r.get("diverged"):
            rows.append(f"| {r['stage']} | {r['objective']} | {r['setting']} | {r['steps']} × {r['batch_size']} | "
                        "diverged (NaN) | – | – | – | loses |")
            continue
        bits = "–" if r["val_bits_per_dim"] is None else f"{r['val_bits_per_dim']:.4f}"
        sc = "–" if r["score"] is None else f"{100 * r['score']:+.2f} %"
        rows.append(f"| {r['stage']} | {r['objective']} | {r['setting']} | {r['steps']} × {r['batch_size']} | "
                    f"{r['val_knn_acc']:.4f} | {bits} | {r['train_minutes']:.1f} | {r['img_per_s']:.0f} | {sc} |")
    stages = out.get("stages", {})
    outcome = []
    if "1" in stages:
        s1 = stages["1"]
        outcome += ["", "Stage 1 choices. Per objective: " + "; ".join(
            f"{o}: {', '.join(v) or 'the defaults'}" for o, v in s1["per_objective"].items())
            + f". Shared: {', '.join(s1['shared']) or 'the defaults'}."]
    if "2" in stages:
        outcome += ["", "Stage 2, each objective's recipe: " + "; ".join(
            f"**{o}: {w['setting']}** ({100 * w['score']:+.2f} %)" for o, w in stages["2"].items()) + "."]
    pending = _pending(out, "recipe")
    base = out["base"]
    return "\n".join([f"# The recipe search: profile `{out['profile']}`", "",
                      f"**Selection rule.** {out['rule']}", "",
                      f"Validation split: the last {out['n_val']} training images. Search budget: {out['images']} "
                      f"training images per run, seed 0. The default: AdamW lr {base['lr']:g}, weight decay "
                      f"{base['weight_decay']:g}, {base['schedule']} schedule, batch {base['batch_size']}. Score: "
                      f"relative to the objective's default, in percent; the margin is {100 * out['margin']:g} %. "
                      "Training minutes include compiling and are not a selection criterion (the protocol: "
                      "docs/recipe.md).", "", *rows, *outcome, *recipe_confirmation(out), *pending, "",
                      *[f"![{name}](figures/{name}.png)\n" for name in figures]])


def _mean_std(row: dict[str, Any], key: str, digits: int = 3) -> str:
    if row.get(key) is None:
        return "–"
    std = row.get(f"{key}_std")
    return f"{row[key]:.{digits}f}" + (f" ± {std:.{digits}f}" if std and len(row.get("seeds", [0, 0])) > 1 else "")


def _verdict(judged: dict[str, Any] | None) -> str:
    return "–" if judged is None else f"{judged['verdict']} ({judged['gap']:+.4f}, spread {judged['spread']:.4f})"


def _penalty(penalty: float | None, std: float | None, n_seeds: int) -> str:
    """A bits/dim penalty in percent, ± its spread over seeds where there are several."""
    if penalty is None:
        return "–"
    return f"{100 * penalty:+.1f} %" + (f" ± {100 * std:.1f}" if n_seeds > 1 else "")


def _pending(out: dict[str, Any], target: str) -> list[str]:
    """The lines that list a study's runs still to train (none where all have finished)."""
    return ["", f"**Not run yet** (`make {target}` resumes with them): " + "; ".join(out["pending"]) + "."
            ] if out.get("pending") else []


def _study_figure(figure: plt.Figure, folder: Path, name: str) -> list[str]:
    """A study's one figure saved as ``folder/name.png``; the list of names its markdown embeds."""
    folder.mkdir(parents=True, exist_ok=True)
    plots.save(figure, folder / f"{name}.png")
    return [name]


def controls_figures(out: dict[str, Any], folder: Path) -> list[str]:
    """controls_bits.png: each configuration's bits/dim against generative-only's; its name."""
    return _study_figure(plots.controls_bits(out["rows"]), folder, "controls_bits")


def controls_markdown(out: dict[str, Any], figures: list[str]) -> str:
    """The controls table, the two verdicts per configuration, the causes' costs and what is still to run."""
    rows = ["| configuration | isolates | seeds | params | test bits/dim | penalty vs G | share of H's penalty removed "
            "| linear probe | near-OOD AUROC | probe, 10 labels/class | train min |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in out["rows"]:
        penalty = _penalty(r.get("penalty"), r.get("penalty_std"), len(r["seeds"]))
        share = "–" if r.get("share_removed") is None else f"{100 * r['share_removed']:.0f} %"
        rows.append(f"| {r['name']} | {r['question']} | {','.join(map(str, r['seeds']))} | {r['parameters'] / 1e6:.2f} M | "
                    f"{_mean_std(r, 'test_bits_per_dim')} | {penalty} | {share} | {_mean_std(r, 'linear_probe_acc')} | "
                    f"{_mean_std(r, 'ood_auroc_near')} | {_mean_std(r, 'few_label_probe_acc_10')} | "
                    f"{r['train_minutes']:.1f} |")
    verdicts = ["| configuration | within 3 % of G (claim c3's test) | bits/dim below H's |", "|---|---|---|"]
    verdicts += [f"| {r['name']} | {_verdict(r.get('vs_G'))} | {_verdict(r.get('vs_H'))} |" for r in out["rows"]
                 if r["name"] != "G"]
    by_name = {r["name"]: r for r in out["rows"]}
    pairs = [("the learning rate", "G, hybrid's lr", "G"), ("the augmented input", "G on views (λ = 0)", "G, hybrid's lr"),
             ("the augmented input, inside the hybrid", "H", "H, clean"),
             ("the contrastive gradient", "H", "G on views (λ = 0)"),
             ("of which: sharing the top block", "H", "H, own top block"),
             ("of which: sharing the blocks below", "H, own top block", "H, own top block, stop-gradient")]
    costs = ["| cause | pair | bits/dim difference |", "|---|---|---:|"]
    for cause, a, b in pairs:
        if a in by_name and b in by_name:
            seeds = sorted(set(by_name[a]["seeds"]) & set(by_name[b]["seeds"]))
            costs.append(f"| {cause} | {a} − {b} (seeds {','.join(map(str, seeds))}) | "
                         f"{by_name[a]['test_bits_per_dim'] - by_name[b]['test_bits_per_dim']:+.4f} |")
    pending = _pending(out, "controls")
    return "\n".join([
        f"# Controls of the hybrid's bits/dim: profile `{out['profile']}`, {out['dataset']}, {out['steps']} steps", "",
        f"Protocol: [docs/controls.md](../../docs/controls.md). {out['rule']}", "",
        "Mean ± std over the seeds listed. The penalty is bits/dim over G's of the same seed, minus 1; the share "
        "removed is (bpd(H) − bpd(X)) / (bpd(H) − bpd(G)) of the seed means. Each difference in the last table compares "
        "seed means (the seeds both have), where the two configurations differ in that cause alone.", "",
        *rows, "", "## Verdicts (gap, spread)", "", *verdicts, "", "## What each cause costs", "", *costs, *pending, "",
        *[f"![{name}](figures/{name}.png)\n" for name in figures]])


def capacity_figures(out: dict[str, Any], folder: Path) -> list[str]:
    """capacity_penalty.png: the penalty and both bits/dim against parameters; its name."""
    return _study_figure(plots.capacity_penalty(out["rows"]), folder, "capacity_penalty")


def capacity_markdown(out: dict[str, Any], figures: list[str]) -> str:
    """The capacity table (one row per width) and the verdict on the penalty's trend."""
    rows = ["| d | parameters | GFLOPs/step G / H | seeds | G bits/dim | H bits/dim | penalty | G probe | H probe | "
            "G / H train min |", "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in out["rows"]:
        def cell(key: str, name: str) -> str:
            return _mean_std({key: r[f"{key}_{name}"], f"{key}_std": r[f"{key}_{name}_std"],
                              "seeds": r[f"seeds_{name}"]}, key)
        penalty = _penalty(r["penalty"], r["penalty_std"], len(r["penalties"]))
        minutes = " / ".join("–" if r[f"minutes_{n}"] is None else f"{r[f'minutes_{n}']:.1f}" for n in ("G", "H"))
        rows.append(f"| {r['d_model']} | {r['parameters'] / 1e6:.2f} M | {r['gflops_G']:.0f} / {r['gflops_H']:.0f} | "
                    f"{','.join(map(str, r['penalty_seeds']))} | {cell('test_bits_per_dim', 'G')} | "
                    f"{cell('test_bits_per_dim', 'H')} | {penalty} | {cell('linear_probe_acc', 'G')} | "
                    f"{cell('linear_probe_acc', 'H')} | {minutes} |")
    t = out.get("trend")
    trend = ["No verdict yet: it needs the penalty at two widths."] if t is None else [
        f"**The penalty {t['verdict']}** from d = {t['smallest']} to d = {t['largest']} "
        f"(gap {100 * t['gap']:+.1f} points, spread {100 * t['spread']:.1f}, {t['seeds']} seed"
        f"{'s' if t['seeds'] > 1 else ''}{'; the protocol asks for 3' if t['seeds'] < 3 else ''})."]
    pending = _pending(out, "capacity")
    return "\n".join([
        f"# Capacity: the hybrid's bits/dim penalty at three widths, profile `{out['profile']}`, {out['dataset']}, "
        f"{out['steps']} steps", "",
        f"Protocol: [docs/controls.md](../../docs/controls.md). {out['rule']}", "", *rows, "", *trend, *pending, "",
        *[f"![{name}](figures/{name}.png)\n" for name in figures]])
