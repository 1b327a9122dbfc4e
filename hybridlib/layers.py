"""Which layer holds the best features: a linear probe after every block, over seeds.

The features of a block are its output at every position, layer-normed without a learned scale or shift, then
averaged over positions (after the last encoder block: the representation of a mean-pooled model without a
contrastive block of its own, up to the per-feature scale and shift that the probe's standardisation removes). Each
probe is fitted on the first ``N_PROBE_TRAIN`` training images and tested on every test image of the evaluation.
The question fixed before seeds 1 and 2 were probed (docs/layers.md): for the generative and the hybrid objective,
is the first decoder block's probe above the representation's (the last encoder block's), by how much, and is that
more than the spread over seeds?
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .config import Config
from .data import PreparedData, prepare_data
from .errors import CheckpointError
from .files import write_json, write_text
from .hardware import autocast, autocast_dtype
from .model import HybridTransformer
from .paths import results_dir
from .probes import fit_linear_probe
from .train import ensure_trained

N_PROBE_TRAIN = 5000  # training images per probe: a probe per block, kept quick
OBJECTIVES = ("generative", "hybrid")  # the contrastive model's decoder is never trained
SEEDS = (0, 1, 2)
LAYERS_RULE = ("d = accuracy after the first decoder block - accuracy after the representation (the last encoder "
               "block), per seed on the same test images; with m its mean over seeds, s its std over seeds and e the "
               "mean paired standard error over test images: above if m > max(s, 2e), below if m < -max(s, 2e), "
               "level otherwise")


ONE_SEED = "no verdict (one seed: the rule needs the spread over two or more)"


def layer_verdict(mean: float, std: float | None, paired_error: float) -> str:
    """:data:`LAYERS_RULE`: "above", "below" or "level"; :data:`ONE_SEED` when ``std`` is None (one seed)."""
    if std is None:
        return ONE_SEED
    margin = max(std, 2 * paired_error)
    return "above" if mean > margin else "below" if mean < -margin else "level"


@torch.no_grad()
def block_features(model: HybridTransformer, data: PreparedData, images: torch.Tensor, batch_size: int
                   ) -> list[np.ndarray]:
    """(N, C, H, W) images -> one (N, d) array per block: each position layer-normed (no learned scale or shift),
    then the mean over positions; in the precision the library's evaluation uses."""
    device = next(model.parameters()).device
    per_batch = []
    for i in range(0, len(images), batch_size):
        tokens = data.tokenizer.encode(images[i:i + batch_size]).to(device)  # (B, T)
        with autocast(autocast_dtype("auto", device), device):
            states = model.hidden_states(tokens)  # one (B, T+1, d) per block
        # the normalising in float32, outside autocast (which would run it in the low precision)
        per_batch.append([F.layer_norm(h.float(), h.shape[-1:]).mean(1).cpu() for h in states])
    return [torch.cat(block).numpy() for block in zip(*per_batch)]


def probe_train_size(config: Config, data: PreparedData) -> int:
    """How many training images each block's probe is fitted on."""
    return min(N_PROBE_TRAIN, config.eval.n_probe_train, len(data.train_images))


def block_probes(model: HybridTransformer, data: PreparedData, config: Config) -> list[np.ndarray]:
    """One (n_test,) boolean array per block: which test images that block's linear probe classifies right."""
    n_train = probe_train_size(config, data)
    n_test = len(data.test_images) if config.eval.n_test is None else min(config.eval.n_test, len(data.test_images))
    batch = config.eval.eval_batch_size
    train = block_features(model, data, data.train_images[:n_train], batch)
    test = block_features(model, data, data.test_images[:n_test], batch)
    y_train, y_test = data.train_labels[:n_train].numpy(), data.test_labels[:n_test].numpy()
    return [fit_linear_probe(a, y_train).predict(b) == y_test for a, b in zip(train, test)]


def paired(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[float, float]:
    """Accuracy of a minus accuracy of b on the same images, and its paired standard error."""
    d = correct_a.astype(float) - correct_b.astype(float)
    return float(d.mean()), float(d.std() / np.sqrt(len(d)))


def _mean_std(values: list[float]) -> dict[str, Any]:
    """Mean and sample std (ddof 1; None for one value) over seeds."""
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            "values": values}


def best_blocks(accuracy: list[float]) -> list[int]:
    """The blocks (from 1) whose probe is the most accurate: more than one where they tie."""
    top = max(accuracy)
    return [b for b, a in enumerate(accuracy, 1) if a == top]


def run_layers(config: Config, seeds: tuple[int, ...] = SEEDS, finished_only: bool = False,
               progress: bool = True) -> dict[str, Any]:
    """The probe after every block of the generative and hybrid runs of ``seeds``; trains a missing run unless
    ``finished_only`` (then a seed without a finished run is left out, and said so). Writes
    results/<profile>/layers.json and layers.md when every one of :data:`SEEDS` was probed (the committed study),
    else layers-seeds<probed>.json and .md, so that a partial study never replaces it; returns what it wrote."""
    data = prepare_data(config.data)
    n_enc = config.model.n_encoder_layers
    per_seed: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in OBJECTIVES}
    for seed in seeds:
        for name in OBJECTIVES:
            try:
                run = ensure_trained(config.with_train(objective=name, seed=seed), data, progress,
                                     train_missing=not finished_only)
            except CheckpointError as e:
                if not finished_only:  # a damaged or mismatched run: the study would quietly lose a seed
                    raise
                print(f"layers: {name}, seed {seed} left out ({e})")
                continue
            correct = block_probes(run.model, data, run.config)
            accuracy = [float(c.mean()) for c in correct]
            diff, se = paired(correct[n_enc], correct[n_enc - 1])
            per_seed[name][seed] = {"accuracy": accuracy, "best_block": best_blocks(accuracy),
                                    "first_decoder_minus_representation": diff, "paired_standard_error": se,
                                    "n_test": int(len(correct[0]))}
    models = {}
    for name, runs in per_seed.items():
        if not runs:
            continue
        accuracy = np.array([r["accuracy"] for r in runs.values()])  # (seeds, blocks)
        models[name] = {
            "seeds": list(runs), "per_seed": {str(s): r for s, r in runs.items()},
            "accuracy": {"mean": accuracy.mean(0).tolist(),  # no spread from one seed
                         "std": accuracy.std(0, ddof=1).tolist() if len(accuracy) > 1 else None},
            "first_decoder_minus_representation": _mean_std(
                [r["first_decoder_minus_representation"] for r in runs.values()]),
            "mean_paired_standard_error": float(np.mean([r["paired_standard_error"] for r in runs.values()])),
            "best_block": [r["best_block"] for r in runs.values()]}
        d = models[name]["first_decoder_minus_representation"]
        models[name]["verdict"] = layer_verdict(d["mean"], d["std"], models[name]["mean_paired_standard_error"])
    probed = sorted({seed for runs in per_seed.values() for seed in runs})
    complete = probed == sorted(SEEDS) and all(len(runs) == len(probed) for runs in per_seed.values())
    stem = "layers" if complete else f"layers-seeds{'_'.join(map(str, probed))}"
    out = {"profile": config.profile, "steps": config.train.steps, "n_encoder_layers": n_enc,
           "n_blocks": n_enc + config.model.n_decoder_layers, "n_probe_train": probe_train_size(config, data),
           "rule": LAYERS_RULE, "seeds_asked": list(seeds), "models": models}
    folder = results_dir() / config.profile
    write_json(folder / f"{stem}.json", out)
    write_text(folder / f"{stem}.md", layers_markdown(out))
    if not complete:
        print(f"layers: seeds {probed} probed, not all of {list(SEEDS)}: written to {folder / stem}.json and .md, "
              "leaving layers.json as it was")
    return out


def layers_markdown(out: dict[str, Any]) -> str:
    """The study as markdown: the probe after every block (mean ± std over seeds) and the pre-declared difference."""
    n_enc, n_blocks = out["n_encoder_layers"], out["n_blocks"]
    blocks = [f"{b}{' (rep.)' if b == n_enc else ''}" for b in range(1, n_blocks + 1)]
    lines = [f"# Which layer holds the best features ({out['profile']} profile, {out['steps']} steps)", "",
             f"A linear probe after every block (blocks 1-{n_enc}: encoder, {n_enc + 1}-{n_blocks}: decoder), fitted "
             f"on {out['n_probe_train']} training images and tested on every test image; mean ± std over seeds. "
             "Protocol: docs/layers.md.", "",
             "| objective | seeds | " + " | ".join(f"block {b}" for b in blocks) + " |",
             "|---|---|" + "---:|" * n_blocks]
    for name, m in out["models"].items():
        stds = m["accuracy"]["std"] or [None] * n_blocks
        cells = [f"{mu:.4f}" + ("" if sd is None else f" ± {sd:.4f}") for mu, sd in zip(m["accuracy"]["mean"], stds)]
        lines.append(f"| {name} | {', '.join(map(str, m['seeds']))} | " + " | ".join(cells) + " |")
    lines += ["", f"First decoder block (block {n_enc + 1}) minus the representation (block {n_enc}), and the verdict of "
              f"the rule fixed before seeds 1 and 2 were probed: {out['rule']}.", "",
              "| objective | mean ± std over seeds | per seed (± paired standard error over test images) | verdict "
              "| best block per seed |", "|---|---:|---|---|---|"]
    for name, m in out["models"].items():
        d = m["first_decoder_minus_representation"]
        each = ", ".join(f"{r['first_decoder_minus_representation']:+.4f} ± {r['paired_standard_error']:.4f}"
                         for r in m["per_seed"].values())
        spread = "" if d["std"] is None else f" ± {d['std']:.4f}"
        lines.append(f"| {name} | {d['mean']:+.4f}{spread} | {each} | {m['verdict']} | "
                     f"{', '.join(' = '.join(map(str, tied)) for tied in m['best_block'])} |")
    return "\n".join(lines) + "\n"


def saved_layers(config: Config) -> dict[str, Any] | None:
    """The committed study of ``config``'s profile (results/<profile>/layers.json), or None."""
    path = results_dir() / config.profile / "layers.json"
    return json.loads(path.read_text()) if path.exists() else None
