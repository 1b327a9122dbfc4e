"""The paper's claims as one table, and one rule that judges them on one seed or on several.

Each claim compares one model with another on one metric. Its *gap* is how far the first is
ahead of the second in the metric's better direction, plus a tolerance for "at least as good as"
claims (relative to the second model's value: within 3 % on bits/dim). The rule: a claim is
**held** where the gap exceeds the spread, **not held** where it is below minus the spread, and
**undecided** in between. The spread is the larger of the two models' standard deviations over
seeds, and never less than the metric's run-to-run spread: how far the same configuration and seed moved
between two trainings on different machines (results/<profile>/run_to_run.json, measured by
tools/run_to_run.py), so that no single-seed verdict stands on a gap that retraining could erase.

The OOD claims use the near-OOD mean AUROC of the kNN-distance score, fixed in advance (evaluate.py). A metric
averaged over label draws (the few-label axis) carries its standard error over the draws (``<metric>_sem``), and the
spread is never less than the larger of the two models' either.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

RULE = ("held where the gap exceeds the spread (the larger standard deviation of the two models over seeds, at "
        "least the metric's run-to-run spread with the seed fixed), not held where it is below minus the spread, "
        "undecided in between")


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    metric: str
    model: str  # the model the claim is about...
    other: str  # ...compared with this one
    higher_is_better: bool = True
    tolerance: float = 0.0  # "at least as good": the model may be this fraction of ``other``'s value behind


CLAIMS = (
    Claim("a", "contrastive learning gives a more discriminative representation than generative training",
          "linear_probe_acc", "contrastive", "generative"),
    Claim("b", "generative training gives a representation more robust out of distribution than contrastive",
          "ood_auroc_near", "generative", "contrastive"),
    Claim("c1", "the hybrid is at least as discriminative as contrastive-only", "linear_probe_acc", "hybrid",
          "contrastive"),
    Claim("c2", "the hybrid is at least as robust out of distribution as generative-only", "ood_auroc_near", "hybrid",
          "generative"),
    Claim("c3", "the hybrid does not hurt generative performance (test bits/dim within 3 % of generative-only)",
          "test_bits_per_dim", "hybrid", "generative", higher_is_better=False, tolerance=0.03),
    Claim("check", "the hybrid's representation beats raw pixels on the linear probe", "linear_probe_acc", "hybrid",
          "raw_pixels"),
    # added with the few-label axis, before any of its results (docs/controls.md)
    Claim("few", "with 10 labels per class the hybrid's representation beats raw pixels on the linear probe",
          "few_label_probe_acc_10", "hybrid", "raw_pixels"),
)


def gap(claim: Claim, value: float, other: float) -> float:
    """How far ``value`` (the claim's model) is ahead of ``other`` in the better direction, tolerance included."""
    ahead = value - other if claim.higher_is_better else other - value
    return ahead + claim.tolerance * abs(other)


def verdict(g: float, spread: float) -> str:
    return "held" if g > spread else "not held" if g < -spread else "undecided"


HELD = {"held": True, "not held": False, "undecided": None}  # a verdict as a yes/no, None where the spread cannot tell


def judge(claim: Claim, values: list[float], others: list[float], floor: float = 0.0) -> dict[str, Any]:
    """One claim judged on per-seed values of its two models (one value each: a single seed); ``floor``: the
    metric's run-to-run spread, the least the spread can be."""
    spread = max(floor, *(float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in (values, others)))
    g = gap(claim, float(np.mean(values)), float(np.mean(others)))
    v = verdict(g, spread)
    return {**asdict(claim), "gap": g, "spread": spread, "verdict": v, "held": HELD[v],
            "evidence": f"{claim.metric.replace('_', ' ')}: {claim.model} {np.mean(values):.4g} vs "
                        f"{claim.other} {np.mean(others):.4g}"}


def judge_all(per_seed_models: list[dict[str, dict[str, Any]]], floors: dict[str, float] | None = None
              ) -> list[dict[str, Any]]:
    """Every claim whose models and metric are present, judged on the ``models`` dicts of one or more seeds;
    ``floors``: each metric's run-to-run spread (:func:`judge`)."""
    floors = floors or {}
    out = []
    for claim in CLAIMS:
        if all(claim.model in m and claim.other in m and m[claim.model].get(claim.metric) is not None
               and m[claim.other].get(claim.metric) is not None for m in per_seed_models):
            draws = [m[name].get(f"{claim.metric}_sem") or 0.0 for m in per_seed_models for name in (claim.model,
                                                                                                     claim.other)]
            out.append(judge(claim, [m[claim.model][claim.metric] for m in per_seed_models],
                             [m[claim.other][claim.metric] for m in per_seed_models],
                             max(floors.get(claim.metric, 0.0), *draws)))
    return out


def claim_lines(claims: list[dict[str, Any]]) -> list[str]:
    """Markdown bullets: the verdict, the claim, its evidence, its gap and spread."""
    return [f"- {c['verdict'].upper()}: ({c['id']}) {c['statement']} — {c['evidence']} "
            f"(gap {c['gap']:+.4f}, spread {c['spread']:.4f})" for c in claims]
