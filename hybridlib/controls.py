"""Why the hybrid pays in bits/dim: the controls that separate the causes, and the capacity sweep.

Both studies follow docs/controls.md, written before their runs: :data:`CONTROLS_RULE` and :data:`CAPACITY_RULE`
are that page in one paragraph each. Each is a list of configurations trained at the profile's budget for every
seed, seed 0 of every configuration first; each run is evaluated on every axis and kept beside its checkpoint
(``studies.evaluated``), so a study resumes where it stopped and its tables are rewritten after every run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .claims import Claim, judge
from .config import Config, parameter_count
from .data import prepare_data
from .errors import CheckpointError, ConfigError
from .experiments import run_to_run_spread
from .files import write_json, write_text
from .flops import model_flops_per_step
from .paths import results_dir
from .report import capacity_figures, capacity_markdown, controls_figures, controls_markdown
from .studies import ROW_KEYS, _mean, _std, evaluated

SEEDS = (0, 1, 2)
KEYS = ROW_KEYS + ("few_label_probe_acc_10",)
REFERENCE, HYBRID = "G", "H"
TOLERANCE = 0.03  # claim (c3)'s: bits/dim within 3 % of generative-only's

CONTROLS_RULE = (
    "Fixed before any of its runs (docs/controls.md). Seven configurations of the profile at its budget, seeds 0, 1 "
    "and 2: G (generative-only on clean images, its own learning rate), G at the hybrid's learning rate, G on views "
    "(the hybrid with λ = 0), H (the hybrid), H with its generative loss on clean images, H whose contrastive branch "
    "has its own top encoder block, and the same with the contrastive gradient stopped at the shared blocks. Each is "
    "judged against G by claim (c3)'s test (bits/dim within 3 %) and against H (bits/dim below H's), by the claims' "
    "rule: decided where the gap exceeds the spread (the larger standard deviation over seeds, at least the "
    "run-to-run spread), undecided in between. Each cause's cost is the bits/dim difference of the pair that differs "
    "in it alone."
)

CAPACITY_WIDTHS = (64, 128, 256)
CAPACITY_RULE = (
    "Fixed before any of its runs (docs/controls.md). G and H at d = 64, 128 and 256 (32 dimensions per head, "
    "projection d / 2, depth and everything else the profile's, its learning rates untuned), at the profile's steps, "
    "seeds 0, 1 and 2. The penalty is bpd(H) / bpd(G) - 1 of the same seed, mean ± std over seeds. It shrinks with "
    "capacity where the penalty at the largest width is below the one at the smallest by more than the spread (the "
    "larger of their standard deviations over seeds), grows where it is above by more, and is undecided in between."
)


@dataclass(frozen=True)
class Control:
    """One configuration of the controls study: an objective of the profile, with some settings changed."""
    name: str
    objective: str
    question: str
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    def config(self, base: Config, seed: int) -> Config:
        """``base`` (the profile's configuration of any objective) as this control, for ``seed``."""
        config = base.with_train(objective=self.objective, seed=seed).with_model(**self.model)
        return config.with_train(**self.train)


def controls(config: Config) -> list[Control]:
    """The seven configurations of docs/controls.md, from ``config``'s profile settings (its hybrid's learning rate)."""
    hybrid_lr = config.for_objective("hybrid").train.lr
    m = config.model
    own = {"n_encoder_layers": m.n_encoder_layers - 1, "n_decoder_layers": m.n_decoder_layers + 1,
           "contrastive_block": True}
    return [
        Control(REFERENCE, "generative", "the reference"),
        Control("G, hybrid's lr", "generative", "the learning rate", train={"lr": hybrid_lr}),
        Control("G on views (λ = 0)", "hybrid", "the augmented input", train={"lam": 0.0}),
        Control(HYBRID, "hybrid", "the gap"),
        Control("H, clean", "hybrid", "the augmented input, inside the hybrid", train={"generative_input": "clean"}),
        Control("H, own top block", "hybrid", "sharing the top encoder block", model=own),
        Control("H, own top block, stop-gradient", "hybrid", "sharing any block", model=own,
                train={"stop_contrastive_gradient": True}),
    ]


def _stats(values: list[float | None]) -> tuple[float | None, float | None]:
    """(mean, std over seeds) as the other studies give them; (None, None) with no value."""
    return (_mean(values), _std(values)) if values else (None, None)


def _bits(runs: dict[int, dict[str, Any]], seeds: list[int]) -> list[float]:
    return [runs[s]["test_bits_per_dim"] for s in seeds]


def run_controls(config: Config, seeds: tuple[int, ...] = SEEDS, progress: bool = True,
                 finished_only: bool = False) -> dict[str, Any]:
    """The controls of docs/controls.md for ``config``'s profile; writes results/<profile>/controls.{json,md} and
    its figure after every run. ``finished_only``: train nothing, tabulate the finished runs."""
    if config.model.n_encoder_layers < 2:
        raise ConfigError("the own-block controls need n_encoder_layers >= 2 (one block shared, one of its own)")
    data = prepare_data(config.data)
    variants = controls(config)
    results: dict[str, dict[int, dict[str, Any]]] = {c.name: {} for c in variants}
    out: dict[str, Any] = {"profile": config.profile, "dataset": config.data.dataset, "steps": config.train.steps,
                           "rule": CONTROLS_RULE, "seeds": list(seeds), "rows": [], "pending": []}
    floor = run_to_run_spread(config.profile).get("test_bits_per_dim", 0.0)
    for seed in seeds:
        for control in variants:
            run_config = control.config(config, seed)
            try:
                results[control.name][seed] = {**evaluated(run_config, data, progress, not finished_only),
                                               "parameters": parameter_count(run_config.model)}
            except CheckpointError:
                if not finished_only:
                    raise
                out["pending"].append(f"{control.name}, seed {seed}")
            out["rows"] = controls_rows(variants, results, floor)
            _write(out, "controls", controls_markdown, controls_figures)
    return out


def controls_rows(variants: list[Control], results: dict[str, dict[int, dict[str, Any]]], floor: float
                  ) -> list[dict[str, Any]]:
    """One row per configuration with a finished run: means ± std over its seeds, its penalty against G of the same
    seeds, the share of H's penalty it removes and its two verdicts (on the seeds it shares with G and H)."""
    reference, hybrid = results[REFERENCE], results[HYBRID]
    rows = []
    for control in variants:
        runs = results[control.name]
        if not runs:
            continue
        seeds = sorted(runs)
        row: dict[str, Any] = {"name": control.name, "objective": control.objective, "question": control.question,
                               "model": control.model, "train": control.train, "seeds": seeds,
                               "parameters": runs[seeds[0]]["parameters"],
                               "train_minutes": float(np.mean([r["train_minutes"] for r in runs.values()]))}
        for key in KEYS:
            row[key], row[f"{key}_std"] = _stats([runs[s].get(key) for s in seeds])
        paired = [s for s in seeds if s in reference]
        if paired:
            row["penalty"], row["penalty_std"] = _stats([runs[s]["test_bits_per_dim"] / reference[s]["test_bits_per_dim"]
                                                         - 1 for s in paired])
            row["vs_G"] = judge(Claim("vs G", f"{control.name}: bits/dim within 3 % of G's", "test_bits_per_dim",
                                      control.name, REFERENCE, higher_is_better=False, tolerance=TOLERANCE),
                                _bits(runs, paired), _bits(reference, paired), floor)
        both = [s for s in seeds if s in reference and s in hybrid]
        if both and control.name not in (REFERENCE, HYBRID):
            h, g, x = (float(np.mean(_bits(rs, both))) for rs in (hybrid, reference, runs))
            row["share_removed"] = (h - x) / (h - g) if h != g else None
            row["vs_H"] = judge(Claim("vs H", f"{control.name}: bits/dim below H's", "test_bits_per_dim",
                                      control.name, HYBRID, higher_is_better=False),
                                _bits(runs, both), _bits(hybrid, both), floor)
        rows.append(row)
    return rows


def capacity_configs(config: Config, width: int) -> dict[str, Config]:
    """G and H at ``width`` (32 dimensions per head, projection width / 2), everything else ``config``'s."""
    if width % 32:
        raise ConfigError(f"capacity widths must be multiples of 32 (heads of 32 dimensions), got {width}")
    return {name: config.with_train(objective=objective).with_model(d_model=width, n_head=width // 32,
                                                                    proj_dim=width // 2)
            for name, objective in ((REFERENCE, "generative"), (HYBRID, "hybrid"))}


def run_capacity(config: Config, widths: tuple[int, ...] = CAPACITY_WIDTHS, seeds: tuple[int, ...] = SEEDS,
                 progress: bool = True, finished_only: bool = False) -> dict[str, Any]:
    """The capacity sweep of docs/controls.md; writes results/<profile>/capacity.{json,md} and its figure after every
    run. ``finished_only``: train nothing, tabulate the finished runs."""
    data = prepare_data(config.data)
    results: dict[int, dict[str, dict[int, dict[str, Any]]]] = {w: {REFERENCE: {}, HYBRID: {}} for w in widths}
    out: dict[str, Any] = {"profile": config.profile, "dataset": config.data.dataset, "steps": config.train.steps,
                           "rule": CAPACITY_RULE, "seeds": list(seeds), "rows": [], "pending": []}
    for seed in seeds:
        for width in widths:
            for name, width_config in capacity_configs(config, width).items():
                try:
                    results[width][name][seed] = evaluated(width_config.with_train(seed=seed), data, progress,
                                                           not finished_only)
                except CheckpointError:
                    if not finished_only:
                        raise
                    out["pending"].append(f"{name}, d = {width}, seed {seed}")
                out.update(capacity_table(config, results))
                _write(out, "capacity", capacity_markdown, capacity_figures)
    return out


def capacity_table(config: Config, results: dict[int, dict[str, dict[int, dict[str, Any]]]]) -> dict[str, Any]:
    """One row per width with a finished run: parameters, FLOPs, both models' bits/dim and probe (mean ± std), the
    penalty (paired by seed) and the verdict on its trend from the smallest to the largest width."""
    rows = []
    for width, runs in results.items():
        if not runs[REFERENCE] and not runs[HYBRID]:
            continue
        configs = capacity_configs(config, width)
        row: dict[str, Any] = {"d_model": width, "parameters": parameter_count(configs[HYBRID].model),
                               **{f"gflops_{n}": model_flops_per_step(c) / 1e9 for n, c in configs.items()}}
        for name in (REFERENCE, HYBRID):
            row[f"seeds_{name}"] = sorted(runs[name])
            row[f"minutes_{name}"] = float(np.mean([r["train_minutes"] for r in runs[name].values()])) \
                if runs[name] else None
            for key in ("test_bits_per_dim", "linear_probe_acc", "ood_auroc_near", "few_label_probe_acc_10"):
                row[f"{key}_{name}"], row[f"{key}_{name}_std"] = _stats([r.get(key) for r in runs[name].values()])
        paired = sorted(set(runs[REFERENCE]) & set(runs[HYBRID]))
        penalties = [runs[HYBRID][s]["test_bits_per_dim"] / runs[REFERENCE][s]["test_bits_per_dim"] - 1 for s in paired]
        row["penalty_seeds"], row["penalties"] = paired, penalties
        row["penalty"], row["penalty_std"] = _stats(penalties)
        rows.append(row)
    trend = None
    with_penalty = [r for r in rows if r["penalty"] is not None]
    if len(with_penalty) >= 2 and with_penalty[0]["d_model"] != with_penalty[-1]["d_model"]:
        small, large = with_penalty[0], with_penalty[-1]
        spread = max(small["penalty_std"], large["penalty_std"])
        gap = small["penalty"] - large["penalty"]
        trend = {"smallest": small["d_model"], "largest": large["d_model"], "gap": gap, "spread": spread,
                 "seeds": min(len(small["penalties"]), len(large["penalties"])),
                 "verdict": "shrinks" if gap > spread else "grows" if gap < -spread else "undecided"}
    return {"rows": rows, "trend": trend}


def _write(out: dict[str, Any], stem: str, markdown: Any, figures: Any) -> None:
    folder = results_dir() / out["profile"]
    write_json(folder / f"{stem}.json", out)
    names = figures(out, folder / "figures")
    write_text(folder / f"{stem}.md", markdown(out, names))
