import math

import pytest
import torch
import torch.nn.functional as F

from hybridlib.config import ModelConfig, TrainConfig
from hybridlib.losses import Objective, bits_per_dim, nt_xent
from hybridlib.model import HybridTransformer


def nt_xent_loop(z1, z2, tau):
    """SimCLR's loss written out term by term, as in the paper's Algorithm 1."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        num = torch.exp(z[i] @ z[j] / tau)
        den = sum(torch.exp(z[i] @ z[k] / tau) for k in range(n2) if k != i)
        total += -torch.log(num / den)
    return total / n2


def test_nt_xent_analytic_value():
    tau = 0.5
    e = torch.eye(2)
    # each projection's partner is identical (cos 1); the two other candidates are orthogonal (cos 0)
    assert nt_xent(e, e.clone(), tau).item() == pytest.approx(math.log(1 + 2 * math.exp(-1 / tau)), rel=1e-6)


@pytest.mark.parametrize("n, tau", [(3, 0.1), (8, 0.5), (16, 1.0)])
def test_nt_xent_matches_a_direct_loop(n, tau):
    g = torch.Generator().manual_seed(n)
    z1, z2 = torch.randn(n, 5, generator=g), torch.randn(n, 5, generator=g)
    assert nt_xent(z1, z2, tau).item() == pytest.approx(nt_xent_loop(z1, z2, tau).item(), rel=1e-5)


def test_nt_xent_ignores_scale_and_starts_near_log_2n_minus_1():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(256, 512, generator=g), torch.randn(256, 512, generator=g)
    assert nt_xent(3 * z1, z2, 0.2).item() == pytest.approx(nt_xent(z1, z2, 0.2).item(), rel=1e-5)
    # random high-dimensional projections are nearly orthogonal: every candidate equally likely
    assert nt_xent(z1, z2, 1.0).item() == pytest.approx(math.log(2 * 256 - 1), rel=0.01)


@pytest.mark.parametrize("levels, patch, channels", [(8, 1, 1), (8, 2, 1), (4, 2, 1), (256, 1, 1), (512, 1, 3)])
@pytest.mark.parametrize("head", ["joint", "pixels"])
def test_a_uniform_predictor_costs_log2_levels_bits_per_dim(levels, patch, channels, head):
    """Output layers at zero predict every value equally likely: log2(levels) bits per pixel-channel value,
    with either head (an RGB palette token of 512 colours: 9 bits for 3 channel values)."""
    vocab, dims = levels ** (patch * patch), patch * patch * channels
    torch.manual_seed(0)
    model = HybridTransformer(ModelConfig(vocab_size=vocab, seq_len=10, d_model=16, n_head=2, proj_dim=8, head=head,
                                          pixel_levels=levels, token_pixels=patch * patch))
    for name, p in model.head.named_parameters():
        if name in ("weight", "out", "out_bias"):  # the logits' last layer, of either head
            torch.nn.init.zeros_(p)
    tokens = torch.randint(0, vocab, (4, 10))
    nll = model(tokens)[0]
    expected = math.log2(levels) / channels if channels == 3 else math.log2(levels)
    assert bits_per_dim(nll.mean(), dims).item() == pytest.approx(expected, rel=1e-6)
    assert torch.allclose(bits_per_dim(nll.mean(1), dims), torch.full((4,), expected))


GROUPS = {"encoder": "model.encoder.", "decoder": "model.decoder.", "head": "model.head.",
          "proj_head": "model.proj_head.", "embedding": "model.tok_emb."}
TRAINED = {
    "contrastive": {"encoder", "proj_head", "embedding"},
    "generative": {"encoder", "decoder", "head", "embedding"},
    "hybrid": {"encoder", "decoder", "head", "proj_head", "embedding"},
}


@pytest.mark.parametrize("objective", list(TRAINED))
@pytest.mark.parametrize("generative_input", ["views", "clean"])
def test_gradients_reach_only_what_each_objective_trains(objective, generative_input):
    torch.manual_seed(0)
    model = HybridTransformer(ModelConfig(vocab_size=16, seq_len=4, d_model=16, n_head=2, proj_dim=8))
    obj = Objective(model, TrainConfig(objective=objective, generative_input=generative_input), dims_per_token=1)
    tokens = [torch.randint(0, 16, (6, 4)) for _ in range(3)]
    out = obj(*tokens)
    out["loss"].backward()
    got = {group for group, prefix in GROUPS.items()
           if any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in obj.named_parameters() if n.startswith(prefix))}
    assert got == TRAINED[objective]
    assert ("con_loss" in out) == (objective != "generative") and ("bits_per_dim" in out) == (objective != "contrastive")


def test_hybrid_is_the_weighted_sum():
    torch.manual_seed(0)
    model = HybridTransformer(ModelConfig(vocab_size=16, seq_len=4, d_model=16, n_head=2, proj_dim=8))
    tokens = [torch.randint(0, 16, (6, 4)) for _ in range(3)]
    out = Objective(model, TrainConfig(objective="hybrid", lam=0.3), 1)(*tokens)
    assert out["loss"].item() == pytest.approx(out["gen_nll"].item() + 0.3 * out["con_loss"].item(), rel=1e-6)
