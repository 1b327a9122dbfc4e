import torch

from hybridlib.config import ModelConfig
from hybridlib.model import HybridTransformer

CFG = ModelConfig(vocab_size=16, seq_len=9, d_model=32, n_head=4, n_encoder_layers=2, n_decoder_layers=1, proj_dim=8)


def _model():
    torch.manual_seed(0)
    return HybridTransformer(CFG).eval()


def test_shapes():
    m = _model()
    tokens = torch.randint(0, 16, (3, 9))
    logits, rep, z = m(tokens)
    assert logits.shape == (3, 9, 16) and rep.shape == (3, 32) and z.shape == (3, 8)
    assert m(tokens, decode=False)[0] is None
    assert m.forward_encoder(tokens).shape == (3, 10, 32)
    assert torch.allclose(m.represent(tokens), rep)


def test_prediction_of_token_i_sees_only_tokens_before_it():
    m = _model()
    tokens = torch.randint(0, 16, (1, 9))
    logits = m(tokens)[0]
    for i in range(9):
        changed = tokens.clone()
        changed[0, i] = (changed[0, i] + 1) % 16
        other = m(changed)[0]
        assert torch.allclose(logits[0, : i + 1], other[0, : i + 1], atol=1e-5)  # predictions of tokens 0..i
        if i < 8:
            assert not torch.allclose(logits[0, i + 1 :], other[0, i + 1 :], atol=1e-5)


def test_generate_and_complete():
    m = _model()
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
    logits32, rep32, _ = m(tokens)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits16, rep16, _ = m(tokens)
    assert logits16.dtype == torch.bfloat16  # the matmul path really ran in bf16
    assert torch.allclose(logits16.float(), logits32, atol=0.1) and torch.allclose(rep16.float(), rep32, atol=0.1)
