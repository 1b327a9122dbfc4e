"""The few-label axis: the linear probe and kNN with 1, 10 and 100 labelled images per class.

The protocol (docs/controls.md, fixed before any result): the probe's pool of training features is split into a
draw part (its first three quarters) and a held-out part (its last quarter). For each budget, class-balanced draws
of labelled images come from the draw part, the same for every model (seeded by the evaluation seed, the budget
and the draw). The probe is standardised and whitened by the whole pool's statistics (unlabelled); its L2 strength
C is chosen from ``C_GRID`` by the mean held-out accuracy of ``SELECTION_DRAWS`` draws; then ``DRAWS`` other draws
fit with that C and are scored on the test set. kNN uses k = min(knn_k, labels per class). The test set never
chooses anything.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .probes import Basis, fit_linear_probe, knn_accuracy, whitened_basis

SHOTS = (1, 10, 100)  # labelled images per class
DRAWS = 5  # evaluation draws per budget
SELECTION_DRAWS = 3  # draws that choose C, scored on the held-out quarter of the pool
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
HELD_OUT_FRACTION = 0.25  # the pool's last quarter: where C is chosen


def draw_labelled(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """Indices of ``shots`` images of every class of ``labels``, without replacement, in class order; a pure
    function of (labels, shots, seed). ValueError where a class has fewer than ``shots`` images."""
    g = torch.Generator().manual_seed(seed)
    picked = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < shots:
            raise ValueError(f"class {c} has {len(members)} images, fewer than {shots}")
        picked.append(members[torch.randperm(len(members), generator=g)[:shots].numpy()])
    return np.concatenate(picked)


def draw_seed(eval_seed: int, shots: int, draw: int, selection: bool) -> int:
    """The seed of one draw: evaluation and selection draws never coincide, budgets never share one."""
    return ((eval_seed * 1_000 + shots) * 100 + draw) * 2 + int(selection)


def split_pool(n_pool: int) -> int:
    """Where the pool's draw part ends and its held-out quarter begins."""
    return n_pool - max(1, round(HELD_OUT_FRACTION * n_pool))


def few_label(f_pool: np.ndarray, y_pool: np.ndarray, f_test: np.ndarray, y_test: np.ndarray, knn_k: int,
              eval_seed: int = 0) -> dict[str, Any]:
    """Every budget of ``SHOTS`` the draw part can give: {"<shots>": probe and kNN accuracy (mean and std over the
    evaluation draws), the chosen C and the held-out accuracy of each C}, flattened into
    ``few_label_{probe,knn}_acc_<shots>`` (means) and ``..._sem`` (standard error over draws) for the tables and the
    claims."""
    cut = split_pool(len(f_pool))
    basis = whitened_basis(f_pool)  # the whole pool, unlabelled: one basis for every probe below
    f_draw, y_draw, f_held, y_held = f_pool[:cut], y_pool[:cut], f_pool[cut:], y_pool[cut:]
    smallest = int(np.bincount(y_draw).min()) if len(y_draw) else 0
    per_budget: dict[str, dict[str, Any]] = {}
    flat: dict[str, float] = {}
    for shots in SHOTS:
        if shots > smallest:
            continue  # a class cannot give that many labels (protocol: the budget is skipped)
        selection = [draw_labelled(y_draw, shots, draw_seed(eval_seed, shots, i, True)) for i in range(SELECTION_DRAWS)]
        held_acc = {C: float(np.mean([_probe_acc(f_draw[i], y_draw[i], f_held, y_held, C, basis) for i in selection]))
                    for C in C_GRID}
        best = max(C_GRID, key=lambda C: held_acc[C])  # ties: the strongest regularisation, the first in the grid
        draws = [draw_labelled(y_draw, shots, draw_seed(eval_seed, shots, i, False)) for i in range(DRAWS)]
        probe = [_probe_acc(f_draw[i], y_draw[i], f_test, y_test, best, basis) for i in draws]
        k = min(knn_k, shots)
        knn = [knn_accuracy(f_draw[i], y_draw[i], f_test, y_test, k) for i in draws]
        per_budget[str(shots)] = {"probe_acc": float(np.mean(probe)), "probe_acc_std": _std(probe),
                                  "knn_acc": float(np.mean(knn)), "knn_acc_std": _std(knn), "C": best, "knn_k": k,
                                  "held_out_acc": {f"{C:g}": a for C, a in held_acc.items()},
                                  "draws": DRAWS}
        for name, values in (("probe", probe), ("knn", knn)):
            flat[f"few_label_{name}_acc_{shots}"] = float(np.mean(values))
            flat[f"few_label_{name}_acc_{shots}_sem"] = _std(values) / np.sqrt(len(values))
    return {"few_label": per_budget, **flat}


def _probe_acc(f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray, y_test: np.ndarray, C: float,
               basis: Basis) -> float:
    return float((fit_linear_probe(f_train, y_train, C, basis).predict(f_test) == y_test).mean())


def _std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
