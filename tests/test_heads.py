"""The pixel-by-pixel head keeps the likelihood exact: a proper distribution over every token value."""
import math

import pytest
import torch

from hybridlib.checkpoint import load_model
from hybridlib.config import ModelConfig, get_config, parameter_count
from hybridlib.flops import head_macs_per_token
from hybridlib.heads import NLL_ROWS, JointHead, PixelHead
from hybridlib.model import HybridTransformer
from hybridlib.tokenizer import GrayTokenizer
from hybridlib.train import train

TINY = ModelConfig(vocab_size=16, seq_len=4, d_model=8, n_head=2, head="pixels", pixel_levels=4, token_pixels=2)


def _head():
    torch.manual_seed(0)
    head = PixelHead(TINY)
    with torch.no_grad():  # away from the near-uniform initialisation, so that the checks have something to check
        for p in head.parameters():
            p.add_(torch.randn_like(p))
    return head


def test_the_probabilities_of_all_token_values_sum_to_one():
    head = _head()
    s = torch.randn(5, 1, 8).expand(5, 16, 8)
    every_value = torch.arange(16).expand(5, 16)
    p = torch.exp(-head.nll(s, every_value))  # (5 states, 16 values)
    assert torch.allclose(p.sum(1), torch.ones(5), atol=1e-6)
    assert p.min() > 0


@torch.no_grad()
def test_a_token_is_the_chain_rule_over_its_pixels_by_hand():
    """p(token) = p(x_0 | s) p(x_1 | s, x_0), each pixel's softmax computed here from the head's own pieces."""
    head = _head()
    s = torch.randn(8)
    for token in range(16):
        x0, x1 = token % 4, token // 4  # the tokenizer's order: token = x0 + 4 * x1
        hidden0 = torch.nn.functional.gelu(head.state(s) + head.place[0])
        hidden1 = torch.nn.functional.gelu(head.state(s) + head.seen.weight[x0] + head.place[1])
        p0 = torch.softmax(hidden0 @ head.out[0] + head.out_bias[0], -1)[x0]
        p1 = torch.softmax(hidden1 @ head.out[1] + head.out_bias[1], -1)[x1]
        nll = head.nll(s.view(1, 1, 8), torch.tensor([[token]]))
        assert nll.item() == pytest.approx(-math.log(p0 * p1), rel=1e-5)


def test_a_pixel_sees_only_the_pixels_before_it():
    head = _head()
    s = torch.randn(3, 8)
    digits = torch.tensor([[0, 1], [2, 3], [3, 0]])
    logits = head.pixel_logits(s, digits)
    changed = digits.clone()
    changed[:, 1] = (changed[:, 1] + 1) % 4
    assert torch.equal(head.pixel_logits(s, changed)[:, 0], logits[:, 0])  # pixel 0 never sees pixel 1
    changed = digits.clone()
    changed[:, 0] = (changed[:, 0] + 1) % 4
    assert not torch.allclose(head.pixel_logits(s, changed)[:, 1], logits[:, 1])


def test_sampling_follows_the_distribution():
    head = _head()
    s = torch.randn(1, 8)
    expected = torch.exp(-head.nll(s.view(1, 1, 8).expand(1, 16, 8), torch.arange(16).view(1, 16)))[0]
    g = torch.Generator().manual_seed(0)
    draws = head.sample(s.expand(20_000, 8), 1.0, g)
    freq = torch.bincount(draws, minlength=16).float() / len(draws)
    assert torch.allclose(freq, expected, atol=0.015)


@torch.no_grad()
def test_the_joint_heads_nll_in_chunks_is_the_one_pass_cross_entropy():
    """Rows spanning a full chunk and a partial one: the same number for every token as one (B*T, V) pass."""
    torch.manual_seed(0)
    head = JointHead(ModelConfig(vocab_size=64, d_model=8))
    b, t = 3, NLL_ROWS // 2 + 7  # 3 * t rows: one full chunk, then a partial one
    s, tokens = torch.randn(b, t, 8), torch.randint(0, 64, (b, t))
    one_pass = torch.nn.functional.cross_entropy(head(s).reshape(-1, 64), tokens.reshape(-1), reduction="none")
    assert torch.allclose(head.nll(s, tokens), one_pass.view(b, t), rtol=0, atol=1e-6)
    p = torch.exp(-head.nll(s[:1, :1].expand(1, 64, 8), torch.arange(64).view(1, 64)))
    assert p.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_an_untrained_model_costs_about_log2_levels_bits_per_dim():
    config = get_config("cpu", "generative", head="pixels")
    torch.manual_seed(0)
    model = HybridTransformer(config.model)
    tokens = torch.randint(0, config.model.vocab_size, (4, config.model.seq_len))
    bits = model(tokens)[0].mean() / (math.log(2) * config.data.dims_per_token)
    assert bits.item() == pytest.approx(math.log2(config.data.levels), rel=0.02)


def test_the_cpu_profiles_pixel_head_is_a_fraction_of_the_joint_one():
    joint, pixels = (get_config("cpu", "generative", head=h) for h in ("joint", "pixels"))
    assert head_macs_per_token(joint) == 128 * 4096 and head_macs_per_token(pixels) == 128 * 128 + 4 * 128 * 8
    wide = get_config("cpu", "generative", head="pixels", head_width=4)
    assert head_macs_per_token(wide) == 128 * 512 + 4 * 512 * 8
    for config in (joint, pixels, wide):
        assert parameter_count(config.model) == sum(p.numel() for p in HybridTransformer(config.model).parameters())
    assert isinstance(HybridTransformer(joint.model).head, JointHead)


def test_a_pixel_head_run_trains_and_reloads(tmp_path, smoke_data):
    config = get_config("smoke", "hybrid", head="pixels", steps=10, log_every=5)
    run = train(config, tmp_path / "run", progress=False, data=smoke_data, device="cpu")
    assert run.history[-1]["bits_per_dim"] < run.history[0]["bits_per_dim"]
    model, loaded, _ = load_model(tmp_path / "run")
    assert loaded.model.head == "pixels" and isinstance(model.head, PixelHead)


def test_the_heads_pixels_are_the_tokenizers_pixels():
    tokenizer = GrayTokenizer(8, 2)
    images = torch.rand(2, 1, 4, 4)
    q = tokenizer.quantize(images)[:, 0]  # (2, 4, 4) grey levels
    digits = PixelHead(ModelConfig(vocab_size=8**4, head="pixels", pixel_levels=8, token_pixels=4)).digits(
        tokenizer.encode(images))  # (2, 4 tokens, 4 pixels)
    first_patch = torch.stack([q[:, 0, 0], q[:, 0, 1], q[:, 1, 0], q[:, 1, 1]], dim=1)  # raster order
    assert torch.equal(digits[:, 0], first_patch)
