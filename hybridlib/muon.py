"""torch.optim.Muon with its Newton–Schulz iteration batched and in a chosen precision.

The update is torch.optim.Muon's, term for term (momentum, Nesterov, the quintic Newton–Schulz iteration with the
same coefficients and normalisation, decoupled weight decay, the learning-rate adjustment); its state and
state_dict are the same, so a checkpoint of either loads into the other. Two things differ, both for speed:

- the iteration runs in ``ns_dtype``. torch casts to bf16, which is right on a GPU, but on a CPU without native
  bf16 matrix units bf16 products are an order of magnitude slower than fp32 ones, and the optimizer step cost more
  than the forward and backward passes (``make bench`` measures the step both ways);
- matrices of one shape are orthogonalised together, one batched product per iteration instead of one per matrix.
"""
from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor
from torch.optim._muon import _adjust_lr


def newton_schulz(g: Tensor, coefficients: tuple[float, float, float], steps: int, eps: float,
                  dtype: torch.dtype) -> Tensor:
    """(k, m, n) -> (k, m, n) in ``dtype``: torch.optim.Muon's orthogonalisation of each of the k matrices of ``g``
    (normalised to Frobenius norm 1, then ``steps`` quintic iterations on the wide orientation, with the same fused
    products as torch's, batched)."""
    a, b, c = coefficients
    x = g.to(dtype)
    tall = g.size(-2) > g.size(-1)
    if tall:
        x = x.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)  # spectral norm at most 1
    for _ in range(steps):
        gram = x @ x.mT  # (k, m, m) with m <= n
        x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.mT if tall else x


class Muon(torch.optim.Muon):
    """torch.optim.Muon, batched by shape, its Newton–Schulz iteration in ``ns_dtype`` (see the module)."""

    def __init__(self, params, ns_dtype: torch.dtype = torch.bfloat16, **kwargs) -> None:
        super().__init__(params, **kwargs)
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum = float(group["lr"]), group["momentum"]
            by_shape: dict[torch.Size, list[tuple[Tensor, Tensor]]] = defaultdict(list)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad, memory_format=torch.preserve_format)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - momentum)
                by_shape[p.shape].append((p, p.grad.lerp(buf, momentum) if group["nesterov"] else buf))
            for shape, pairs in by_shape.items():
                params = [p for p, _ in pairs]
                updates = newton_schulz(torch.stack([u for _, u in pairs]), group["ns_coefficients"],
                                        group["ns_steps"], group["eps"], self.ns_dtype)
                torch._foreach_mul_(params, 1 - lr * group["weight_decay"])
                torch._foreach_add_(params, list(updates.to(params[0].dtype).unbind()),
                                    alpha=-_adjust_lr(lr, group["adjust_lr_fn"], shape))
        return loss
