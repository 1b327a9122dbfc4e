"""Single-panel figures for a lecture, at slide size: the hybrid's architecture, the causal mask, and NT-Xent's
similarity matrix of the trained contrastive model on a few test images. `make slides` writes them to
results/<profile>/slides/; notebook 1 draws the architecture, notebooks 2 and 3 teach the other two in code."""
from __future__ import annotations

from pathlib import Path

import torch

from . import plots
from .config import Config
from .data import PreparedData
from .paths import results_dir
from .step import make_views, step_generator
from .train import ensure_trained

SLIDE_IMAGES = 6  # images in the similarity matrix: 12 views, a readable 12 x 12 grid


@torch.no_grad()
def view_projections(config: Config, data: PreparedData, n_images: int = SLIDE_IMAGES, progress: bool = True
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The trained contrastive model's (N, p) projections of two augmented views of the first ``n_images`` test
    images (trained first where neither a run of its own nor the shipped weights exist)."""
    run = ensure_trained(config.with_train(objective="contrastive"), data, progress)
    device = next(run.model.parameters()).device
    v1, v2 = make_views(data.test_images[:n_images], data.tokenizer, config.train,
                        step_generator(config.train.seed, 0, 0))
    return tuple(run.model(v.to(device), decode=False)[2].float().cpu() for v in (v1, v2))


def write_slides(config: Config, data: PreparedData, progress: bool = True) -> list[Path]:
    """Draw each slide and save it as results/<profile>/slides/<name>.png; returns the paths."""
    z1, z2 = view_projections(config, data, progress=progress)
    figures = {"architecture": plots.architecture(), "causal_mask": plots.causal_mask(),
               "nt_xent_similarity": plots.similarity_matrix(z1, z2, config.train.temperature)}
    out = results_dir() / config.profile / "slides"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        paths.append(out / f"{name}.png")
        plots.save(fig, paths[-1])
    return paths
