"""Worked solutions of the notebooks' exercises, in one place. Try an exercise first, then read its solution here.

Each function computes one exercise's answer (from the library's own functions and, where the answer depends on
the profile, from the notebook's configuration); nothing is stored as a number. ``hybridlib.exercises`` checks the
notebooks' answers against these functions.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .config import Config, get_config
from .losses import Objective, bits_per_dim, nt_xent
from .model import HybridTransformer

# --- Notebook 1: data and tokens -------------------------------------------------------------------------------


def tokens_vocab() -> int:
    """4 grey levels, 3x3-pixel patches: each of the 9 pixels takes one of 4 levels, independently of the others,
    so there are 4 * 4 * ... * 4 (9 times) distinct patches."""
    return 4 ** (3 * 3)


def one_by_one_patches(config: Config) -> dict[str, float]:
    """1x1 patches: one token per pixel (as iGPT).

    - sequence length: image_size ** 2, patch_size ** 2 times as many tokens as now (4 times for 2x2 patches);
    - vocabulary: levels ** 1 = levels (an RGB palette token is one pixel already: the palette size);
    - attention cost: every position is compared with every position, T x T scores per layer and head, so the cost
      grows with the square of the sequence length: (T_1x1 / T_now) ** 2 (16 for 2x2 patches; the start token
      is left out). The MLPs grow only linearly, by T_1x1 / T_now.
    """
    one = replace(config.data, patch_size=1)
    return {"sequence length": one.seq_len, "vocabulary": one.vocab_size,
            "attention cost ratio": (one.seq_len / config.data.seq_len) ** 2}


# --- Notebook 2: contrastive ------------------------------------------------------------------------------------


def nt_xent_orthogonal() -> float:
    """N = 2, tau = 0.5, partners identical, the two images orthogonal. Each of the 4 rows has its partner at cosine
    1 and the two views of the other image at cosine 0:

        loss = -log(e^(1/0.5) / (e^(1/0.5) + 2 e^0)) = log(1 + 2 e^-2)

    (the simplex bound of notebook 2 is lower: there the two images point in opposite directions, cosine -1)."""
    e = torch.eye(2)
    return float(nt_xent(e, e.clone(), temperature=0.5))


def nt_xent_without_self_mask(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """Notebook 2's NT-Xent with the self-mask line deleted: each row's own similarity, cos(z_i, z_i) / tau = 1 / tau,
    the largest possible, stays among the candidates.

    At initialisation the loss rises only a little: one more term in a sum of 2N - 1, the largest (cosine 1) but
    not by much, since an untrained model's projections all point roughly the same way. After training it
    matters: each row's own term e^(1/tau) is a constant (a vector's cosine with itself is always 1) that the
    partner can at best tie, so the partner's probability is at most 1/2 and the loss cannot go below ln 2.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature  # no masked_fill: the diagonal stays
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, partner)


def augmentations_off() -> dict[str, dict[str, float | bool]]:
    """The training setting that switches each of SimCLR's augmentations off, and nothing else
    (:func:`hybridlib.augment.random_views` takes them from ``TrainConfig``): a crop that keeps at least all of the image
    (``crop_scale`` 1: no crop, and no change of aspect ratio either), no flips, brightness and contrast factors drawn
    from [1, 1]. SimCLR (Chen et al., 2020, its figure 5) found that no single augmentation is enough and that the
    random crop composed with colour distortion matters most: without the crop, two views of an image share their
    pixels' positions, and matching them needs little more than comparing brightness histograms.
    """
    return {"crop": {"crop_scale": 1.0}, "flip": {"hflip": False}, "jitter": {"jitter": 0.0}}


# --- Notebook 3: generative -------------------------------------------------------------------------------------


def bits_per_dim_one_sixteenth() -> float:
    """Probability 1/16 = 2**-4 for every true 2x2-patch token: 4 bits per token, spread over 4 pixel values."""
    return float(bits_per_dim(-math.log(1 / 16), dims_per_token=4))


def leaky_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Notebook 3's ``attention`` with its mask off by one: ``triu(2)`` hides only the positions j > i + 1, so each
    position also reads the next one. q, k, v: (B, heads, T, head size)."""
    t = q.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, heads, T, T)
    ahead = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(2)  # j > i + 1 (triu(1): j > i, the right mask)
    return scores.masked_fill(ahead, float("-inf")).softmax(dim=-1) @ v


def mask_off_by_one(config: Config) -> int:
    """A mask that lets each position see one token ahead (``triu(2)`` instead of ``triu(1)``) leaks one position per
    attention layer, and the leaks add up: after L blocks the prediction at position p has seen inputs up to
    p + L. So the first prediction that moves comes L positions earlier than with the right mask, L = the number
    of transformer blocks (encoder and decoder together). Already in the first block the position that predicts
    token t reads token t itself (one position ahead), so a model trained with such a mask learns to copy it, and
    its bits/dim fall towards 0: a likelihood too good to be true is the usual sign of this bug.
    """
    return config.model.n_encoder_layers + config.model.n_decoder_layers


# --- Notebook 4: hybrid -----------------------------------------------------------------------------------------


LAMBDA_BATCH = 512  # notebook 4's first exercise: not the profile's batch, so the answer is worked out, not read off


def hybrid_lambda() -> float:
    """At initialisation L_gen ~ ln(vocabulary) (uniform over the cpu profile's 4096 tokens) and L_con ~ ln(2N - 1)
    (the partner among the 2N - 1 other views of a batch of N): the lambda that weighs both terms equally is their
    ratio. With N = 512, ln 4096 / ln 1023; at the profile's N = 128 it would be ln 4096 / ln 255, near the ratio
    the notebook measures (an untrained model is close to, not exactly at, uniform)."""
    config = get_config("cpu", "hybrid")
    return math.log(config.model.vocab_size) / math.log(2 * LAMBDA_BATCH - 1)


def pool_last_terms(config: Config, clean: Tensor, v1: Tensor, v2: Tensor, seed: int) -> dict[str, float]:
    """The hybrid's two terms with the last position as the representation, on notebook 4's inputs: the same
    weights (seeded as the notebook seeds its model; pooling has no weights of its own)."""
    last = config.with_model(pool="last")
    with torch.random.fork_rng():  # checking an answer leaves the notebook's random state as it was
        torch.manual_seed(seed)
        objective = Objective(HybridTransformer(last.model), last.train, last.data.dims_per_token)
    with torch.no_grad():
        terms = objective(clean, v1, v2)
    return {key: float(terms[key]) for key in ("gen_nll", "con_loss")}


def pool_last_changes() -> str:
    """``pool="last"`` changes only the representation, ``h[:, -1]`` instead of the mean over positions. The
    representation feeds only the projection head, so only the contrastive term moves (``con_loss``); the
    decoder reads the encoder's whole sequence h, not the pooled vector, so ``gen_nll`` is bit for bit the same.
    The last position is the only one that has attended to the whole image (attention is causal): the mean mixes in
    positions that have seen only the top rows."""
    return "con_loss"


# --- Notebook 5: evaluation -------------------------------------------------------------------------------------


def class_mean_distance(train_features: np.ndarray, train_labels: np.ndarray, query_features: np.ndarray
                        ) -> np.ndarray:
    """The OOD score "distance to the nearest class mean": average the (raw) training features of each class, then
    score each query by one minus its largest cosine similarity with a class mean.

    Ten vectors instead of the whole training set: cheaper than the kNN distance, and coarser. It keeps only the
    direction of each class's centre, so an image that points roughly the way one class does scores as typical even
    if it lies away from every training image of that class, which the kNN distance would notice; on the other
    hand it is not fooled by a few odd training images near an OOD one. Which effect wins depends on the OOD set:
    the notebook prints both scores' AUROC on each.
    """
    f = torch.as_tensor(np.asarray(train_features), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(train_labels)).long()
    means = torch.stack([f[y == c].mean(0) for c in y.unique()])  # (K, D): one mean per class present
    q = torch.as_tensor(np.asarray(query_features), dtype=torch.float64)
    return (1 - (F.normalize(q, dim=1) @ F.normalize(means, dim=1).T).amax(dim=1)).numpy()


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[float, float]:
    """Two probes tested on the same images, as (n,) booleans (the image is classified right): the difference of
    their accuracies and its paired standard error. Per image, d = [a right] - [b right] is 1, 0 or -1; the
    difference is the mean of d and its standard error std(d) / sqrt(n).

    Where the two probes get mostly the same images right, d is mostly 0, and the paired error is far below either
    accuracy's own, sqrt(p (1 - p) / n): the test set's luck is shared, so it cancels in the difference. What this
    error leaves out is the noise of training: another seed gives other models, and their difference moves by the
    seed-to-seed spread, which no number of test images shrinks. A claim about objectives rests on that spread.
    """
    d = np.asarray(correct_a, dtype=np.float64) - np.asarray(correct_b, dtype=np.float64)
    return float(d.mean()), float(d.std() / np.sqrt(len(d)))


def ece_equal_mass(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE with bins of equal size (each holds about n / n_bins images) instead of equal width: sort the images by
    confidence, split them into ``n_bins`` groups with ``np.array_split``, and weigh each group's
    |accuracy - confidence| by its size, as before.

    Where a probe is confident on most images, a few equal-width bins near 1 hold almost all of them and the
    others a handful each, whose gaps are mostly noise; equal-mass bins spend their resolution where the images are.
    The two ECEs differ, and neither is the "true" calibration error: an ECE is comparable only to another computed
    with the same bins.
    """
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    confidence, correct = probs.max(1), probs.argmax(1) == labels
    order = np.argsort(confidence, kind="stable")
    return float(sum(len(b) / len(labels) * abs(correct[b].mean() - confidence[b].mean())
                     for b in np.array_split(order, n_bins) if len(b)))


# --- Notebook 6: the trade-off ---------------------------------------------------------------------------------


def contrastive_share(gen_loss: Tensor, con_loss: Tensor, lam: float, params: list[Tensor]) -> float:
    """The contrastive term's share of the hybrid's gradient on ``params``: with g_gen = ∇L_gen and
    g_con = ∇(λ L_con), each a norm over all of ``params`` together, the share is |g_con| / (|g_gen| + |g_con|).

    λ sets the loss's weights, not the gradients': the two gradients have their own sizes, which training changes.
    Were they equal, the share would be λ / (1 + λ); how far the trained hybrids are from that says how much of
    "λ" is really the gradients' scale. ``retain_graph`` keeps the graph alive for the second gradient.
    """
    def norm(grads: tuple[Tensor, ...]) -> Tensor:
        return torch.sqrt(sum((g.double() ** 2).sum() for g in grads))

    g_gen = norm(torch.autograd.grad(gen_loss, params, retain_graph=True))
    g_con = lam * norm(torch.autograd.grad(con_loss, params))
    return float(g_con / (g_gen + g_con))


def pareto_front(rows: list[dict], keys: tuple[str, ...]) -> list[float]:
    """The λ of every run that no other run beats on all of ``keys`` at once (higher is better for each), sorted.

    Run a dominates run b when a is at least as good on every key and strictly better on one; the front is the
    runs nobody dominates. "The best of both" in the paper's sense means a hybrid on the front *and* at least as
    good as each single objective on the other's strength, which is a stronger demand: a hybrid can sit on the front
    by being a compromise, better than one endpoint on one axis and worse on the other.
    """
    def dominates(a: dict, b: dict) -> bool:
        return all(a[k] >= b[k] for k in keys) and any(a[k] > b[k] for k in keys)

    return sorted(r["lam"] for r in rows if not any(dominates(other, r) for other in rows))
