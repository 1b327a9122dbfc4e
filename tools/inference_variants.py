"""Inference speed of the evaluation's two passes under other numerics, against fp32: a candidate for making
evaluation faster, measured before any change to the protocol.

    python tools/inference_variants.py [PROFILE]

On the finished (or shipped) hybrid of PROFILE (default cpu), seed 0: images/s of the encoder alone (the
features) and of encoder + decoder (bits/dim), in batches of the profile's ``eval_batch_size``, for fp32, bf16
weights and int8 dynamic quantisation of the Linear layers; and how far each moves the numbers: the largest
relative change of a feature vector, test bits/dim and the accuracy of a linear probe (8 000 training and 4 000
test images).
"""
from __future__ import annotations

import copy
import sys
import time

import torch

from hybridlib.config import get_config
from hybridlib.data import prepare_data
from hybridlib.losses import bits_per_dim
from hybridlib.probes import fit_linear_probe
from hybridlib.train import ensure_trained

profile = sys.argv[1] if len(sys.argv) > 1 else "cpu"
config = get_config(profile, "hybrid")
data = prepare_data(config.data)
model = ensure_trained(config, data, progress=False, train_missing=False).model.eval()
batch = config.eval.eval_batch_size
tok_test, tok_train = data.tokenizer.encode(data.test_images[:4000]), data.tokenizer.encode(data.train_images[:8000])
y_train, y_test = data.train_labels[:8000].numpy(), data.test_labels[:4000].numpy()


def passes(m: torch.nn.Module, tokens: torch.Tensor, bits: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(features (N, D), bits/dim per image (N,) or None), as the evaluation computes them."""
    features, b = [], []
    with torch.inference_mode():
        for i in range(0, len(tokens), batch):
            t = tokens[i : i + batch]
            h = m.forward_encoder(t)
            features.append(m.representation(h).float())
            if bits:
                b.append(bits_per_dim(m.next_token_nll(h, t).float().mean(1), data.config.dims_per_token))
    return torch.cat(features), torch.cat(b) if bits else None


def images_per_s(m: torch.nn.Module, bits: bool) -> float:
    passes(m, tok_test[:512], bits)  # warm-up
    t0 = time.perf_counter()
    passes(m, tok_test, bits)
    return len(tok_test) / (time.perf_counter() - t0)


def probe_accuracy(m: torch.nn.Module) -> float:
    probe = fit_linear_probe(passes(m, tok_train, False)[0].numpy(), y_train)
    return float((probe.predict(passes(m, tok_test, False)[0].numpy()) == y_test).mean())


ref_features, ref_bits = passes(model, tok_test, True)
ref_acc = probe_accuracy(model)
variants = {
    "fp32": model,
    "bf16 weights": copy.deepcopy(model).to(torch.bfloat16),
    "int8 dynamic (Linear)": torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear},
                                                                    dtype=torch.qint8),
}
print(f"{profile}, {torch.get_num_threads()} threads, batches of {batch}")
for name, m in variants.items():
    features, b = passes(m, tok_test, True)
    drift = ((features.float() - ref_features).norm(dim=1) / ref_features.norm(dim=1)).max().item()
    print(f"{name:22s} encoder {images_per_s(m, False):5.0f} img/s, encoder + decoder {images_per_s(m, True):5.0f} "
          f"img/s; feature drift {drift:.4f}, bits/dim {b.float().mean():.4f} (fp32 {ref_bits.mean():.4f}), "
          f"probe {probe_accuracy(m):.4f} (fp32 {ref_acc:.4f})", flush=True)
