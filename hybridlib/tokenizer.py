"""Images <-> token sequences.

Grayscale: each pixel is quantized to ``levels`` grey levels; a token is one
``patch_size x patch_size`` block of quantized pixels, read in raster order, so the
vocabulary is ``levels ** (patch_size ** 2)``. With ``patch_size=1`` a token is a pixel
(iGPT). Tokens are exact: ``encode(decode(t)) == t``.

RGB: each pixel is mapped to the nearest colour of a k-means palette fitted on training
pixels (iGPT's 9-bit palette has 512 colours). Tokens are one per pixel.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import MiniBatchKMeans
from torch import Tensor

from .config import DataConfig
from .errors import DataError, InputError
from .model import check_tokens


def check_images(images: Tensor, channels: int, patch_size: int, values: bool = True) -> None:
    """InputError unless ``images`` is a (B, channels, H, W) float tensor, H and W multiples of patch_size,
    with values in [0, 1] (uint8 images go through ``data.resize`` first).

    ``values=False`` skips the range check, the one part that reads the data (a host sync on a GPU).
    """
    if not isinstance(images, Tensor):
        raise InputError(f"images must be a torch tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise InputError(f"images must be floats in [0, 1], got dtype {images.dtype} (hybridlib.data.resize "
                         "turns uint8 images into floats)")
    if images.ndim != 4 or images.shape[1] != channels:
        raise InputError(f"images must have shape (batch, {channels}, height, width), got {tuple(images.shape)}")
    if images.shape[2] % patch_size or images.shape[3] % patch_size or not images.shape[2] or not images.shape[3]:
        raise InputError(f"images of {images.shape[2]}x{images.shape[3]} pixels do not split into "
                         f"{patch_size}x{patch_size} patches; resize them to the configuration's image_size")
    if values and images.numel() and not bool(((images >= 0) & (images <= 1)).all()):  # False for NaN too
        low, high = float(images.nan_to_num(nan=-math.inf).min()), float(images.nan_to_num(nan=math.inf).max())
        raise InputError(f"images must be floats in [0, 1] with no NaN, got values from {low} to {high}")


class GrayTokenizer:
    def __init__(self, levels: int, patch_size: int = 1) -> None:
        self.levels = levels
        self.patch_size = patch_size
        self.vocab_size = levels ** (patch_size**2)
        # place value of each pixel inside a patch: token = sum(level_i * levels**i)
        self._place = levels ** torch.arange(patch_size**2)

    def quantize(self, images: Tensor) -> Tensor:
        """(B, 1, H, W) floats in [0, 1] -> (B, 1, H, W) integer levels."""
        return (images * self.levels).long().clamp_(0, self.levels - 1)

    def encode(self, images: Tensor, check_values: bool = True) -> Tensor:
        """(B, 1, H, W) floats in [0, 1] -> (B, T) tokens, T = (H/p) * (W/p).

        ``check_values=False`` skips checking that the values are in [0, 1] (a host sync on a GPU).
        """
        check_images(images, 1, self.patch_size, check_values)
        b, _, h, w = images.shape
        p = self.patch_size
        q = self.quantize(images).view(b, h // p, p, w // p, p)
        q = q.permute(0, 1, 3, 2, 4).reshape(b, (h // p) * (w // p), p * p)  # (B, T, p*p)
        return (q * self._place.to(q.device)).sum(-1)

    def decode(self, tokens: Tensor) -> Tensor:
        """(B, T) tokens -> (B, 1, H, W) floats at the centre of each grey level."""
        _check_square(tokens, self.vocab_size)
        b, t = tokens.shape
        p = self.patch_size
        side = int(round(t**0.5))
        place = self._place.to(tokens.device)
        q = (tokens.unsqueeze(-1) // place) % self.levels  # (B, T, p*p)
        q = q.view(b, side, side, p, p).permute(0, 1, 3, 2, 4).reshape(b, 1, side * p, side * p)
        return (q.float() + 0.5) / self.levels


class PaletteTokenizer:
    def __init__(self, palette: Tensor) -> None:
        self.palette = palette.float()  # (K, 3) colours in [0, 1]
        self.vocab_size = palette.shape[0]
        self.patch_size = 1

    def encode(self, images: Tensor, chunk: int = 256, check_values: bool = True) -> Tensor:
        """(B, 3, H, W) floats in [0, 1] -> (B, H*W) index of the nearest palette colour.

        ``check_values=False`` skips checking that the values are in [0, 1] (a host sync on a GPU).
        """
        check_images(images, 3, 1, check_values)
        b = images.shape[0]
        pixels = images.permute(0, 2, 3, 1).reshape(b, -1, 3)
        palette = self.palette.to(images.device)
        out = [torch.cdist(pixels[i : i + chunk], palette.expand(min(chunk, b - i), -1, -1)).argmin(-1)
               for i in range(0, b, chunk)]
        return torch.cat(out)

    def decode(self, tokens: Tensor) -> Tensor:
        """(B, T) tokens -> (B, 3, H, W) palette colours."""
        _check_square(tokens, self.vocab_size)
        b, t = tokens.shape
        side = int(round(t**0.5))
        return self.palette.to(tokens.device)[tokens].view(b, side, side, 3).permute(0, 3, 1, 2)


def _check_square(tokens: Tensor, vocab_size: int) -> None:
    check_tokens(tokens, vocab_size)
    if round(tokens.shape[1] ** 0.5) ** 2 != tokens.shape[1]:
        raise InputError(f"tokens must hold a square image's tokens per row, got {tokens.shape[1]}")


Tokenizer = GrayTokenizer | PaletteTokenizer


def fit_palette(images: Tensor, k: int, seed: int = 0, n_pixels: int = 100_000) -> Tensor:
    """k-means colour palette (K, 3) from a random sample of the pixels of ``images`` (N, 3, H, W)."""
    pixels = images.permute(0, 2, 3, 1).reshape(-1, 3).float()
    g = torch.Generator().manual_seed(seed)
    sample = pixels[torch.randperm(len(pixels), generator=g)[:n_pixels]].numpy()
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096).fit(sample)
    centres = torch.from_numpy(km.cluster_centers_).float().clamp(0, 1)
    return centres[torch.argsort(centres.sum(1))]  # dark to light, for readable token ids


def make_tokenizer(data: DataConfig, train_images: Tensor | None = None, cache_dir: Path | None = None) -> Tokenizer:
    """The tokenizer of a data configuration; an RGB palette is fitted once and cached."""
    if data.channels == 1:
        return GrayTokenizer(data.levels, data.patch_size)
    # the palette is fitted at the profile's resolution, so the file name holds it
    name = f"palette_{data.dataset}_{data.image_size}px_{data.palette_size}.npy"
    path = cache_dir / name if cache_dir else None
    if path is not None and path.exists():
        try:
            palette = torch.from_numpy(np.load(path))
        except (ValueError, OSError) as e:
            raise DataError(f"cached palette {path} is unreadable ({e}); delete it and it will be refitted") from e
        if palette.shape != (data.palette_size, 3):
            raise DataError(f"cached palette {path} has shape {tuple(palette.shape)}; delete it to refit")
        return PaletteTokenizer(palette)
    if train_images is None:
        raise DataError("fitting an RGB palette needs the training images")
    palette = fit_palette(train_images, data.palette_size)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, palette.numpy())
        tmp.replace(path)
    return PaletteTokenizer(palette)
