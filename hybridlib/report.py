"""The comparison report: train what is missing, evaluate every model and baseline, write
``results/<profile>/summary.json`` and ``summary.md`` with figures, and say plainly which of the
paper's claims held in this run.
"""
from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .bench import estimate_train_minutes
from .checkpoint import CHECKPOINT_NAME, load_checkpoint, load_model
from .config import OBJECTIVES, Config, get_config
from .data import PreparedData, prepare_data
from .errors import CheckpointError
from .evaluate import SUMMARY_KEYS, EvalConfig, eval_config_for, evaluate_baselines, evaluate_model, save_results
from .paths import results_dir, run_dir
from .precision import autocast_dtype, matmul_peak
from .train import resolve_device, train

NOTEBOOK_OF = {"contrastive": "02_contrastive.ipynb", "generative": "03_generative.ipynb", "hybrid": "04_hybrid.ipynb"}
COLUMNS = SUMMARY_KEYS + ("test_bits_per_dim",)


def train_or_load(config: Config, out_dir: Path | None = None, data: PreparedData | None = None,
                  progress: bool = True, device: str | torch.device | None = None):
    """Load the finished run in ``out_dir`` if its configuration matches, else train (resuming a partial run).

    Returns a TrainResult-like object with ``model``, ``history`` and ``wall_time_s``.
    """
    from .train import TrainResult, read_history

    out_dir = Path(out_dir) if out_dir is not None else run_dir(config.profile, config.train.objective, config.train.seed)
    ckpt = out_dir / CHECKPOINT_NAME
    if ckpt.exists():
        state = load_checkpoint(ckpt)
        if state["config"] == config.to_dict() and state["step"] >= config.train.steps:
            model, _, _ = load_model(ckpt, resolve_device(device))
            return TrainResult(out_dir, config, model, read_history(out_dir), state["step"], state["wall_time_s"])
    return train(config, out_dir, resume=ckpt.exists(), overwrite=False, progress=progress, device=device, data=data)


def load_trained(profile: str, objective: str, seed: int = 0, train_missing: bool = True,
                 data: PreparedData | None = None, progress: bool = True):
    """The model of an earlier notebook. Missing (a notebook opened on its own, on Colab say): trained
    here after one line saying roughly how long that takes; with ``train_missing=False``, one clear
    error saying what to run instead."""
    config = get_config(profile, objective, seed=seed)
    out_dir = run_dir(profile, objective, seed)
    done = load_checkpoint(out_dir)["step"] if (out_dir / CHECKPOINT_NAME).exists() else 0
    if done < config.train.steps:
        if not train_missing:
            raise CheckpointError(
                f"no finished {objective} model for profile {profile!r} seed {seed} in {out_dir}: run notebooks/"
                f"{NOTEBOOK_OF[objective]} or `python -m hybridlib train --objective {objective} --profile {profile}"
                f" --seed {seed} --resume`")
        device = resolve_device()
        peak = matmul_peak(autocast_dtype(config.train.precision, device) or torch.float32, device)
        minutes = estimate_train_minutes(config, peak, steps=config.train.steps - done)
        print(f"no finished {objective} model in {out_dir}: training it here (the run of notebooks/"
              f"{NOTEBOOK_OF[objective]}, from step {done}), roughly {minutes:.0f} min on this machine plus "
              "compiling", flush=True)
    return train_or_load(config, out_dir, data=data, progress=progress)


def evaluate_all(profile: str, seed: int = 0, data: PreparedData | None = None, eval_cfg: EvalConfig | None = None,
                 train_missing: bool = True, progress: bool = True) -> dict[str, Any]:
    """Every model and baseline on every axis: the summary dict that summary.json holds."""
    config = get_config(profile, "hybrid", seed=seed)
    data = data if data is not None else prepare_data(config.data)
    eval_cfg = eval_cfg or eval_config_for(profile)
    models: dict[str, dict[str, Any]] = {}
    training: dict[str, dict[str, Any]] = {}
    for objective in OBJECTIVES:
        run = load_trained(profile, objective, seed, train_missing, data, progress)
        models[objective] = evaluate_model(run.model, data, objective, eval_cfg, progress=progress)
        training[objective] = {"steps": run.step, "wall_time_s": run.wall_time_s,
                               "final_train_loss": run.history[-1]["loss"] if run.history else None}
    models.update(evaluate_baselines(config, data, eval_cfg, progress=progress))
    return {
        "profile": profile, "seed": seed, "dataset": config.data.dataset,
        "image_size": config.data.image_size, "steps": config.train.steps, "batch_size": config.train.batch_size,
        "config": config.to_dict(), "training": training, "eval": eval_cfg.__dict__,
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "device": "cuda" if torch.cuda.is_available() else "cpu"},
        "models": models,
        "verdicts": [v.__dict__ for v in verdicts(models)],
    }


@dataclass
class Verdict:
    claim: str
    held: bool
    evidence: str


def verdicts(models: dict[str, dict[str, Any]]) -> list[Verdict]:
    """The paper's three claims, judged on this run's numbers (single seed: no error bars here)."""
    c, g, h = models["contrastive"], models["generative"], models["hybrid"]
    raw = models.get("raw_pixels")
    out = [
        Verdict("(a) contrastive learning gives a more discriminative representation than generative training",
                c["linear_probe_acc"] > g["linear_probe_acc"],
                f"linear probe: contrastive {c['linear_probe_acc']:.3f} vs generative {g['linear_probe_acc']:.3f}"),
        Verdict("(b) generative training gives a more robust representation out of distribution than contrastive",
                g["ood_auroc_mean"] > c["ood_auroc_mean"],
                f"mean OOD AUROC (best score each): generative {g['ood_auroc_mean']:.3f} ({g['ood_best_score']}) vs "
                f"contrastive {c['ood_auroc_mean']:.3f} ({c['ood_best_score']})"),
        Verdict("(c1) the hybrid is at least as discriminative as contrastive-only",
                h["linear_probe_acc"] >= c["linear_probe_acc"],
                f"linear probe: hybrid {h['linear_probe_acc']:.3f} vs contrastive {c['linear_probe_acc']:.3f}"),
        Verdict("(c2) the hybrid is at least as robust out of distribution as the better single objective",
                h["ood_auroc_mean"] >= max(c["ood_auroc_mean"], g["ood_auroc_mean"]),
                f"mean OOD AUROC: hybrid {h['ood_auroc_mean']:.3f} vs best single "
                f"{max(c['ood_auroc_mean'], g['ood_auroc_mean']):.3f}"),
        Verdict("(c3) the hybrid does not hurt generative performance (bits/dim within 3 % of generative-only)",
                h["test_bits_per_dim"] <= 1.03 * g["test_bits_per_dim"],
                f"test bits/dim: hybrid {h['test_bits_per_dim']:.4f} vs generative {g['test_bits_per_dim']:.4f}"),
    ]
    if raw is not None:
        best = max(("contrastive", "generative", "hybrid"), key=lambda n: models[n]["linear_probe_acc"])
        out.append(Verdict("(check) learned representations beat raw pixels on the linear probe",
                           all(models[n]["linear_probe_acc"] > raw["linear_probe_acc"] for n in OBJECTIVES),
                           f"best learned ({best}) {models[best]['linear_probe_acc']:.3f} vs raw pixels "
                           f"{raw['linear_probe_acc']:.3f}"))
    return out


def markdown_table(models: dict[str, dict[str, Any]]) -> str:
    head = "| model | " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    rows = []
    for name, r in models.items():
        cells = [f"{r[c]:.3f}" if r.get(c) is not None else "–" for c in COLUMNS]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *rows])


def write_summary(summary: dict[str, Any], out_dir: Path | None = None, figures: bool = True) -> Path:
    """Write summary.json, summary.md and the figures into results/<profile>/; returns the folder."""
    from . import plots

    out_dir = Path(out_dir) if out_dir is not None else results_dir() / summary["profile"]
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    save_results(summary, out_dir / "summary.json")
    models = summary["models"]
    if figures:
        plots.save(plots.compare_bars(models, COLUMNS), out_dir / "figures" / "comparison.png")
        plots.save(plots.corruption_curves(models), out_dir / "figures" / "corruption.png")
        plots.save(plots.reliability_diagrams(models), out_dir / "figures" / "reliability.png")
        plots.save(plots.ood_heatmap(models), out_dir / "figures" / "ood.png")
    lines = [
        f"# Results: profile `{summary['profile']}`, seed {summary['seed']}, {summary['dataset']}",
        "",
        f"{summary['steps']} training steps of batch {summary['batch_size']} per objective "
        f"(equal steps: the three objectives see the same number of images). "
        + ", ".join(f"{k} trained in {v['wall_time_s'] / 60:.1f} min" for k, v in summary["training"].items()) + ".",
        "",
        markdown_table(models),
        "",
        "Accuracies and AUROC are fractions; ECE is the linear probe's (15 bins); OOD AUROC is the mean over OOD "
        "sets of each model's best score type (kNN distance or likelihood).",
        "",
        "## The paper's claims in this run",
        "",
        *[f"- {'HELD' if v['held'] else 'NOT HELD'}: {v['claim']} — {v['evidence']}" for v in summary["verdicts"]],
        "",
    ]
    if "reproduce_wall_time_s" in summary:
        lines += [f"Full `make reproduce` wall time: {summary['reproduce_wall_time_s'] / 60:.1f} min.", ""]
    if figures:
        lines += ["![comparison](figures/comparison.png)", "", "![corruption](figures/corruption.png)", "",
                  "![ood](figures/ood.png)", "", "![reliability](figures/reliability.png)", ""]
    (out_dir / "summary.md").write_text("\n".join(lines))
    return out_dir


def make_report(profile: str | None = None, seed: int = 0) -> Path:
    """`python -m hybridlib report`: train what is missing, evaluate everything, write the report."""
    from .config import resolve_profile

    profile = resolve_profile(profile)
    t0 = time.perf_counter()
    summary = evaluate_all(profile, seed, train_missing=True)
    summary["report_wall_time_s"] = time.perf_counter() - t0
    out = write_summary(summary)
    print((out / "summary.md").read_text())
    return out


def read_summary(profile: str) -> dict[str, Any]:
    return json.loads((results_dir() / profile / "summary.json").read_text())


def saved_summary(profile: str, seed: int, eval_cfg: EvalConfig | None = None) -> dict[str, Any] | None:
    """The summary.json already written for this seed, if it was made with today's configuration and
    evaluation settings (else None: it must be recomputed)."""
    eval_cfg = eval_cfg or eval_config_for(profile)
    expected = get_config(profile, "hybrid", seed=seed).to_dict()
    for path in (results_dir() / profile / f"seed{seed}" / "summary.json", results_dir() / profile / "summary.json"):
        if path.exists():
            summary = json.loads(path.read_text())
            if summary.get("config") == expected and summary.get("eval") == eval_cfg.__dict__:
                return summary
    return None


def run_seeds(profile: str | None = None, seeds: tuple[int, ...] = (0, 1, 2), progress: bool = True) -> dict[str, Any]:
    """The comparison over several seeds: mean and standard deviation of every headline number.

    Writes results/<profile>/seeds.json and seeds.md. A claim counts only where the gap between the
    means exceeds the larger of the two standard deviations.
    """
    import numpy as np

    from .config import resolve_profile

    profile = resolve_profile(profile)
    per_seed = {}
    for seed in seeds:
        per_seed[seed] = saved_summary(profile, seed)  # e.g. seed 0 from `make reproduce`
        if per_seed[seed] is None:
            per_seed[seed] = evaluate_all(profile, seed, train_missing=True, progress=progress)
            write_summary(per_seed[seed], results_dir() / profile / f"seed{seed}", figures=False)
    names = list(per_seed[seeds[0]]["models"])
    stats: dict[str, dict[str, dict[str, float]]] = {}
    for name in names:
        stats[name] = {}
        for key in COLUMNS:
            values = [per_seed[s]["models"][name].get(key) for s in seeds]
            if all(v is not None for v in values):
                stats[name][key] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if
                                    len(values) > 1 else 0.0, "values": values}
    claims = _seed_claims(stats)
    out = {"profile": profile, "seeds": list(seeds), "dataset": per_seed[seeds[0]]["dataset"],
           "steps": per_seed[seeds[0]]["steps"], "models": stats, "claims": claims}
    out_dir = results_dir() / profile
    save_results(out, out_dir / "seeds.json")
    (out_dir / "seeds.md").write_text(seeds_markdown(out))
    return out


def _seed_claims(stats: dict[str, dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    def compare(claim: str, a: str, b: str, key: str, higher_is_better: bool = True, slack: float = 0.0):
        ma, mb = stats[a][key], stats[b][key]
        gap = (ma["mean"] - mb["mean"]) if higher_is_better else (mb["mean"] * (1 + slack) - ma["mean"])
        spread = max(ma["std"], mb["std"])
        verdict = "held" if gap > spread else ("not held" if gap < -spread else "within the spread: undecided")
        return {"claim": claim, "verdict": verdict, "gap": gap, "spread": spread}

    return [
        compare("(a) contrastive more discriminative than generative (linear probe)", "contrastive", "generative",
                "linear_probe_acc"),
        compare("(b) generative more robust out of distribution than contrastive (OOD AUROC)", "generative",
                "contrastive", "ood_auroc_mean"),
        compare("(c1) hybrid at least as discriminative as contrastive (linear probe)", "hybrid", "contrastive",
                "linear_probe_acc"),
        compare("(c2) hybrid at least as robust OOD as generative (OOD AUROC)", "hybrid", "generative",
                "ood_auroc_mean"),
        compare("(c3) hybrid bits/dim within 3 % of generative", "hybrid", "generative", "test_bits_per_dim",
                higher_is_better=False, slack=0.03),
        compare("(check) hybrid beats raw pixels (linear probe)", "hybrid", "raw_pixels", "linear_probe_acc"),
    ]


def seeds_markdown(out: dict[str, Any]) -> str:
    head = "| model | " + " | ".join(c.replace("_", " ") for c in COLUMNS) + " |"
    rows = [head, "|---|" + "---:|" * len(COLUMNS)]
    for name, stats in out["models"].items():
        cells = [f"{stats[c]['mean']:.3f} ± {stats[c]['std']:.3f}" if c in stats else "–" for c in COLUMNS]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    claims = [f"- {c['verdict'].upper()}: {c['claim']} (gap {c['gap']:+.4f}, spread {c['spread']:.4f})"
              for c in out["claims"]]
    return "\n".join([f"# Profile `{out['profile']}`, {out['dataset']}, seeds {out['seeds']} (mean ± std)", "",
                      *rows, "", "## Claims (a gap counts only where it exceeds the larger standard deviation)", "",
                      *claims, ""])


def lambda_sweep(profile: str | None = None, lams: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0), seed: int = 0,
                 eval_cfg: EvalConfig | None = None, train_missing: bool = True, progress: bool = True
                 ) -> list[dict[str, Any]]:
    """Hybrid runs at several λ between the two single objectives (the endpoints: generative-only at
    λ = 0 and contrastive-only at λ = ∞). One row per run with its headline numbers."""
    from .config import resolve_profile

    profile = resolve_profile(profile)
    base = get_config(profile, "hybrid", seed=seed)
    data = prepare_data(base.data)
    eval_cfg = eval_cfg or eval_config_for(profile)
    summary = saved_summary(profile, seed, eval_cfg)  # the three main runs, evaluated by `make reproduce`
    rows = []
    for lam in (0.0, *lams, math.inf):
        if lam == 0.0 or math.isinf(lam) or lam == base.train.lam:
            objective = {0.0: "generative", math.inf: "contrastive"}.get(lam, "hybrid")
            if summary is not None:
                r = summary["models"][objective]
            else:
                run = load_trained(profile, objective, seed, train_missing, data, progress)
                r = evaluate_model(run.model, data, f"lam={lam:g}", eval_cfg, progress=progress)
        else:
            config = get_config(profile, "hybrid", seed=seed, lam=lam)
            run = train_or_load(config, run_dir(profile, f"hybrid_lam{lam:g}", seed), data=data, progress=progress)
            r = evaluate_model(run.model, data, f"lam={lam:g}", eval_cfg, progress=progress)
        rows.append({"lam": lam, **{k: r.get(k) for k in COLUMNS}, "ood_best_score": r["ood_best_score"]})
    save_results({"profile": profile, "seed": seed, "rows": rows}, results_dir() / profile / "tradeoff.json")
    return rows


def tradeoff_figure(rows: list[dict[str, Any]], profile: str | None = None):
    """The λ sweep against λ on a log axis, saved to results/<profile>/figures/tradeoff.png when a
    profile is given. λ = 0 (generative-only) is drawn at a quarter of the smallest λ and λ = ∞
    (contrastive-only) at four times the largest; the contrastive-only bits/dim is left out, since
    its decoder is never trained."""
    from . import plots

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
