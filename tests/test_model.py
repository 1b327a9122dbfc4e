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
    assert torch.allclose(m.encode(tokens), rep)


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
