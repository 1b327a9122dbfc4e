import numpy as np
import pytest
import torch

from hybridlib.config import DataConfig
from hybridlib.tokenizer import GrayTokenizer, PaletteTokenizer, fit_palette, make_tokenizer


@pytest.mark.parametrize("levels, patch", [(8, 1), (8, 2), (4, 2), (2, 4)])
def test_gray_tokens_round_trip_exactly(levels, patch):
    tok = GrayTokenizer(levels, patch)
    tokens = torch.randint(0, tok.vocab_size, (5, (16 // patch) ** 2))
    images = tok.decode(tokens)
    assert images.shape == (5, 1, 16, 16)
    assert torch.equal(tok.encode(images), tokens)
    # and quantized images survive encode -> decode unchanged
    assert torch.equal(tok.decode(tok.encode(images)), images)


def test_patch_token_layout_is_raster_order():
    tok = GrayTokenizer(levels=2, patch_size=2)
    img = torch.zeros(1, 1, 4, 4)
    img[0, 0, 0, 1] = 1.0  # top-right pixel of the first patch -> place value 2**1
    img[0, 0, 2, 2] = 1.0  # top-left pixel of the last patch -> place value 2**0
    assert tok.encode(img).tolist() == [[2, 0, 0, 1]]


def test_quantization_levels():
    tok = GrayTokenizer(levels=4)
    x = torch.tensor([0.0, 0.24, 0.26, 0.74, 0.76, 1.0]).view(1, 1, 1, 6)
    assert tok.quantize(x).flatten().tolist() == [0, 0, 1, 2, 3, 3]


def test_palette_round_trip_and_nearest_colour():
    palette = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    tok = PaletteTokenizer(palette)
    tokens = torch.randint(0, 3, (4, 9))
    assert torch.equal(tok.encode(tok.decode(tokens)), tokens)
    img = torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1)
    assert tok.encode(img).item() == 1


def test_fitted_palette_is_cached(tmp_path):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(20, 3, 8, 8, generator=g)
    palette = fit_palette(images, k=16, n_pixels=1000)
    assert palette.shape == (16, 3) and 0 <= palette.min() and palette.max() <= 1
    cfg = DataConfig(dataset="cifar10", image_size=8, palette_size=16)
    first = make_tokenizer(cfg, images, cache_dir=tmp_path)
    assert (tmp_path / "palette_cifar10_8px_16.npy").exists()
    second = make_tokenizer(cfg, None, cache_dir=tmp_path)  # no images needed once cached
    assert torch.equal(first.palette, second.palette)
    np.save(tmp_path / "palette_cifar10_8px_16.npy", np.zeros((3, 3)))
    from hybridlib.errors import DataError
    with pytest.raises(DataError, match="delete it"):
        make_tokenizer(cfg, None, cache_dir=tmp_path)
