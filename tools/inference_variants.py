"""Inference speed of the evaluation's two passes under other numerics, against fp32: a candidate for making
evaluation faster, measured before any change to the protocol.

    python tools/inference_variants.py [PROFILE]

On the finished (or shipped) hybrid of PROFILE (default cpu), seed 0: images/s of the encoder alone (the
features) and of encoder + decoder (bits/dim), in batches of the profile's ``eval_batch_size``, for fp32, bf16
weights and int8 dynamic quantisation of the Linear layers, through the evaluation's own embedding
(`evaluate.model_embedding`); and how far each moves the numbers: the largest
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
from hybridlib.evaluate import model_embedding
from hybridlib.probes import fit_linear_probe
from hybridlib.train import ensure_trained

profile = sys.argv[1] if len(sys.argv) > 1 else "cpu"
config = get_config(profile, "hybrid")
data = prepare_data(config.data)
model = ensure_trained(config, data, progress=False, train_missing=False).model.eval()
test_x, train_x = data.test_images[:4000], data.train_images[:8000]
y_train, y_test = data.train_labels[:8000].numpy(), data.test_labels[:4000].numpy()


def images_per_s(embed, bits: bool) -> float:
    embed(test_x[:512], bits)  # warm-up
    t0 = time.perf_counter()
    embed(test_x, bits)
    return len(test_x) / (time.perf_counter() - t0)


def probe_accuracy(embed) -> float:
    probe = fit_linear_probe(embed(train_x, False)[0].numpy(), y_train)
    return float((probe.predict(embed(test_x, False)[0].numpy()) == y_test).mean())


variants = {
    "fp32": model,
    "bf16 weights": copy.deepcopy(model).to(torch.bfloat16),
    "int8 dynamic (Linear)": torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear},
                                                                    dtype=torch.qint8),
}
embeds = {name: model_embedding(m, data, config.eval.eval_batch_size) for name, m in variants.items()}
measured = {name: (*embed(test_x, True), probe_accuracy(embed)) for name, embed in embeds.items()}
ref_features, ref_bits, ref_acc = measured["fp32"]
print(f"{profile}, {torch.get_num_threads()} threads, batches of {config.eval.eval_batch_size}")
for name, (features, bits, acc) in measured.items():
    drift = ((features - ref_features).norm(dim=1) / ref_features.norm(dim=1)).max().item()
    embed = embeds[name]
    print(f"{name:22s} encoder {images_per_s(embed, False):5.0f} img/s, encoder + decoder "
          f"{images_per_s(embed, True):5.0f} img/s; feature drift {drift:.4f}, bits/dim {bits.mean():.4f} "
          f"(fp32 {ref_bits.mean():.4f}), probe {acc:.4f} (fp32 {ref_acc:.4f})", flush=True)
