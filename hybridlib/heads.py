"""The decoder's output head: the probability of the next image token given the decoder's state.

``JointHead`` (iGPT): one softmax over all V token values.

``PixelHead``: a token is a patch of P pixels of L levels each (V = L**P); the head predicts the
patch's pixels in raster order, each an L-way softmax conditioned on the decoder's state and on the
pixels of the patch already seen:

    p(token | state) = p(x_1 | s) * p(x_2 | s, x_1) * ... * p(x_P | s, x_1..x_P-1)

the chain rule inside the token, so the likelihood stays exact (bits/dim mean the same thing) at
P*L outputs instead of L**P: for the cpu profile's 2x2 patches of 8 levels, 32 instead of 4096.
Each conditional is a one-hidden-layer MLP of ``head_width`` x d units: hidden = GELU(W s + the seen
pixels' embeddings + an embedding of the pixel's place), logits = its own linear map of the hidden state.

Both take the decoder's states s (B, T, d) and tokens (B, T), and give per-token negative
log-likelihoods in nats (B, T); ``sample`` draws one token per row of s (B, d).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .config import ModelConfig


NLL_ROWS = 512  # rows of logits per chunk in JointHead.nll: 512 x 4096 floats (8 MiB) stay in a CPU's cache


class JointHead(nn.Linear):
    """A linear map of the state to V logits (an nn.Linear, so its weight keeps the name ``head.weight``)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg.d_model, cfg.vocab_size, bias=False)
        self.vocab_size = cfg.vocab_size

    def loss(self, s: Tensor, tokens: Tensor) -> Tensor:
        """Mean negative log-likelihood in nats per token (the training loss)."""
        return F.cross_entropy(self(s).reshape(-1, self.vocab_size).float(), tokens.reshape(-1))

    def nll(self, s: Tensor, tokens: Tensor) -> Tensor:
        """(B, T, d) states, (B, T) tokens -> (B, T) nats of each token.

        The B*T rows go through in chunks of ``NLL_ROWS``: each chunk's (rows, V) logits are still in the cache
        when the softmax reads them, where one (B*T, V) block would go out to memory and back. Each row's number is
        the same either way (tested).
        """
        b, t = tokens.shape
        # rows (B*T, d) and (B*T,): a transposed (B, V, T) input to cross_entropy is several times slower on the CPU
        s, tokens = s.reshape(-1, s.shape[-1]), tokens.reshape(-1)
        return torch.cat([F.cross_entropy(self(s[i : i + NLL_ROWS]).float(), tokens[i : i + NLL_ROWS],
                                          reduction="none") for i in range(0, len(tokens), NLL_ROWS)]).view(b, t)

    def sample(self, s: Tensor, temperature: float, generator: torch.Generator | None) -> Tensor:
        """(B, d) states -> (B,) tokens; temperature 0 is greedy."""
        return _draw(self(s).float(), temperature, generator)


class PixelHead(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, w, self.levels, self.pixels = cfg.d_model, cfg.head_width * cfg.d_model, cfg.pixel_levels, cfg.token_pixels
        self.state = nn.Linear(d, w)
        self.seen = nn.Embedding(self.pixels * self.levels, w)  # pixel j at level v -> row j * L + v
        self.place = nn.Parameter(torch.zeros(self.pixels, w))  # which pixel is being predicted
        self.out = nn.Parameter(torch.randn(self.pixels, w, self.levels) * 0.02)  # one map per pixel
        self.out_bias = nn.Parameter(torch.zeros(self.pixels, self.levels))
        self.register_buffer("powers", self.levels ** torch.arange(self.pixels), persistent=False)
        self.register_buffer("rows", self.levels * torch.arange(self.pixels), persistent=False)  # pixel j's first row

    def digits(self, tokens: Tensor) -> Tensor:
        """(...) tokens -> (..., P) pixel levels, in the tokenizer's order (token = sum level_i * L**i)."""
        return (tokens.unsqueeze(-1) // self.powers) % self.levels

    def pixel_logits(self, s: Tensor, digits: Tensor) -> Tensor:
        """(..., d) states, (..., P) true pixel levels -> (..., P, L) logits of each pixel given the ones before it."""
        e = self.seen(digits + self.rows)  # (..., P, w)
        before = e.cumsum(-2) - e  # pixel k sees the embeddings of pixels 0..k-1
        hidden = F.gelu(self.state(s).unsqueeze(-2) + before + self.place)  # (..., P, w)
        return torch.einsum("...pw,pwl->...pl", hidden, self.out) + self.out_bias

    def nll(self, s: Tensor, tokens: Tensor) -> Tensor:
        """(B, T, d) states, (B, T) tokens -> (B, T) nats of each token: the sum over its pixels."""
        digits = self.digits(tokens)
        logp = F.log_softmax(self.pixel_logits(s, digits).float(), dim=-1)  # (B, T, P, L)
        return -logp.gather(-1, digits.unsqueeze(-1)).squeeze(-1).sum(-1)

    def loss(self, s: Tensor, tokens: Tensor) -> Tensor:
        return self.nll(s, tokens).mean()

    def sample(self, s: Tensor, temperature: float, generator: torch.Generator | None) -> Tensor:
        """(B, d) states -> (B,) tokens, pixel by pixel."""
        digits = torch.zeros(s.shape[0], self.pixels, dtype=torch.long, device=s.device)
        for k in range(self.pixels):  # pixel k's logits depend only on the pixels before it
            digits[:, k] = _draw(self.pixel_logits(s, digits)[:, k].float(), temperature, generator)
        return (digits * self.powers).sum(-1)


def _draw(logits: Tensor, temperature: float, generator: torch.Generator | None) -> Tensor:
    """(B, K) logits -> (B,) indices: sampled at ``temperature``, greedy at 0 (on the CPU generator's stream)."""
    probs = F.softmax(logits / max(temperature, 1e-6), dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(logits.device)


def make_head(cfg: ModelConfig) -> JointHead | PixelHead:
    return PixelHead(cfg) if cfg.head == "pixels" else JointHead(cfg)
