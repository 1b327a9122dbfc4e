"""How far one seed's numbers move between two trainings of the same configuration (another machine, its
precision and kernels, the same seed): the spread no single-seed verdict may stand on.

    python tools/run_to_run.py RUNS_A RUNS_B [PROFILE] [SEED]

Evaluates, with the current protocol, the three objectives' runs of PROFILE (default cpu) and SEED (default 0)
under both run folders, prints each metric side by side, and writes results/PROFILE/run_to_run.json: per
metric, the largest difference over the three objectives. The claims (claims.py) take it as the smallest
spread a verdict must clear.
"""
from __future__ import annotations

import sys
from pathlib import Path

from hybridlib.checkpoint import load_model
from hybridlib.config import OBJECTIVES, trains_decoder
from hybridlib.data import prepare_data
from hybridlib.evaluate import align_ood, evaluate_model
from hybridlib.files import write_json
from hybridlib.paths import results_dir
from hybridlib.report import COLUMNS


def evaluate_tree(runs: Path, profile: str, seed: int) -> dict[str, dict]:
    models, data = {}, None
    for objective in OBJECTIVES:
        model, config, _ = load_model(runs / profile / f"seed{seed}" / objective, "cpu")
        data = data or prepare_data(config.data)
        models[objective] = evaluate_model(model, data, objective, config.eval, trains_decoder(objective),
                                           progress=False)
    return models


def main(runs_a: str, runs_b: str, profile: str = "cpu", seed: str = "0") -> int:
    a, b = align_ood([evaluate_tree(Path(r), profile, int(seed)) for r in (runs_a, runs_b)])
    spread: dict[str, float] = {}
    for objective in OBJECTIVES:
        for key in COLUMNS:
            if a[objective].get(key) is None:
                continue
            d = abs(a[objective][key] - b[objective][key])
            spread[key] = max(spread.get(key, 0.0), d)
            print(f"{objective:12s} {key:22s} {a[objective][key]:.4f} {b[objective][key]:.4f}  |diff| {d:.4f}")
    out = {"profile": profile, "seed": int(seed), "runs": [str(runs_a), str(runs_b)], "spread": spread,
           "per_model": {o: {k: [a[o].get(k), b[o].get(k)] for k in COLUMNS} for o in OBJECTIVES}}
    write_json(results_dir() / profile / "run_to_run.json", out)
    print(f"wrote {results_dir() / profile / 'run_to_run.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
