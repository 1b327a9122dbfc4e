"""Validation metrics during training, on the held-out training images (``DataConfig.n_val``), never the test set.

Two cheap numbers a recipe can be chosen by: ``val_knn_acc``, the kNN accuracy of the validation images against
an index of the first ``TrainConfig.val_index`` training images (every objective: the representation), and
``val_bits_per_dim`` (objectives that train the decoder: the likelihood). One encoder pass per image.
"""
from __future__ import annotations

import torch

from .config import Config, EvalConfig, trains_decoder
from .data import PreparedData
from .evaluate import model_embedding
from .model import HybridTransformer
from .probes import knn_accuracy

VAL_FIELDS = ("val_knn_acc", "val_bits_per_dim")


class Validator:
    """``validator(model)`` -> the validation metrics of ``model`` as it is now (its train/eval mode restored)."""

    def __init__(self, config: Config, data: PreparedData) -> None:
        self.decoder = trains_decoder(config.train.objective)
        self.eval: EvalConfig = config.eval
        self.data = data
        n_index = min(config.train.val_index, len(data.train_images))
        self.index_images = data.train_images[:n_index]
        self.index_labels = data.train_labels[:n_index].numpy()
        self.val_labels = data.val_labels.numpy()

    def __call__(self, model: HybridTransformer) -> dict[str, float]:
        was_training = model.training
        model.eval()
        embed = model_embedding(model, self.data, self.eval.eval_batch_size)
        index, _ = embed(self.index_images, False)
        val, bits = embed(self.data.val_images, self.decoder)
        model.train(was_training)
        out = {"val_knn_acc": knn_accuracy(index.numpy(), self.index_labels, val.numpy(), self.val_labels,
                                           k=self.eval.knn_k)}
        if bits is not None:
            out["val_bits_per_dim"] = float(bits.mean())
        return out


@torch.no_grad()
def validate_model(model: HybridTransformer, config: Config, data: PreparedData) -> dict[str, float]:
    """The validation metrics of one model: what training logs every ``eval_every`` steps."""
    return Validator(config, data)(model)
