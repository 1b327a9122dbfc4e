"""Batched image augmentations for the contrastive views.

SimCLR's views come from a random resized crop, a horizontal flip and colour jitter. These are
done for the whole batch at once on the tensor: one ``affine_grid``/``grid_sample`` call with a
different affine matrix per image, then per-image brightness and contrast by broadcasting.
(torchvision's v2 transforms draw one set of parameters per call, so applied to a batch every
image would get the same crop; calling them per image is a Python loop in the hot path.)

All randomness comes from an explicit ``torch.Generator``, so a view is a pure function of the
generator's seed: training derives that seed from the step, which makes resuming exact.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def random_views(
    images: Tensor,
    generator: torch.Generator,
    crop_scale: float = 0.6,
    hflip: bool = True,
    jitter: float = 0.4,
) -> Tensor:
    """One augmented view of each image. (B, C, H, W) floats in [0, 1] -> same shape.

    crop_scale: smallest fraction of the image area a crop keeps (1 disables cropping).
    The crop's aspect ratio is drawn from [3/4, 4/3] (log-uniform), as in SimCLR.
    hflip: flip half of the images left-right.
    jitter: brightness and contrast factors are drawn from [1 - jitter, 1 + jitter].
    """
    b = images.shape[0]
    u = torch.rand(b, 7, generator=generator)  # all random numbers of the batch, drawn on the CPU
    # Random resized crop: area fraction s, aspect ratio r (log-uniform in [3/4, 4/3]).
    s = crop_scale + (1 - crop_scale) * u[:, 0]
    r = torch.exp((u[:, 1] * 2 - 1) * math.log(4 / 3)) if crop_scale < 1 else torch.ones(b)
    sx = torch.sqrt(s * r).clamp(max=1.0)  # crop width / image width
    sy = torch.sqrt(s / r).clamp(max=1.0)
    tx = (u[:, 2] * 2 - 1) * (1 - sx)  # crop centre, in [-1, 1] coordinates
    ty = (u[:, 3] * 2 - 1) * (1 - sy)
    flip = torch.where(u[:, 4] < 0.5, -1.0, 1.0) if hflip else torch.ones(b)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = sx * flip
    theta[:, 0, 2] = tx
    theta[:, 1, 1] = sy
    theta[:, 1, 2] = ty
    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if jitter > 0:
        g = u[:, 5:7].to(images.device, images.dtype)
        brightness = (1 - jitter + 2 * jitter * g[:, 0]).view(b, 1, 1, 1)
        contrast = (1 - jitter + 2 * jitter * g[:, 1]).view(b, 1, 1, 1)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = ((out * brightness - mean * brightness) * contrast + mean * brightness).clamp_(0, 1)
    return out
