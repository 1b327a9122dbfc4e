"""One causal transformer: the first blocks are the encoder, the rest the decoder.

    tokens (B, T) --[start token + embeddings]--> (B, T+1, d)
        --> encoder blocks --> h (B, T+1, d) --> LayerNorm, mean over positions (or the last) --> representation (B, d)
                                                                              --> projection head --> z (B, p)
        --> decoder blocks --> LayerNorm --> states s (B, T+1, d) --> head --> p(next token | s)

With ``contrastive_block`` (a control of docs/controls.md) the representation reads h through a block of its own,
which the decoder never sees: the contrastive branch does not share the top of the encoder.

The head (heads.py) is one softmax over all token values, or the token's pixels one by one.

The sequence starts with a learned start token, so the decoder predicts every image token
(an exact autoregressive likelihood) and the encoder's last position has seen the whole image.
Attention is causal everywhere, as in iGPT, so generation needs nothing extra.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .config import ModelConfig
from .errors import InputError
from .heads import make_head


def check_tokens(tokens: Tensor, vocab_size: int, max_len: int | None = None, name: str = "tokens",
                 values: bool = True) -> None:
    """InputError unless ``tokens`` is a (B, T) integer tensor with T <= max_len and values in [0, vocab_size).

    ``values=False`` skips the range check, the one part that reads the data (a host sync on a GPU).
    """
    if not isinstance(tokens, Tensor):
        raise InputError(f"{name} must be a torch tensor of token ids, got {type(tokens).__name__}")
    if tokens.dtype not in (torch.int64, torch.int32):
        raise InputError(f"{name} must hold integer token ids (torch.long), got dtype {tokens.dtype}")
    if tokens.ndim != 2:
        raise InputError(f"{name} must have shape (batch, length), got {tuple(tokens.shape)}")
    if max_len is not None and tokens.shape[1] > max_len:
        raise InputError(f"{name} has {tokens.shape[1]} tokens per sequence; the model takes at most {max_len}")
    if values and tokens.numel() and bool(((tokens < 0) | (tokens >= vocab_size)).any()):
        raise InputError(f"{name} must be in [0, {vocab_size}), got values from {int(tokens.min())} to "
                         f"{int(tokens.max())}")


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout
        # QK-norm: queries and keys of unit RMS per head (times a learned gain), so attention logits cannot grow
        # with the weights' scale and a larger learning rate stays stable
        head_size = cfg.d_model // cfg.n_head
        self.q_norm = nn.RMSNorm(head_size) if cfg.qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(head_size) if cfg.qk_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, d // self.n_head).permute(2, 0, 3, 1, 4)  # 3 x (B, nh, T, hs)
        q, k = self.q_norm(q), self.k_norm(k)
        dropout = self.dropout if self.training else 0.0
        if q.device.type == "cpu" and q.dtype == torch.bfloat16:
            y = _matmul_attention(q, k, v, dropout)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


def _matmul_attention(q: Tensor, k: Tensor, v: Tensor, dropout: float) -> Tensor:
    """Causal attention as two batched matmuls around a softmax: (B, nh, T, hs) x3 -> (B, nh, T, hs).

    Used for bf16 on the CPU, where the fused SDPA kernel (forward + backward) is about 5x slower
    than this at our short sequences (T = 50: 59 ms vs 11 ms per call, measured with torch 2.14);
    in fp32 and on CUDA the fused kernel wins and is used.
    """
    t = q.shape[-2]
    future = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
    scores = (q @ k.transpose(-2, -1)).mul(1.0 / math.sqrt(q.shape[-1])).masked_fill(future, float("-inf"))
    return F.dropout(scores.softmax(dim=-1), dropout) @ v


class Block(nn.Module):
    """Pre-LayerNorm transformer block."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(), nn.Linear(4 * cfg.d_model, cfg.d_model),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class HybridTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.start_token = cfg.vocab_size  # one extra embedding row
        self.tok_emb = nn.Embedding(cfg.vocab_size + 1, cfg.d_model)
        self.pos_emb = nn.Parameter(torch.zeros(1, cfg.seq_len + 1, cfg.d_model))
        self.encoder = nn.ModuleList(Block(cfg) for _ in range(cfg.n_encoder_layers))
        self.con_block = Block(cfg) if cfg.contrastive_block else None
        self.ln_rep = nn.LayerNorm(cfg.d_model)
        self.proj_head = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.d_model), nn.ReLU(), nn.Linear(cfg.d_model, cfg.proj_dim)
        )
        self.decoder = nn.ModuleList(Block(cfg) for _ in range(cfg.n_decoder_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = make_head(cfg)
        self.apply(self._init_weights)
        nn.init.normal_(self.pos_emb, std=0.02)
        # GPT-2: scale residual projections by the generative path's depth (or start them at 0); a contrastive block
        # sits beside that path, not on it, and is scaled as its blocks are
        for name, p in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                if cfg.zero_init_proj:
                    nn.init.zeros_(p)
                else:
                    nn.init.normal_(p, std=0.02 / math.sqrt(2 * (cfg.n_encoder_layers + cfg.n_decoder_layers)))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def forward_encoder(self, tokens: Tensor) -> Tensor:
        """(B, T) image tokens -> (B, T+1, d) encoder output; position 0 is the start token.

        Checks the tokens' type and shape; their values are checked by ``forward``, ``encode`` and
        ``generate`` (the training step calls this with the tokenizer's tokens and no host sync).
        """
        check_tokens(tokens, self.cfg.vocab_size, self.cfg.seq_len, values=False)
        b, t = tokens.shape
        start = torch.full((b, 1), self.start_token, dtype=tokens.dtype, device=tokens.device)
        x = self.tok_emb(torch.cat([start, tokens], dim=1)) + self.pos_emb[:, : t + 1]
        for block in self.encoder:
            x = block(x)
        return x

    def representation(self, h: Tensor) -> Tensor:
        """(B, T+1, d) encoder output -> (B, d): layer-normed, mean-pooled over positions (``pool="mean"``)
        or the last position, the one that has attended to the whole image (``pool="last"``); through the
        contrastive block first where the model has one."""
        if self.con_block is not None:
            h = self.con_block(h)
        h = self.ln_rep(h)
        return h.mean(dim=1) if self.cfg.pool == "mean" else h[:, -1]

    def decoder_hidden(self, h: Tensor) -> Tensor:
        """(B, T+1, d) encoder output -> (B, T+1, d) final hidden states; position i predicts token i."""
        for block in self.decoder:
            h = block(h)
        return self.ln_f(h)

    def next_token_nll(self, h: Tensor, tokens: Tensor) -> Tensor:
        """(B, T+1, d) encoder output of ``tokens`` (B, T) -> (B, T) nats of each token given the ones before it."""
        return self.head.nll(self.decoder_hidden(h)[:, :-1], tokens)  # the last position has no next token

    def next_token_loss(self, h: Tensor, tokens: Tensor) -> Tensor:
        """The mean of :meth:`next_token_nll`: the generative training loss in nats per token."""
        return self.head.loss(self.decoder_hidden(h)[:, :-1], tokens)

    def forward(self, tokens: Tensor, decode: bool = True) -> tuple[Tensor | None, Tensor, Tensor]:
        """(B, T) tokens -> (nats of each token (B, T) or None, representation (B, d), projection z (B, p)).

        ``decode=False`` skips the decoder (the contrastive-only objective does not use it).
        """
        check_tokens(tokens, self.cfg.vocab_size, self.cfg.seq_len)
        h = self.forward_encoder(tokens)
        rep = self.representation(h)
        z = self.proj_head(rep)
        nll = self.next_token_nll(h, tokens) if decode else None
        return nll, rep, z

    @torch.no_grad()
    def represent(self, tokens: Tensor) -> Tensor:
        """(B, T) tokens -> (B, d) representation, for probes and retrieval (the tokenizer's ``encode``
        turns images into tokens; this turns tokens into features)."""
        check_tokens(tokens, self.cfg.vocab_size, self.cfg.seq_len)
        return self.representation(self.forward_encoder(tokens))

    @torch.no_grad()
    def hidden_states(self, tokens: Tensor) -> list[Tensor]:
        """(B, T) tokens -> the (B, T+1, d) output of every block: the encoder's blocks, then the decoder's (no
        LayerNorm applied), for a probe of each layer. The last encoder state is :meth:`forward_encoder`'s output."""
        check_tokens(tokens, self.cfg.vocab_size, self.cfg.seq_len)
        start = torch.full((tokens.shape[0], 1), self.start_token, dtype=tokens.dtype, device=tokens.device)
        x = self.tok_emb(torch.cat([start, tokens], dim=1)) + self.pos_emb[:, : tokens.shape[1] + 1]
        states = []
        for block in [*self.encoder, *self.decoder]:
            x = block(x)
            states.append(x)
        return states

    @torch.no_grad()
    def generate(
        self,
        n: int,
        temperature: float = 1.0,
        prompt: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Sample n images' tokens (n, T). With ``prompt`` (n, P), its P tokens are kept and the rest sampled.

        ``temperature`` 0 samples greedily.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InputError(f"n must be a positive integer, got {n!r}")
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or \
                not 0 <= temperature < math.inf:
            raise InputError(f"temperature must be a finite number >= 0, got {temperature!r}")
        if prompt is not None:
            check_tokens(prompt, self.cfg.vocab_size, self.cfg.seq_len, name="prompt")
            if prompt.shape[0] != n:
                raise InputError(f"prompt has {prompt.shape[0]} sequences for n={n} samples")
        device = self.pos_emb.device
        tokens = prompt.to(device) if prompt is not None else torch.zeros(n, 0, dtype=torch.long, device=device)
        for _ in range(self.cfg.seq_len - tokens.shape[1]):
            # the decoder's output at the last position predicts the next token
            last = self.decoder_hidden(self.forward_encoder(tokens))[:, -1]
            tokens = torch.cat([tokens, self.head.sample(last, temperature, generator).unsqueeze(1)], dim=1)
        return tokens

    @torch.no_grad()
    def complete(self, tokens: Tensor, n_given: int, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> Tensor:
        """Keep the first ``n_given`` tokens of each sequence (the top rows of an image) and sample the rest."""
        check_tokens(tokens, self.cfg.vocab_size, self.cfg.seq_len)
        if not isinstance(n_given, int) or isinstance(n_given, bool) or not 0 <= n_given <= tokens.shape[1]:
            raise InputError(f"n_given must be an integer from 0 to {tokens.shape[1]}, got {n_given!r}")
        return self.generate(tokens.shape[0], temperature, prompt=tokens[:, :n_given], generator=generator)
