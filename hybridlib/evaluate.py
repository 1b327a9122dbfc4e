"""Evaluation on six axes, one call per model:

1. discriminative: linear probe and kNN accuracy on frozen features (probes.py);
2. out-of-distribution detection: AUROC and FPR at 95 % TPR against near-OOD sets (other digit-like
   images, flipped test images) and far-OOD sets (noise, constant images), with two fixed scores,
   each its own column: the kNN distance in representation space (every model; the claims use it,
   averaged over the near sets) and the likelihood (the models whose decoder was trained);
3. corruption robustness: probe accuracy on corrupted test images, 10 corruptions x 5 severities;
4. calibration: expected calibration error of the probe (15 bins), clean and corrupted;
5. generative: test bits/dim (the models whose decoder was trained);
6. few labels: the linear probe and kNN with 1, 10 and 100 labelled images per class (fewlabel.py).

Every image set is encoded once: the test set's features, bits/dim and its first ``n_ood`` images'
OOD scores come from one pass. Inference runs in fp32 or under bf16 autocast as training does
(hardware.py), in batches of ``eval_batch_size`` images; the softmax and the features handed to the
probes are fp32.

Baselines: ``raw_pixels`` (the quantized pixels the model sees, as features) and ``random_init``
(an untrained encoder of the same shape). Scores are oriented so that higher means "more OOD".
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve
from torch import Tensor
from tqdm.auto import tqdm

from .checkpoint import load_model
from .config import Config, EvalConfig, trains_decoder
from .corruptions import CORRUPTIONS, corrupt
from .data import PreparedData, load_dataset, prepare_data, resize
from .errors import DataError
from .losses import bits_per_dim
from .hardware import autocast, autocast_dtype, resolve_device
from .model import HybridTransformer
from .progress import announce
from .fewlabel import few_label
from .probes import LinearProbe, fit_linear_probe, knn_accuracy, knn_distance

EVAL_PROTOCOL = 3  # raised whenever a change to this module moves the numbers: saved evaluations are then redone
SUMMARY_KEYS = ("linear_probe_acc", "knn_acc", "ood_auroc_near", "ood_auroc_far", "corruption_acc_mean", "ece",
                "ece_corrupted")
FAR_OOD = ("gaussian_noise", "uniform_noise", "constant")  # synthetic images, nothing like any training image
FEATURE_SCORE, LIKELIHOOD_SCORE = "knn_distance", "likelihood"  # fixed before looking; the claims use the first


# ---------------------------------------------------------------- metrics

def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> tuple[float, float]:
    """(AUROC, FPR at 95 % TPR) of telling OOD (positive, higher score) from in-distribution."""
    y = np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))]
    s = np.r_[in_scores, out_scores]
    fpr, tpr, _ = roc_curve(y, s)
    return float(roc_auc_score(y, s)), float(fpr[np.searchsorted(tpr, 0.95, side="left")])


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE: the gap |accuracy - confidence| of equal-width confidence bins, weighted by bin size."""
    bins = reliability_bins(probs, labels, n_bins)
    n = len(labels)
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]))


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> list[dict[str, float]]:
    """Per confidence bin: count, mean confidence and accuracy (for the reliability diagram)."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    which = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    out = []
    for b in range(n_bins):
        m = which == b
        out.append({"lower": b / n_bins, "upper": (b + 1) / n_bins, "count": int(m.sum()),
                    "confidence": float(confidence[m].mean()) if m.any() else float("nan"),
                    "accuracy": float(correct[m].mean()) if m.any() else float("nan")})
    return out


# ---------------------------------------------------------------- representations

# images (N, C, H, W) in [0, 1], with_bits -> (features (N, D), bits/dim per image (N,) or None)
Embed = Callable[[Tensor, bool], tuple[Tensor, Tensor | None]]


def model_embedding(model: HybridTransformer, data: PreparedData, batch_size: int = 128) -> Embed:
    """Features, and bits/dim where asked, from one encoder pass per batch: the decoder reads the
    same encoder output the representation is pooled from, so no image is encoded twice."""
    device = next(model.parameters()).device
    dtype = autocast_dtype("auto", device)

    @torch.no_grad()
    def embed(images: Tensor, with_bits: bool) -> tuple[Tensor, Tensor | None]:
        features, bits = [], []
        with autocast(dtype, device):
            for i in range(0, len(images), batch_size):
                tokens = data.tokenizer.encode(images[i : i + batch_size]).to(device)
                h = model.forward_encoder(tokens)
                features.append(model.representation(h).float().cpu())
                if with_bits:
                    nll = model.next_token_nll(h, tokens).float().mean(dim=1)  # (B,) nats per token of each image
                    bits.append(bits_per_dim(nll, data.config.dims_per_token).cpu())
        return torch.cat(features), torch.cat(bits) if with_bits else None

    return embed


def model_features(model: HybridTransformer, data: PreparedData, batch_size: int = 128) -> Callable[[Tensor], Tensor]:
    """images -> (N, d) representations of a trained model (for retrieval and probes)."""
    embed = model_embedding(model, data, batch_size)
    return lambda images: embed(images, False)[0]


def pixel_embedding(data: PreparedData) -> Embed:
    """The quantized pixels the model sees, flattened: the raw-pixel baseline (no likelihood)."""
    def embed(images: Tensor, with_bits: bool) -> tuple[Tensor, None]:
        return data.tokenizer.decode(data.tokenizer.encode(images)).flatten(1), None

    return embed


# ---------------------------------------------------------------- OOD sets

def ood_sets(data: PreparedData, n: int, seed: int = 0) -> dict[str, Tensor]:
    """Out-of-distribution images at the data's resolution: near-OOD sets first (digit-like images,
    the test images upside down), then the far-OOD ones of ``FAR_OOD``. Data sets that need a download
    are used only when already on disk (`make data` fetches them): evaluation never needs the network,
    and the summary records which sets it used."""
    g = torch.Generator().manual_seed(seed)
    test = data.test_images[:n]
    size, ch = data.config.image_size, data.config.channels
    sets: dict[str, Tensor] = {}
    if ch == 1 and data.config.dataset != "digits":
        sets["digits"] = resize(load_dataset("digits").test_images, size)[:n]
    downloaded = {"fashion-mnist": ("mnist", "kmnist"), "cifar10": ("svhn", "cifar100")}.get(data.config.dataset, ())
    for name in downloaded:
        try:
            sets[name] = resize(load_dataset(name, download=False).test_images, size)[:n]
        except DataError:
            pass
    sets["vflip"] = test.flip(-2)
    mean, std = float(test.mean()), float(test.std())
    sets["gaussian_noise"] = (mean + std * torch.randn(len(test), ch, size, size, generator=g)).clamp(0, 1)
    sets["uniform_noise"] = torch.rand(len(test), ch, size, size, generator=g)
    sets["constant"] = torch.rand(len(test), ch, 1, 1, generator=g).expand(-1, -1, size, size).contiguous()
    return sets


def ood_groups(set_names: list[str]) -> dict[str, list[str]]:
    """{"near": [...], "far": [...]}: the far sets are the synthetic ones of ``FAR_OOD``."""
    return {"near": [s for s in set_names if s not in FAR_OOD], "far": [s for s in set_names if s in FAR_OOD]}


def ood_mean(result: dict[str, Any], score: str, sets: list[str]) -> float | None:
    """The mean AUROC of one score over some OOD sets (None where the result lacks the score or a set):
    comparisons across runs use the sets every run has."""
    per_set = result.get("ood", {}).get(score, {})
    if not sets or any(s not in per_set for s in sets):
        return None
    return float(np.mean([per_set[s]["auroc"] for s in sets]))


def align_ood(runs: list[dict[str, dict[str, Any]]]) -> list[dict[str, dict[str, Any]]]:
    """Several runs' ``models`` dicts (name -> result) with every near and far mean recomputed over the OOD
    sets all of them have (runs made with and without MNIST on disk, say): a comparison across runs never
    mixes set lists."""
    results = [r for models in runs for r in models.values()]
    common = set.intersection(*(set(r["ood"][FEATURE_SCORE]) for r in results))
    groups = {g: [s for s in sets if s in common] for g, sets in results[0]["ood_sets"].items()}

    def aligned(r: dict[str, Any]) -> dict[str, Any]:
        r = {**r, "ood_sets": groups}
        for group, sets in groups.items():
            r[f"ood_auroc_{group}"] = ood_mean(r, FEATURE_SCORE, sets)
            if LIKELIHOOD_SCORE in r["ood"]:
                r[f"ood_likelihood_auroc_{group}"] = ood_mean(r, LIKELIHOOD_SCORE, sets)
        return r

    return [{name: aligned(r) for name, r in models.items()} for models in runs]


# ---------------------------------------------------------------- the axes

def discrimination(f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray, y_test: np.ndarray,
                   cfg: EvalConfig) -> tuple[LinearProbe, dict[str, Any]]:
    """Linear probe and kNN accuracy, and the probe's calibration: (the fitted probe, metrics)."""
    probe = fit_linear_probe(f_train, y_train)
    probs = probe.predict_proba(f_test)
    return probe, {
        "linear_probe_acc": float((probs.argmax(1) == y_test).mean()),
        "knn_acc": knn_accuracy(f_train, y_train, f_test, y_test, cfg.knn_k),
        "ece": expected_calibration_error(probs, y_test),
        "reliability": reliability_bins(probs, y_test),
    }


def out_of_distribution(embed: Embed, data: PreparedData, f_train: np.ndarray, f_test: np.ndarray,
                        test_bits: np.ndarray | None, cfg: EvalConfig) -> dict[str, Any]:
    """AUROC and FPR@95 of each fixed score (kNN distance; likelihood where the decoder was trained) on each
    OOD set against the first ``n_ood`` test images, and each score's mean over the near and the far sets."""
    n_ood = min(cfg.n_ood, len(f_test))
    in_dist = {FEATURE_SCORE: knn_distance(f_train, f_test[:n_ood])}
    if test_bits is not None:
        in_dist[LIKELIHOOD_SCORE] = test_bits[:n_ood]
    ood: dict[str, dict[str, dict[str, float]]] = {score: {} for score in in_dist}
    for set_name, images in ood_sets(data, n_ood, cfg.eval_seed).items():
        features, bits = embed(images, test_bits is not None)
        out_scores = {FEATURE_SCORE: knn_distance(f_train, features.numpy())}
        if bits is not None:
            out_scores[LIKELIHOOD_SCORE] = bits.numpy()
        for score, in_scores in in_dist.items():
            a, fpr = auroc(in_scores, out_scores[score])
            ood[score][set_name] = {"auroc": a, "fpr95": fpr}
    groups = ood_groups(list(ood[FEATURE_SCORE]))
    result: dict[str, Any] = {"ood": ood, "ood_sets": groups}
    for group, sets in groups.items():
        result[f"ood_auroc_{group}"] = ood_mean(result, FEATURE_SCORE, sets)
        if LIKELIHOOD_SCORE in ood:
            result[f"ood_likelihood_auroc_{group}"] = ood_mean(result, LIKELIHOOD_SCORE, sets)
    return result


def corruption_robustness(embed: Embed, probe: LinearProbe, test_x: Tensor, y_test: np.ndarray, cfg: EvalConfig,
                          bar: tqdm) -> dict[str, Any]:
    """The probe trained on clean features, applied to corrupted test images: accuracy per corruption
    and severity, and the mean ECE under corruption."""
    n_c = min(cfg.n_corrupt, len(test_x))
    clean, y = test_x[:n_c], y_test[:n_c]
    per_corruption: dict[str, list[float]] = {}
    eces = []
    for name in CORRUPTIONS:
        accs = []
        for severity in range(1, 6):
            p = probe.predict_proba(embed(corrupt(clean, name, severity, cfg.eval_seed), False)[0].numpy())
            accs.append(float((p.argmax(1) == y).mean()))
            eces.append(expected_calibration_error(p, y))
        per_corruption[name] = accs
        bar.update()
    return {
        "corruption": per_corruption,
        "corruption_acc_mean": float(np.mean([a for accs in per_corruption.values() for a in accs])),
        "ece_corrupted": float(np.mean(eces)),
    }


def corruption_curve(result: dict[str, Any]) -> list[float]:
    """The probe's accuracy at severity 0 (clean) to 5, each severity the mean over the corruptions."""
    return [result["linear_probe_acc"], *np.mean(np.array(list(result["corruption"].values())), axis=0).tolist()]


def evaluate_representation(name: str, embed: Embed, data: PreparedData, cfg: EvalConfig = EvalConfig(),
                            likelihood: bool = False, progress: bool = True) -> dict[str, Any]:
    """Every axis for one representation; ``likelihood``: it has a trained decoder (bits/dim, likelihood OOD)."""
    t0 = time.perf_counter()
    announce(f"evaluating {name}")
    n_train = min(cfg.n_probe_train, len(data.train_images))
    n_test = len(data.test_images) if cfg.n_test is None else min(cfg.n_test, len(data.test_images))
    bar = tqdm(total=3 + len(CORRUPTIONS), desc=f"evaluate {name}", disable=not progress, leave=False)

    test_x = data.test_images[:n_test]
    y_train, y_test = data.train_labels[:n_train].numpy(), data.test_labels[:n_test].numpy()
    f_train = embed(data.train_images[:n_train], False)[0].numpy()
    f_test, test_bits = embed(test_x, likelihood)
    f_test, test_bits = f_test.numpy(), test_bits.numpy() if test_bits is not None else None
    bar.update()

    result: dict[str, Any] = {"name": name, "feature_dim": int(f_train.shape[1])}
    probe, metrics = discrimination(f_train, y_train, f_test, y_test, cfg)
    result.update(metrics)
    result.update(few_label(f_train, y_train, f_test, y_test, cfg.knn_k, cfg.eval_seed))
    if test_bits is not None:
        result["test_bits_per_dim"] = float(test_bits.mean())
    bar.update()
    result.update(out_of_distribution(embed, data, f_train, f_test, test_bits, cfg))
    bar.update()
    result.update(corruption_robustness(embed, probe, test_x, y_test, cfg, bar))
    bar.close()
    result["eval_time_s"] = time.perf_counter() - t0
    return result


def evaluate_model(model: HybridTransformer, data: PreparedData, name: str, cfg: EvalConfig = EvalConfig(),
                   likelihood: bool = True, progress: bool = True) -> dict[str, Any]:
    """All axes for a transformer; ``likelihood=False`` skips bits/dim and the likelihood score, for a
    decoder that was never trained (:func:`~hybridlib.config.trains_decoder`)."""
    model.eval()
    embed = model_embedding(model, data, cfg.eval_batch_size)
    return evaluate_representation(name, embed, data, cfg, likelihood, progress)


def evaluate_baselines(config: Config, data: PreparedData, device: str | torch.device | None = None,
                       progress: bool = True) -> dict[str, dict[str, Any]]:
    """``raw_pixels`` and ``random_init``: an untrained encoder of the same shape, initialised as the
    trained models were (seeded with ``config.train.seed``), so that it varies across seeds as they do."""
    device = resolve_device(device)
    torch.manual_seed(config.train.seed)
    random_model = HybridTransformer(config.model).to(device)
    cfg = config.eval
    return {
        "raw_pixels": evaluate_representation("raw_pixels", pixel_embedding(data), data, cfg, False, progress),
        "random_init": evaluate_model(random_model, data, "random_init", cfg, likelihood=False, progress=progress),
    }


def evaluate_checkpoint(path: Path | str, device: str | torch.device | None = None, progress: bool = True,
                        cfg: EvalConfig | None = None, data: PreparedData | None = None) -> dict[str, Any]:
    """Evaluate one checkpoint on every axis; the dict also records its profile, objective and step."""
    device = resolve_device(device)
    model, config, state = load_model(path, device)
    data = data if data is not None else prepare_data(config.data)
    cfg = cfg or config.eval
    result = evaluate_model(model, data, config.train.objective, cfg, trains_decoder(config.train.objective), progress)
    result.update({"profile": config.profile, "objective": config.train.objective, "seed": config.train.seed,
                   "dataset": config.data.dataset, "step": int(state["step"]), "checkpoint": str(path)})
    return result
