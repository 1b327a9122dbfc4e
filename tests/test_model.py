import pytest
import torch

from hybridlib.config import ModelConfig
from hybridlib.model import HybridTransformer

# 16 token values: a 2x2 patch of 2 grey levels, so that both heads apply
CFG = ModelConfig(vocab_size=16, seq_len=9, d_model=32, n_head=4, n_encoder_layers=2, n_decoder_layers=1, proj_dim=8,
                  pixel_levels=2, token_pixels=4)


def _model(head="joint"):
    torch.manual_seed(0)
    return HybridTransformer(ModelConfig(**{**CFG.__dict__, "head": head})).eval()


@pytest.mark.parametrize("head", ["joint", "pixels"])
def test_shapes(head):
    m = _model(head)
    tokens = torch.randint(0, 16, (3, 9))
    nll, rep, z = m(tokens)
    assert nll.shape == (3, 9) and rep.shape == (3, 32) and z.shape == (3, 8)
    assert m(tokens, decode=False)[0] is None
    assert m.forward_encoder(tokens).shape == (3, 10, 32)
    assert torch.allclose(m.represent(tokens), rep)


@pytest.mark.parametrize("head", ["joint", "pixels"])
def test_the_likelihood_of_token_i_depends_only_on_tokens_up_to_i(head):
    m = _model(head)
    tokens = torch.randint(0, 16, (1, 9))
    nll = m(tokens)[0]
    for i in range(9):
        changed = tokens.clone()
        changed[0, i] = (changed[0, i] + 1) % 16
        other = m(changed)[0]
        assert torch.allclose(nll[0, :i], other[0, :i], atol=1e-5)  # tokens 0..i-1 do not see token i
        assert not torch.allclose(nll[0, i:], other[0, i:], atol=1e-5)


@pytest.mark.parametrize("head", ["joint", "pixels"])
def test_generate_and_complete(head):
    m = _model(head)
    g = torch.Generator().manual_seed(0)
    samples = m.generate(4, generator=g)
    assert samples.shape == (4, 9) and samples.dtype == torch.long and samples.max() < 16
    prompt = torch.randint(0, 16, (2, 9))
    done = m.complete(prompt, n_given=3, generator=torch.Generator().manual_seed(1))
    assert done.shape == (2, 9) and torch.equal(done[:, :3], prompt[:, :3])
    again = m.complete(prompt, n_given=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(done, again)


def test_low_temperature_sampling_is_greedy():
    m = _model()
    greedy = m.generate(2, temperature=1e-8, generator=torch.Generator().manual_seed(0))
    tokens = greedy[:, :0]
    for _ in range(9):  # argmax decoding step by step
        h = m.decoder_hidden(m.forward_encoder(tokens))[:, -1]
        tokens = torch.cat([tokens, m.head(h).argmax(-1, keepdim=True)], 1)
    assert torch.equal(greedy, tokens)


def test_matmul_attention_equals_the_fused_kernel():
    """The bf16-on-CPU path computes the same causal attention as SDPA (checked in fp32)."""
    import torch.nn.functional as F

    from hybridlib.model import _matmul_attention

    q, k, v = torch.randn(3, 2, 4, 7, 8).unbind(0)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(_matmul_attention(q, k, v, 0.0), expected, atol=1e-6)


def test_bf16_autocast_on_the_cpu_stays_close_to_fp32():
    m = _model()
    tokens = torch.randint(0, 16, (4, 9))
    nll32, rep32, _ = m(tokens)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        nll16, rep16, _ = m(tokens)
        logits16 = m.head(m.decoder_hidden(m.forward_encoder(tokens)))
    assert logits16.dtype == torch.bfloat16  # the matmul path really ran in bf16
    assert torch.allclose(nll16, nll32, atol=0.05) and torch.allclose(rep16.float(), rep32, atol=0.1)
