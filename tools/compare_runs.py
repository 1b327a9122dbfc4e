"""Compare two result trees of the same profile: every checkpoint's weights bit for bit and every
number of summary.json exactly (evaluation times and wall times aside).

    python tools/compare_runs.py RUNS_A RESULTS_A RUNS_B RESULTS_B PROFILE

Used to show that a change of the code's shape changes no number.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

# settings (config, eval) and timings are not results; claims are re-derived from the numbers compared
VOLATILE = ("eval", "eval_time_s", "wall_time_s", "report_wall_time_s", "machine", "config", "claims", "verdicts",
            "elapsed_s", "img_per_s")


def numbers(tree, prefix=""):
    """(path, value) for every number in a JSON tree, volatile keys left out."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key not in VOLATILE:
                yield from numbers(value, f"{prefix}/{key}")
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from numbers(value, f"{prefix}[{i}]")
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield prefix, tree


def main(runs_a: str, results_a: str, runs_b: str, results_b: str, profile: str) -> int:
    bad = 0
    for ckpt_a in sorted(Path(runs_a, profile).rglob("checkpoint.pt")):
        ckpt_b = Path(runs_b, profile) / ckpt_a.relative_to(Path(runs_a, profile))
        a, b = (torch.load(p, weights_only=True)["model"] for p in (ckpt_a, ckpt_b))
        same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        print(f"{'identical' if same else 'DIFFERENT'} weights: {ckpt_a.relative_to(runs_a)}")
        bad += not same
    sa, sb = (dict(numbers(json.loads(Path(r, profile, "summary.json").read_text())))
              for r in (results_a, results_b))
    differing = [k for k in sa if sb.get(k) != sa[k]]
    print(f"summary.json: {len(sa)} numbers, {len(differing)} differ, {len(set(sb) - set(sa))} only in the second")
    for k in differing[:20]:
        print(f"  {k}: {sa[k]!r} != {sb.get(k)!r}")
    return int(bad > 0 or bool(differing))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
