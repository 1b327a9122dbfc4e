"""Anchors for bits/dim: what simple, non-neural predictors of the same quantized test set cost.

A bits/dim figure means little alone. These put it on a scale, on exactly the pixels the models see
(the profile's resolution and grey levels):

- ``uniform``: every level equally likely, log2(levels);
- ``xz`` and ``bz2``: general-purpose compressors over the whole test set, one byte per pixel;
- ``context4`` and ``context6``: count tables of the next pixel (raster order) given its causal neighbours,
  left, up-left, up, up-right (and two-left, two-up for six), fitted on the training set with add-one
  smoothing; a neighbour outside the image is a value of its own. Exact likelihoods, like the models'
  (in pixel raster order, where the models go patch by patch: both are valid orderings).
"""
from __future__ import annotations

import bz2
import lzma
import math

import numpy as np
from torch import Tensor

from .data import PreparedData

# (row offset, column offset) of each neighbour, all before the pixel in raster order
NEIGHBOURS = {
    "context4": ((0, -1), (-1, -1), (-1, 0), (-1, 1)),
    "context6": ((0, -1), (-1, -1), (-1, 0), (-1, 1), (0, -2), (-2, 0)),
}


def levels_of(images: Tensor, levels: int) -> np.ndarray:
    """(N, 1, H, W) floats in [0, 1] -> (N, H, W) integer grey levels, as the tokenizer quantizes them."""
    return np.clip((images[:, 0].numpy() * levels).astype(np.int64), 0, levels - 1)


def contexts(x: np.ndarray, levels: int, offsets: tuple[tuple[int, int], ...]) -> np.ndarray:
    """(N, H, W) levels -> (N, H, W) context index: the neighbours' levels (``levels`` outside the image) in base levels+1."""
    n, h, w = x.shape
    pad = max(max(abs(dr), abs(dc)) for dr, dc in offsets)
    padded = np.full((n, h + 2 * pad, w + 2 * pad), levels, dtype=np.int64)
    padded[:, pad : pad + h, pad : pad + w] = x
    index = np.zeros_like(x)
    for dr, dc in offsets:
        index = index * (levels + 1) + padded[:, pad + dr : pad + dr + h, pad + dc : pad + dc + w]
    return index


def context_bits_per_dim(train: np.ndarray, test: np.ndarray, levels: int, offsets: tuple[tuple[int, int], ...]
                         ) -> float:
    """Mean -log2 p(pixel | its causal neighbours) over the test pixels; counts from ``train``, add-one smoothed."""
    n_contexts = (levels + 1) ** len(offsets)
    counts = np.ones((n_contexts, levels))  # add-one smoothing
    np.add.at(counts, (contexts(train, levels, offsets).ravel(), train.ravel()), 1)
    p = counts / counts.sum(1, keepdims=True)
    return float(-np.log2(p[contexts(test, levels, offsets).ravel(), test.ravel()]).mean())


def compressed_bits_per_dim(test: np.ndarray, compress) -> float:
    """8 x compressed bytes / pixels: the whole test set as one byte per pixel through a compressor."""
    raw = test.astype(np.uint8).tobytes()
    return 8 * len(compress(raw)) / test.size


def bits_per_dim_anchors(data: PreparedData) -> dict[str, float]:
    """Every anchor on ``data``'s test set (grey-level data sets)."""
    levels = data.config.levels
    train, test = levels_of(data.train_images, levels), levels_of(data.test_images, levels)
    out = {"uniform": math.log2(levels),
           "xz": compressed_bits_per_dim(test, lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME)),
           "bz2": compressed_bits_per_dim(test, lambda b: bz2.compress(b, 9))}
    for name, offsets in NEIGHBOURS.items():
        out[name] = context_bits_per_dim(train, test, levels, offsets)
    return out
