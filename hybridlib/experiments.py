"""The experiments behind the results: every model and baseline on every axis for one seed, the
same over several seeds, and the λ sweep. Each takes a :class:`~hybridlib.config.Config` (the
hybrid's, with the profile, seed and settings to use) and trains whatever is missing.
"""
from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from .anchors import bits_per_dim_anchors
from .claims import judge_all
from .config import OBJECTIVES, Config, EvalConfig, trains_decoder
from .data import PreparedData, prepare_data
from .evaluate import EVAL_PROTOCOL, align_ood, corruption_curve, evaluate_baselines, evaluate_model
from .files import json_text, write_json, write_text
from .paths import results_dir, results_stem
from .report import COLUMNS, FEW_LABEL_KEYS, anchors_markdown, heads_markdown, seeds_markdown, write_summary
from .train import TrainResult, ensure_trained


def evaluate_run(run: TrainResult, data: PreparedData, cfg: EvalConfig, progress: bool = True) -> dict[str, Any]:
    """``run``'s model evaluated on every axis (:func:`hybridlib.evaluate.evaluate_model`), as JSON gives it back
    (NaN as None) whether computed now or read back. A run of one's own keeps its evaluation beside its checkpoint
    (``evaluation.json``, one per run: the last settings evaluated) and later calls read it back, as long as the
    protocol, the evaluation settings and the trained weights (their step and training time) are the same.
    Shipped weights are evaluated every time (the repository's folder is not written to)."""
    cache = run.out_dir / "evaluation.json"
    key = json.loads(json_text({"protocol": EVAL_PROTOCOL, "eval": asdict(cfg), "step": run.step,
                                "wall_time_s": run.wall_time_s}))  # compared with a key read back from JSON
    if run.shipped is None and cache.exists():
        saved = json.loads(cache.read_text())
        if saved.get("key") == key:
            return saved["result"]
    objective = run.config.train.objective
    result = json.loads(json_text(evaluate_model(run.model, data, objective, cfg, trains_decoder(objective),
                                                 progress)))
    if run.shipped is None:
        write_json(cache, {"key": key, "result": result})
    return result


def evaluate_all(config: Config, data: PreparedData | None = None, train_missing: bool = True,
                 progress: bool = True, shipped: bool = True) -> dict[str, Any]:
    """Every model (the three objectives with ``config``'s other settings) and baseline on every axis,
    and the claims judged on them: the summary dict that summary.json holds. ``shipped``: the repository's
    weights may stand in for a missing run (notebook 5 in a class); the studies pass False."""
    data = data if data is not None else prepare_data(config.data)
    models: dict[str, dict[str, Any]] = {}
    training: dict[str, dict[str, Any]] = {}
    for objective in OBJECTIVES:
        run = ensure_trained(config.with_train(objective=objective), data, progress, train_missing, shipped=shipped)
        models[objective] = evaluate_run(run, data, config.eval, progress)
        training[objective] = {"steps": run.step, "wall_time_s": run.wall_time_s,
                               "final_train_loss": run.history[-1]["loss"] if run.history else None,
                               "weights": "shipped" if run.shipped else "own run"}
    models.update(evaluate_baselines(config, data, progress=progress))
    return {
        "profile": config.profile, "seed": config.train.seed, "dataset": config.data.dataset,
        "image_size": config.data.image_size, "steps": config.train.steps, "batch_size": config.train.batch_size,
        "config": config.to_dict(), "protocol": EVAL_PROTOCOL, "training": training,
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "device": "cuda" if torch.cuda.is_available() else "cpu"},
        "models": models,
        "ood_sets": models["hybrid"]["ood_sets"],
        "claims": judge_all([models], run_to_run_spread(config.profile)),
    }


def run_to_run_spread(profile: str) -> dict[str, float]:
    """Each metric's run-to-run spread with the seed fixed (results/<profile>/run_to_run.json, written by
    tools/run_to_run.py; empty where it was never measured): the floor of every verdict's spread."""
    path = results_dir() / profile / "run_to_run.json"
    return json.loads(path.read_text())["spread"] if path.exists() else {}


def saved_summary(config: Config) -> dict[str, Any] | None:
    """The summary.json already written for ``config``'s profile and seed, if it was made with this very
    configuration, evaluation settings and protocol included (else None: it must be recomputed)."""
    seed = config.train.seed
    for path in (results_dir() / config.profile / f"seed{seed}" / "summary.json",
                 results_dir() / config.profile / "summary.json"):
        if path.exists():
            summary = json.loads(path.read_text())
            if summary.get("protocol") == EVAL_PROTOCOL and \
                    Config.from_dict(summary["config"]) == config.with_train(objective="hybrid"):
                return summary
    return None


def saved_seeds(config: Config) -> dict[str, Any] | None:
    """results/<profile>/seeds.json (written by `make seeds`) if it was made with ``config``'s settings (any seed)
    and this evaluation protocol; else None."""
    path = results_dir() / config.profile / "seeds.json"
    if not path.exists():
        return None
    out = json.loads(path.read_text())
    same = out.get("protocol") == EVAL_PROTOCOL and "config" in out and \
        Config.from_dict(out["config"]) == config.with_train(objective="hybrid", seed=0)
    return out if same else None


def run_seeds(config: Config, seeds: tuple[int, ...] = (0, 1, 2), progress: bool = True) -> dict[str, Any]:
    """The comparison over several seeds: mean and standard deviation of every headline number, and the
    claims judged by :mod:`hybridlib.claims`' rule. Writes results/<profile>/seeds.json and seeds.md."""
    per_seed = {}
    for seed in seeds:
        seeded = config.with_train(seed=seed)
        per_seed[seed] = saved_summary(seeded)  # e.g. seed 0 from `make reproduce`
        if per_seed[seed] is None:
            per_seed[seed] = evaluate_all(seeded, progress=progress, shipped=False)
            write_summary(per_seed[seed], results_dir() / config.profile / f"seed{seed}", figures=False)
    models_per_seed = align_ood([per_seed[s]["models"] for s in seeds])
    names = list(models_per_seed[0])
    stats: dict[str, dict[str, dict[str, Any]]] = {}
    for name in names:
        stats[name] = {}
        for key in COLUMNS + FEW_LABEL_KEYS:
            values = [m[name].get(key) for m in models_per_seed]
            if all(v is not None for v in values):
                stats[name][key] = {"mean": float(np.mean(values)),
                                    "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, "values": values}
        curves = np.array([corruption_curve(m[name]) for m in models_per_seed])  # (seeds, severities 0-5)
        stats[name]["corruption_curve"] = {"mean": curves.mean(0).tolist(), "values": curves.tolist(),
                                           "std": (curves.std(0, ddof=1) if len(curves) > 1 else np.zeros(curves.shape[1])).tolist()}
    out = {"profile": config.profile, "seeds": list(seeds), "dataset": config.data.dataset,
           "steps": config.train.steps, "config": config.with_train(seed=0).to_dict(), "protocol": EVAL_PROTOCOL,
           "models": stats,
           "ood_sets": models_per_seed[0][names[0]]["ood_sets"], "claims": judge_all(models_per_seed, run_to_run_spread(config.profile))}
    out_dir = results_dir() / config.profile
    write_json(out_dir / "seeds.json", out)
    write_text(out_dir / "seeds.md", seeds_markdown(out))
    return out


def lambda_sweep(config: Config, lams: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0), progress: bool = True
                 ) -> dict[str, Any]:
    """Hybrid runs at λ = 0, at ``lams`` and in the limit λ → ∞ (contrastive-only), beside generative-only, the
    reference of claim (c3). λ = 0 is the hybrid with its contrastive term off: its generative loss still reads
    the augmented views, so it is not generative-only, which trains on clean images (the controls, `make
    controls`, measure what that costs in bits/dim). Returns ``rows`` (one per λ, with its headline numbers)
    and ``generative``; written to results/<profile>/tradeoff.json (another name for other settings or seeds:
    :func:`results_stem`)."""
    data = prepare_data(config.data)
    summary = saved_summary(config)  # the three main runs, evaluated by `make reproduce`

    def row(objective: str, lam: float | None) -> dict[str, Any]:
        if summary is not None and (objective != "hybrid" or lam == config.train.lam):
            r = summary["models"][objective]
        else:
            run_config = config.with_train(objective=objective) if objective != "hybrid" else config.with_train(lam=lam)
            r = evaluate_run(ensure_trained(run_config, data, progress, shipped=False), data, config.eval, progress)
        return {"lam": lam, "objective": objective, **{k: r.get(k) for k in COLUMNS}}

    rows = [row("contrastive" if math.isinf(lam) else "hybrid", lam) for lam in (0.0, *lams, math.inf)]
    out = {"profile": config.profile, "seed": config.train.seed, "steps": config.train.steps,
           "rows": rows, "generative": row("generative", None)}  # JSON: λ = ∞ is null, as is generative's λ
    write_json(results_dir() / config.profile / f"{results_stem('tradeoff', config)}.json", out)
    return out


def compare_heads(config: Config, progress: bool = True) -> dict[str, Any]:
    """The two output heads (:mod:`hybridlib.heads`) for the generative and hybrid objectives: the joint
    head at ``config``'s steps, the pixel head at the same steps and at the same training time (its steps
    scaled by the two runs' measured steady-state images per second). Every run is evaluated on every
    axis; written to results/<profile>/heads.json and heads.md."""
    data = prepare_data(config.data)
    rows = []
    for objective in ("generative", "hybrid"):
        base = config.with_train(objective=objective)
        runs = {"joint": ensure_trained(base.with_model(head="joint"), data, progress, shipped=False)}
        pixels = base.with_model(head="pixels")
        runs["pixels"] = ensure_trained(pixels, data, progress)
        ratio = _img_per_s(runs["pixels"].history) / _img_per_s(runs["joint"].history)
        equal_time = pixels.with_train(steps=round(base.train.steps * ratio))
        runs["pixels, equal time"] = ensure_trained(equal_time, data, progress)
        for name, run in runs.items():
            r = evaluate_run(run, data, config.eval, progress)
            rows.append({"objective": objective, "head": name, "steps": run.step,
                         "img_per_s": _img_per_s(run.history), "train_minutes": run.wall_time_s / 60,
                         **{k: r.get(k) for k in COLUMNS}})
    out = {"profile": config.profile, "seed": config.train.seed, "steps": config.train.steps, "rows": rows}
    write_json(results_dir() / config.profile / "heads.json", out)
    write_text(results_dir() / config.profile / "heads.md", heads_markdown(out))
    return out


def _img_per_s(history: list[dict[str, float]]) -> float:
    """The median logged training throughput: steady state, without the first interval's compiling."""
    return float(np.median([row["img_per_s"] for row in history[1:]] or [history[0]["img_per_s"]]))


def bits_anchors(config: Config) -> dict[str, Any]:
    """The bits/dim anchors (:mod:`hybridlib.anchors`) of ``config``'s test set, beside the trained decoders of
    summary.json where it holds ``config``'s run (`make reproduce`), written to results/<profile>/anchors.json and
    anchors.md."""
    data = prepare_data(config.data)
    summary = saved_summary(config)
    models = {name: {"bits_per_dim": m["test_bits_per_dim"], "steps": summary["steps"], "seed": summary["seed"]}
              for name, m in summary["models"].items() if m.get("test_bits_per_dim") is not None} if summary else {}
    out = {"profile": config.profile, "dataset": config.data.dataset, "image_size": config.data.image_size,
           "levels": config.data.levels, "test_images": len(data.test_images), "bits_per_dim": bits_per_dim_anchors(data),
           "models": models}
    write_json(results_dir() / config.profile / "anchors.json", out)
    write_text(results_dir() / config.profile / "anchors.md", anchors_markdown(out))
    return out
