"""Model FLOPs counted from the architecture, and the training time they imply on a device.

2 FLOPs per multiply-add of every matmul in the forward pass (QKV, attention scores, attention-weighted
values, output projection, MLP, heads), times 3 for forward plus backward; embeddings, norms and the
softmax are not counted (the usual convention). `make bench` divides by measured time for the MFU.
"""
from __future__ import annotations

from .config import Config

# The utilisation time estimates assume, per device type. cpu: what `make bench` measured on a 2-core machine
# (41-48 % of its fp32 matmul peak, results/bench.json; 0.25 made cpu estimates 1.8-2.8x the real time).
# cuda: an assumption until a GPU run measures it.
ESTIMATE_MFU = {"cpu": 0.45, "cuda": 0.25}


def model_flops_per_step(config: Config) -> float:
    """Training FLOPs of one step (forward + backward = 3x forward), counted from the architecture."""
    m, b = config.model, config.train.batch_size
    n = m.seq_len + 1  # positions, the start token included
    d = m.d_model
    per_block = n * (2 * 12 * d * d + 2 * 2 * n * d)  # QKV + out proj + MLP (12 d^2 MACs), scores + values
    encoder = m.n_encoder_layers * per_block
    decoder = m.n_decoder_layers * per_block + 2 * m.seq_len * head_macs_per_token(config)
    proj = 2 * (d * d + d * m.proj_dim) + (per_block if m.contrastive_block else 0)  # the representation's own block
    objective = config.train.objective
    if objective == "contrastive":
        forward = 2 * b * (encoder + proj)
    elif objective == "generative":
        forward = b * (encoder + decoder)
    elif config.train.generative_input == "clean":  # the encoder also reads the clean images, the decoder only them
        forward = b * (3 * encoder + decoder + 2 * proj)
    else:
        forward = 2 * b * (encoder + decoder + proj)
    return 3.0 * forward


def head_macs_per_token(config: Config) -> int:
    """Multiply-adds of the output head per predicted token: d x V for one softmax over the vocabulary;
    d x w (the state's map to the hidden width w) + P x w x L (each pixel's logits) for the pixel-by-pixel head."""
    m = config.model
    if m.head == "pixels":
        w = m.head_width * m.d_model
        return m.d_model * w + m.token_pixels * w * m.pixel_levels
    return m.d_model * m.vocab_size


def estimate_train_minutes(config: Config, peak_flops: float, mfu: float = ESTIMATE_MFU["cuda"],
                           steps: int | None = None) -> float:
    """Minutes of training for ``steps`` (default: all) steps of ``config`` on a device of ``peak_flops``
    FLOP/s running at ``mfu`` of it: model FLOPs per step x steps / achieved FLOP/s (docs/profiles.md)."""
    steps = config.train.steps if steps is None else steps
    return model_flops_per_step(config) * steps / (peak_flops * mfu) / 60
