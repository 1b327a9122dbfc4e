"""Losses: NT-Xent (SimCLR), the autoregressive likelihood in bits per dimension, and the
three objectives that share one architecture and differ only in their loss:

    contrastive:  L = L_con
    generative:   L = L_gen
    hybrid:       L = L_gen + lam * L_con

L_gen is the next-token cross-entropy in nats per token; bits/dim divides it by
ln 2 and by the number of pixel-channel values a token stands for.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.distributed.nn.functional import all_gather

from .config import TrainConfig
from .model import HybridTransformer


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """Normalized-temperature cross-entropy of SimCLR.

    z1, z2: (N, p) projections of two views of the same N images. Each of the 2N projections
    must pick its partner out of the other 2N - 1 by cosine similarity / temperature.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2N, p)
    sim = z @ z.T / temperature  # (2N, 2N)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, partner)


def bits_per_dim(nll_nats_per_token: Tensor | float, dims_per_token: int) -> Tensor | float:
    """Nats per token -> bits per pixel-channel value."""
    return nll_nats_per_token / (math.log(2) * dims_per_token)


def lam_at(step: int, cfg: TrainConfig) -> float:
    """The hybrid's contrastive weight at a step: ``lam``, ramped linearly from 0 over the first
    ``lam_warmup_steps`` (the generative loss shapes the features first)."""
    if step >= cfg.lam_warmup_steps:
        return cfg.lam
    return cfg.lam * step / cfg.lam_warmup_steps


def _gather(z: Tensor) -> Tensor:
    """All ranks' rows of z, differentiably (SimCLR draws negatives from the global batch)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z
    return torch.cat(all_gather(z))


class Objective(nn.Module):
    """The training loss of one objective, as a module so DistributedDataParallel can wrap it.

    forward(clean, view1, view2) -> dict with "loss" (to minimise) and the terms to log:
    "gen_nll" (nats/token), "bits_per_dim", "con_loss". Tensors are (B, T) tokens; the views
    are None for the generative objective.
    """

    def __init__(self, model: HybridTransformer, cfg: TrainConfig, dims_per_token: int) -> None:
        super().__init__()
        self.model = model
        self.objective = cfg.objective
        self.temperature = cfg.temperature
        # the hybrid's weight of this step, a buffer: set_step changes it in place, so a compiled step
        # reads it as an input and is not recompiled as it ramps
        self.register_buffer("lam", torch.tensor(lam_at(0, cfg)), persistent=False)
        self.cfg = cfg
        self.generative_input = cfg.generative_input
        self.stop_contrastive_gradient = cfg.stop_contrastive_gradient
        self.dims_per_token = dims_per_token

    @property
    def uses_views(self) -> bool:
        return self.objective != "generative"

    def set_step(self, step: int) -> None:
        """The contrastive weight of training step ``step`` (:func:`lam_at`)."""
        self.lam.fill_(lam_at(step, self.cfg))

    def forward(self, clean: Tensor, view1: Tensor | None = None, view2: Tensor | None = None) -> dict[str, Tensor]:
        m = self.model
        out: dict[str, Tensor] = {}
        if self.objective == "generative":
            gen_tokens = clean
            h = m.forward_encoder(clean)
        else:
            n = view1.shape[0]
            gen_from_clean = self.objective == "hybrid" and self.generative_input == "clean"
            both = torch.cat([view1, view2, clean] if gen_from_clean else [view1, view2])  # one pass
            h_all = m.forward_encoder(both)
            # the stop-gradient control: NT-Xent trains the contrastive block and the projection head, not what they read
            h_con = h_all[: 2 * n].detach() if self.stop_contrastive_gradient else h_all[: 2 * n]
            z = m.proj_head(m.representation(h_con))
            out["con_loss"] = nt_xent(_gather(z[:n]), _gather(z[n:]), self.temperature)
            h = h_all[2 * n :] if gen_from_clean else h_all
            gen_tokens = clean if gen_from_clean else both
        if self.objective != "contrastive":
            out["gen_nll"] = m.next_token_loss(h, gen_tokens)
            out["bits_per_dim"] = bits_per_dim(out["gen_nll"].detach(), self.dims_per_token)
        if self.objective == "generative":
            out["loss"] = out["gen_nll"]
        elif self.objective == "contrastive":
            out["loss"] = out["con_loss"]
        else:
            out["loss"] = out["gen_nll"] + self.lam * out["con_loss"]
        return out
