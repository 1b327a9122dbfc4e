"""MNIST-C / CIFAR-10-C style corruptions, generated on the fly and deterministically.

``corrupt(images, name, severity, seed)`` takes (B, C, H, W) floats in [0, 1] and returns the
same shape. Severities run from 1 to 5. Sizes (blur radii, displacements) are given in pixels
of a 16-pixel image and scaled to the image's side, so 14x14 Fashion-MNIST and 32x32 CIFAR-10 get comparable
damage. torchvision does the operations it has (Gaussian blur, contrast), Pillow the JPEG round trip; the others are
a few tensor lines each.
"""
from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torch import Tensor

from .errors import ConfigError

# parameter per severity 1..5
SEVERITIES: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.04, 0.08, 0.12, 0.18, 0.26),  # noise std
    "shot_noise": (250, 100, 50, 25, 12),  # photons at full intensity (fewer = noisier)
    "impulse_noise": (0.01, 0.03, 0.06, 0.10, 0.16),  # fraction of salt-and-pepper pixels
    "gaussian_blur": (0.5, 0.75, 1.0, 1.25, 1.5),  # sigma, pixels of a 16-pixel image
    "defocus_blur": (0.75, 1.0, 1.25, 1.5, 2.0),  # disk radius, pixels of a 16-pixel image
    "contrast": (0.6, 0.45, 0.3, 0.2, 0.1),  # contrast factor
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),  # added intensity
    "pixelate": (0.8, 0.6, 0.45, 0.35, 0.25),  # resolution kept
    "jpeg": (60, 40, 25, 15, 8),  # JPEG quality
    "elastic": (0.5, 0.75, 1.0, 1.25, 1.5),  # displacement, pixels of a 16-pixel image
}
CORRUPTIONS = tuple(SEVERITIES)


def _odd(x: float) -> int:
    return max(3, int(2 * round(x) + 1))


def _jpeg(images: Tensor, quality: int) -> Tensor:
    """Encode and decode each image as JPEG with Pillow (torchvision's own codec is deprecated)."""
    arrays = (images.cpu() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = []
    for a in arrays:
        buffer = io.BytesIO()
        Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(buffer, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(buffer)).reshape(a.shape))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().div(255).to(images.device)


def corrupt(images: Tensor, name: str, severity: int, seed: int = 0) -> Tensor:
    """Apply corruption ``name`` at ``severity`` (1-5); the randomness is fixed by ``seed``."""
    if name not in SEVERITIES:
        raise ConfigError(f"unknown corruption {name!r}; choose one of: {', '.join(CORRUPTIONS)}")
    if not 1 <= severity <= 5:
        raise ConfigError(f"severity must be 1 to 5, got {severity}")
    c = SEVERITIES[name][severity - 1]
    scale = images.shape[-1] / 16.0
    g = torch.Generator().manual_seed(seed * 1000 + CORRUPTIONS.index(name) * 10 + severity)
    x = images.float()

    def noise(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g).to(x.device)

    if name == "gaussian_noise":
        out = x + noise(*x.shape) * c
    elif name == "shot_noise":
        out = torch.poisson(x.cpu() * c, generator=g).to(x.device) / c
    elif name == "impulse_noise":
        u = torch.rand(x.shape, generator=g).to(x.device)
        out = torch.where(u < c / 2, 0.0, torch.where(u > 1 - c / 2, 1.0, x))
    elif name == "gaussian_blur":
        sigma = c * scale
        out = TF.gaussian_blur(x, kernel_size=_odd(2 * sigma), sigma=sigma)
    elif name == "defocus_blur":
        radius = c * scale
        r = int(radius + 1)
        yy, xx = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
        disk = (radius + 0.5 - torch.sqrt((yy**2 + xx**2).float())).clamp(0, 1)  # anti-aliased disk
        disk = (disk / disk.sum()).to(x)
        ch = x.shape[1]
        out = F.conv2d(F.pad(x, (r, r, r, r), mode="replicate"), disk.expand(ch, 1, -1, -1), groups=ch)
    elif name == "contrast":
        out = TF.adjust_contrast(x, c)
    elif name == "brightness":
        out = x + c
    elif name == "pixelate":
        side = x.shape[-1]
        small = F.interpolate(x, size=max(2, int(side * c)), mode="area")
        out = F.interpolate(small, size=side, mode="nearest")
    elif name == "jpeg":
        out = _jpeg(x, int(c))
    else:  # elastic: a smooth random displacement field per image
        b, _, h, w = x.shape
        field = TF.gaussian_blur(noise(b, 2, h, w), kernel_size=_odd(3 * scale), sigma=1.5 * scale)
        field = field / field.flatten(1).std(dim=1).clamp_min(1e-6).view(b, 1, 1, 1)
        field = field * (c * scale) * 2 / torch.tensor([w, h], device=x.device).view(1, 2, 1, 1)  # to [-1, 1] units
        identity = F.affine_grid(torch.eye(2, 3, device=x.device).expand(b, -1, -1), list(x.shape), align_corners=False)
        out = F.grid_sample(x, identity + field.permute(0, 2, 3, 1), padding_mode="border", align_corners=False)
    return out.clamp(0, 1)
