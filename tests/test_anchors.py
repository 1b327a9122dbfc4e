"""The bits/dim anchors on cases small enough to compute by hand."""
import bz2
import math

import numpy as np
import pytest
import torch

from hybridlib.anchors import NEIGHBOURS, compressed_bits_per_dim, context_bits_per_dim, contexts, levels_of
from hybridlib.report import anchors_markdown
from hybridlib.tokenizer import GrayTokenizer


def test_the_count_model_by_hand():
    """Two levels, one neighbour (left). Training image [[0, 1, 1]]: contexts 'outside' -> 0, 0 -> 1, 1 -> 1.
    Add-one counts: outside: (1+1, 1) -> p(0) = 2/3; after 0: (1, 1+1) -> p(1) = 2/3; after 1: (1, 1+1) -> p(1) = 2/3.
    Test image [[0, 0]]: p(0 | outside) = 2/3, p(0 | 0) = 1/3."""
    train, test = np.array([[[0, 1, 1]]]), np.array([[[0, 0]]])
    expected = -(math.log2(2 / 3) + math.log2(1 / 3)) / 2
    assert context_bits_per_dim(train, test, 2, ((0, -1),)) == pytest.approx(expected)


def test_contexts_use_only_earlier_pixels_and_mark_the_border():
    x = np.array([[[0, 1], [1, 0]]])
    c = contexts(x, 2, ((0, -1), (-1, 0)))  # (left, up), base 3, 2 = outside
    assert c.tolist() == [[[2 * 3 + 2, 0 * 3 + 2], [2 * 3 + 0, 1 * 3 + 1]]]
    for offsets in NEIGHBOURS.values():
        assert all((dr, dc) < (0, 0) or (dr == 0 and dc < 0) for dr, dc in offsets)  # raster order: before


def test_an_unseen_context_is_uniform_and_a_constant_image_is_cheap():
    """Training [[0, 0]]: outside -> 0, 0 -> 0. Test [[1, 1]]: p(1 | outside) = 1/3, and context 1 was never seen:
    p(1 | 1) = 1/2 (add-one on nothing is uniform)."""
    expected = -(math.log2(1 / 3) + math.log2(1 / 2)) / 2
    assert context_bits_per_dim(np.array([[[0, 0]]]), np.array([[[1, 1]]]), 2, ((0, -1),)) == pytest.approx(expected)
    constant = np.zeros((20, 6, 6), dtype=np.int64)
    assert context_bits_per_dim(constant, constant, 4, NEIGHBOURS["context6"]) < 0.1


def test_compressed_size_and_quantization():
    test = np.zeros((10, 8, 8), dtype=np.int64)
    assert compressed_bits_per_dim(test, lambda b: bz2.compress(b, 9)) == 8 * len(bz2.compress(bytes(640), 9)) / 640
    images = torch.tensor([[[[0.0, 0.49], [0.5, 1.0]]]])
    assert levels_of(images, 2).tolist() == [[[0, 0], [1, 1]]]


def test_the_levels_are_the_tokenizers():
    images = torch.rand(3, 1, 6, 6)
    assert np.array_equal(levels_of(images, 8), GrayTokenizer(8).quantize(images)[:, 0].numpy())


def test_the_anchors_table_puts_the_trained_decoders_beside_the_best_anchor():
    out = {"profile": "cpu", "dataset": "fashion-mnist", "image_size": 14, "levels": 8, "test_images": 10,
           "bits_per_dim": {"uniform": 3.0, "xz": 1.4, "bz2": 1.6, "context4": 1.1, "context6": 1.0},
           "models": {"generative": {"bits_per_dim": 0.8, "steps": 1000, "seed": 0},
                      "hybrid": {"bits_per_dim": 1.05, "steps": 1000, "seed": 0}}}
    table = anchors_markdown(out)
    assert "| **generative** | 0.800 | the trained decoder (1000 steps, seed 0): 20% below the best anchor |" in table
    assert "| **hybrid** | 1.050 | the trained decoder (1000 steps, seed 0): 5% above the best anchor |" in table
    assert "**" not in anchors_markdown({**out, "models": {}})  # no run of these settings: the anchors alone
