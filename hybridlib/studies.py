"""The two long studies: the hybrid's ablations and the scaling study.

Each is a grid of training runs, every run evaluated on every axis. They take hours on a laptop's
CPU, so both resume: a finished run is reused (``ensure_trained``), an interrupted one continues from
its checkpoint, and each run's evaluation is kept beside its checkpoint (``evaluation.json``, reused
while the evaluation settings and protocol are the same). The tables are rewritten after every run,
so what has finished is on disk whenever a sitting ends.

The ablations' selection rule is fixed here, before any of their results existed (ABLATION_RULE).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .claims import CLAIMS, judge_all
from .config import OBJECTIVES, Config
from .data import PreparedData, prepare_data
from .errors import CheckpointError
from .evaluate import align_ood, evaluate_representation, pixel_embedding
from .experiments import evaluate_run, run_to_run_spread
from .files import write_json, write_text
from .flops import model_flops_per_step
from .paths import results_dir
from .report import ablations_markdown, scaling_figures, scaling_markdown
from .train import ensure_trained

ROW_KEYS = ("linear_probe_acc", "knn_acc", "ood_auroc_near", "ood_auroc_far", "ood_likelihood_auroc_near",
            "ood_likelihood_auroc_far", "corruption_acc_mean", "ece", "test_bits_per_dim")
# what an ablation of the hybrid can move: the hybrid's claims when the ablations' rule was fixed (a claim added later
# would change a committed score)
HYBRID_CLAIMS = ("c1", "c2", "c3", "check")


def evaluated(config: Config, data: PreparedData, progress: bool = True, train_missing: bool = True
              ) -> dict[str, Any]:
    """``config``'s run (trained here if missing or unfinished; with ``train_missing=False`` a CheckpointError
    instead) evaluated on every axis (kept beside its checkpoint and reused: :func:`evaluate_run`), with its
    training minutes and FLOPs."""
    run = ensure_trained(config, data, progress, train_missing, shipped=False)  # a study trains its own runs
    return {**evaluate_run(run, data, config.eval, progress), "objective": config.train.objective, "steps": run.step,
            "seed": config.train.seed, "train_minutes": run.wall_time_s / 60,
            "train_pflops": model_flops_per_step(config) * run.step / 1e15}


def raw_pixels(config: Config, data: PreparedData) -> dict[str, Any]:
    """The raw-pixel baseline (no training: the same for every seed and budget)."""
    return evaluate_representation("raw_pixels", pixel_embedding(data), data, config.eval, False, progress=False)


def _row(result: dict[str, Any], **labels: Any) -> dict[str, Any]:
    return {**labels, **{k: result.get(k) for k in ROW_KEYS},
            "train_minutes": result["train_minutes"], "train_pflops": result["train_pflops"]}


# ---------------------------------------------------------------- ablations

@dataclass(frozen=True)
class Variant:
    """One configuration of the hybrid: changes to the profile's model and training settings."""
    name: str
    factor: str
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    def apply(self, config: Config) -> Config:
        return config.with_model(**self.model).with_train(**self.train)


def ablation_variants(config: Config) -> list[Variant]:
    """Stage 1: every level of every factor, one factor at a time from ``config``'s hybrid."""
    m, t = config.model, config.train
    depth = m.n_encoder_layers + m.n_decoder_layers
    variants = [Variant("default", "default")]
    variants += [Variant(f"λ = {lam:g}", "λ", train={"lam": lam}) for lam in (0.03, 0.1, 0.3, 1.0) if lam != t.lam]
    variants.append(Variant(f"λ warm-up over {t.steps // 2} steps", "λ warm-up",
                            train={"lam_warmup_steps": t.steps // 2}))
    other = "clean" if t.generative_input == "views" else "views"
    variants.append(Variant(f"generative loss on the {other} image{'s' if other == 'views' else ''}",
                            "generative input", train={"generative_input": other}))
    variants.append(Variant("contrastive head on the last position", "pool",
                            model={"pool": "last" if m.pool == "mean" else "mean"}))
    variants += [Variant(f"split {e}+{depth - e}", "encoder/decoder split",
                         model={"n_encoder_layers": e, "n_decoder_layers": depth - e})
                 for e in (2, 3, 4) if e != m.n_encoder_layers and 0 < e < depth]
    variants += [Variant(f"τ = {tau:g}", "temperature", train={"temperature": tau})
                 for tau in (0.1, 0.2, 0.5) if tau != t.temperature]
    return variants


ABLATION_RULE = (
    "Fixed before any ablation ran. Stage 1, seed 0: every level of every factor, one factor at a time from "
    "the profile's hybrid, at one budget (the table's title gives it). A configuration's score is the number of the hybrid's claims "
    f"({', '.join(HYBRID_CLAIMS)}) it holds against the contrastive-only, generative-only and raw-pixel models "
    "of the same seed and budget, ties broken by linear probe accuracy. Stage 2, seed 0: each factor's best "
    "level by that score, combined into one configuration. Stage 3: the three best configurations of stages 1 "
    "and 2 by that score, and the baselines, on seeds 1 and 2; the winner holds the most claims over the three "
    "seeds by the claims' rule (the run-to-run spread included, as in every verdict), ties broken by mean linear "
    "probe accuracy. The winner becomes the profile's "
    "hybrid default. A setting the contrastive-only objective shares (τ) is then given to it too."
)


def _claims_held(per_seed_models: list[dict[str, dict[str, Any]]], floors: dict[str, float]
                 ) -> tuple[int, list[dict[str, Any]]]:
    claims = [c for c in judge_all(align_ood(per_seed_models), floors) if c["id"] in HYBRID_CLAIMS]
    return sum(c["verdict"] == "held" for c in claims), claims


def run_ablations(config: Config, finalists: int = 3, seeds: tuple[int, ...] = (0, 1, 2), progress: bool = True,
                  stop_after_stage: int = 3, finished_only: bool = False) -> dict[str, Any]:
    """The three stages of ABLATION_RULE for ``config``'s hybrid (its profile, budget and settings);
    writes results/<profile>/ablations.json and ablations.md after every run. ``finished_only``: train
    nothing, tabulate the runs already finished (the table then lists what is pending)."""
    data = prepare_data(config.data)
    pixels = raw_pixels(config, data)
    floors = run_to_run_spread(config.profile)
    baselines: dict[int, dict[str, dict[str, Any]]] = {}

    def models_of(variant: Variant, seed: int) -> dict[str, dict[str, Any]]:
        if seed not in baselines:
            baselines[seed] = {o: evaluated(config.with_train(objective=o, seed=seed), data, progress,
                                            not finished_only) for o in ("contrastive", "generative")}
            baselines[seed]["raw_pixels"] = pixels
        hybrid = evaluated(variant.apply(config.with_train(seed=seed)), data, progress, not finished_only)
        return {**baselines[seed], "hybrid": hybrid}

    out: dict[str, Any] = {"profile": config.profile, "steps": config.train.steps, "rule": ABLATION_RULE,
                           "stages": {}, "rows": [], "pending": []}

    def record(stage: int, variant: Variant, seeds_run: tuple[int, ...]) -> dict[str, Any] | None:
        try:
            per_seed = [models_of(variant, s) for s in seeds_run]
        except CheckpointError:
            if not finished_only:  # a real error (a run that could not be put in place, say), not a pending run
                raise
            out["pending"].append(f"stage {stage}: {variant.name}, seeds {list(seeds_run)}")
            _write_ablations(out)
            return None
        held, claims = _claims_held(per_seed, floors)
        hybrid = [m["hybrid"] for m in per_seed]
        row = {"stage": stage, "variant": variant.name, "factor": variant.factor, "model": variant.model,
               "train": variant.train, "seeds": list(seeds_run), "claims_held": held,
               "verdicts": {c["id"]: c["verdict"] for c in claims},
               **{k: _mean([h.get(k) for h in hybrid]) for k in ROW_KEYS},
               **{f"{k}_std": _std([h.get(k) for h in hybrid]) for k in ("linear_probe_acc", "ood_auroc_near",
                                                                           "test_bits_per_dim")},
               "train_minutes": _mean([h["train_minutes"] for h in hybrid])}
        out["rows"].append(row)
        _write_ablations(out)
        return row

    def score(row: dict[str, Any]) -> tuple[int, float]:
        return row["claims_held"], row["linear_probe_acc"]

    stage1 = [(v, record(1, v, seeds[:1])) for v in ablation_variants(config)]
    if stop_after_stage == 1 or out["pending"]:
        return out
    best_level: dict[str, Variant] = {}
    default = stage1[0]
    for factor in dict.fromkeys(v.factor for v, _ in stage1[1:]):
        levels = [default] + [(v, r) for v, r in stage1 if v.factor == factor]
        best_level[factor] = max(levels, key=lambda vr: score(vr[1]))[0]
    chosen = [v for v in best_level.values() if v is not default[0]]
    combined = Variant("combined: " + ", ".join(v.name for v in chosen), "combined",
                       model={k: x for v in chosen for k, x in v.model.items()},
                       train={k: x for v in chosen for k, x in v.train.items()})
    # one factor's best level alone is already a stage-1 row; two or more make a new configuration
    out["stages"]["2"] = {"best_level": {f: v.name for f, v in best_level.items()}, "combined": asdict(combined)}
    candidates = stage1 + ([(combined, record(2, combined, seeds[:1]))] if len(chosen) > 1 else [])
    if stop_after_stage == 2 or out["pending"]:
        _write_ablations(out)
        return out
    top = sorted(candidates, key=lambda vr: score(vr[1]), reverse=True)[:finalists]
    final = [(v, record(3, v, seeds)) for v, _ in top]
    if out["pending"]:
        return out
    winner = max(final, key=lambda vr: score(vr[1]))
    out["stages"]["3"] = {"finalists": [v.name for v, _ in final], "winner": asdict(winner[0])}
    _write_ablations(out)
    return out


def _mean(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else float(np.mean(values))


def _std(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _write_ablations(out: dict[str, Any]) -> None:
    folder = results_dir() / out["profile"]
    write_json(folder / "ablations.json", out)
    write_text(folder / "ablations.md", ablations_markdown(out))


# ---------------------------------------------------------------- scaling

SCALING_STEPS = (250, 500, 1000, 2000)
# an equal-compute partner at most this factor off in training FLOPs: the budgets double, so a claim's model with a
# run of the other model on each side is at most 1.41x off; at the largest budget the nearest run may be 2.5x off,
# which is not equal compute, and that row is left out
COMPUTE_MATCH = 1.5
SCALING_SEEDS = {250: (0,), 500: (0, 1, 2), 1000: (0, 1, 2), 2000: (0, 1, 2)}


def scaling_order(steps: tuple[int, ...], seeds: dict[int, tuple[int, ...]]) -> list[tuple[int, int]]:
    """(steps, seed) pairs, seed 0 at every budget first (the curve, cheapest first), then the other seeds."""
    first = [(s, 0) for s in steps if 0 in seeds[s]]
    return first + [(s, seed) for s in steps for seed in seeds[s] if seed != 0]


def run_scaling(config: Config, steps: tuple[int, ...] = SCALING_STEPS,
                seeds: dict[int, tuple[int, ...]] | None = None, progress: bool = True,
                finished_only: bool = False) -> dict[str, Any]:
    """The three objectives (``config``'s settings) at each budget and seed, every axis evaluated; the claims
    judged per budget at equal steps and at equal compute. Writes results/<profile>/scaling.{json,md} and
    figures after every run. ``finished_only``: train nothing, tabulate the runs already finished."""
    seeds = seeds or {s: SCALING_SEEDS.get(s, (0,)) for s in steps}
    data = prepare_data(config.data)
    pixels = raw_pixels(config, data)
    runs: dict[tuple[str, int, int], dict[str, Any]] = {}
    out: dict[str, Any] = {"profile": config.profile, "dataset": config.data.dataset, "rows": [], "pending": [],
                           "raw_pixels": {k: pixels.get(k) for k in ROW_KEYS}, "compute_match": COMPUTE_MATCH}
    for n_steps, seed in scaling_order(steps, seeds):
        for objective in OBJECTIVES:
            run_config = config.with_train(objective=objective, steps=n_steps, seed=seed)
            try:
                result = evaluated(run_config, data, progress, not finished_only)
            except CheckpointError:
                if not finished_only:  # a real error, not a pending run
                    raise
                out["pending"].append(f"{objective}, {n_steps} steps, seed {seed}")
                continue
            runs[(objective, n_steps, seed)] = result
            out["rows"].append(_row(result, objective=objective, steps=n_steps, seed=seed))
        out["claims"] = scaling_claims(runs, pixels, run_to_run_spread(config.profile))
        _write_scaling(out)
    return out


def scaling_claims(runs: dict[tuple[str, int, int], dict[str, Any]], pixels: dict[str, Any],
                   floors: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Each claim judged at every budget with all three objectives on at least one seed: at equal steps
    (every model at that budget) and at equal compute (the claim's model at that budget against the other
    model's run whose training FLOPs are nearest, with their ratio, where that is within ``COMPUTE_MATCH``)."""
    budgets = sorted({s for _, s, _ in runs})
    out = []
    for n_steps in budgets:
        seeds = sorted(seed for (o, s, seed) in runs if o == "hybrid" and s == n_steps
                       and all((other, s, seed) in runs for other in OBJECTIVES))
        if not seeds:
            continue
        per_seed = align_ood([{**{o: runs[(o, n_steps, seed)] for o in OBJECTIVES}, "raw_pixels": pixels}
                              for seed in seeds])
        for c in judge_all(per_seed, floors):
            out.append({"steps": n_steps, "seeds": seeds, "budget": "equal steps", **c})
        for claim in CLAIMS:
            if claim.other not in OBJECTIVES:
                continue  # raw pixels cost no training
            flops = runs[(claim.model, n_steps, seeds[0])]["train_pflops"]
            other_steps = [s for (o, s, seed) in runs if o == claim.other and seed in seeds]
            match = min(set(other_steps), key=lambda s: abs(math.log(runs[(claim.other, s, seeds[0])]["train_pflops"]
                                                                      / flops)))
            ratio = runs[(claim.other, match, seeds[0])]["train_pflops"] / flops
            if abs(math.log(ratio)) > math.log(COMPUTE_MATCH):
                continue
            matched_seeds = [seed for seed in seeds if (claim.other, match, seed) in runs]
            per_seed = align_ood([{claim.model: runs[(claim.model, n_steps, seed)],
                                   claim.other: runs[(claim.other, match, seed)]} for seed in matched_seeds])
            for c in judge_all(per_seed, floors):
                if c["id"] == claim.id:
                    out.append({"steps": n_steps, "seeds": matched_seeds, "budget": "equal compute",
                                "other_steps": match, "compute_ratio": ratio, **c})
    return out


def _write_scaling(out: dict[str, Any]) -> None:
    folder = results_dir() / out["profile"]
    write_json(folder / "scaling.json", out)
    figures = scaling_figures(out, folder / "figures")
    write_text(folder / "scaling.md", scaling_markdown(out, figures))
