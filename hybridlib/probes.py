"""Read-outs of frozen features: the linear probe, kNN accuracy and the kNN-distance OOD score.

The linear probe is multinomial logistic regression on standardised features with an L2 penalty,
the objective of scikit-learn's ``LogisticRegression(C=1.0)``:

    minimise  C * sum_i CE(W z_i + b, y_i) + ||W||^2 / 2        (the bias is not penalised)

solved to convergence by L-BFGS in a whitened basis (W = P V with z P white). The minimiser is the
same in either basis; in the whitened one the curvature is nearly isotropic, so L-BFGS needs about
200 iterations instead of thousands (docs/benchmarks.md has the measurement).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F


class Basis(NamedTuple):
    """How a probe standardises and whitens features: (x - mean) / std @ whiten is white."""
    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,)
    whiten: torch.Tensor  # (D, D)


def whitened_basis(features: np.ndarray | torch.Tensor) -> Basis:
    """The standardisation and whitening of ``features`` (N, D): the labelled ones, or unlabelled ones of the same
    kind (ten labelled images give no usable variance); computed once, it serves every probe fitted in it."""
    x = torch.as_tensor(np.asarray(features, np.float32))
    mean, std = x.mean(0), x.std(0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant feature carries nothing
    z = (x - mean) / std
    eigenvalues, eigenvectors = torch.linalg.eigh(z.T @ z / len(z))
    return Basis(mean, std, eigenvectors / eigenvalues.clamp_min(1e-6 * float(eigenvalues.max())).sqrt())


class LinearProbe:
    """Logistic regression on standardised features; ``fit`` then ``predict_proba`` / ``predict``."""

    def __init__(self, C: float = 1.0, max_iter: int = 500) -> None:
        self.C, self.max_iter = C, max_iter

    def fit(self, features: np.ndarray, labels: np.ndarray, basis: Basis | None = None) -> "LinearProbe":
        """``basis``: the standardisation and whitening to fit in (:func:`whitened_basis`; default: the features'
        own). The minimiser is the same function of the standardised features; only the standardisation differs."""
        x, y = torch.from_numpy(np.asarray(features, np.float32)), torch.from_numpy(np.asarray(labels)).long()
        self.mean, self.std, whiten = basis or whitened_basis(x)
        z = (x - self.mean) / self.std  # (N, D)
        n, d = z.shape
        k = int(y.max()) + 1
        zw = z @ whiten
        v = torch.zeros(d, k, requires_grad=True)  # W = whiten @ v
        b = torch.zeros(k, requires_grad=True)
        optimizer = torch.optim.LBFGS([v, b], lr=1, max_iter=self.max_iter, tolerance_grad=1e-9,
                                      tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

        def objective() -> torch.Tensor:  # the objective above divided by C * N: the same minimiser
            optimizer.zero_grad()
            loss = F.cross_entropy(zw @ v + b, y) + (whiten @ v).square().sum() / (2 * self.C * n)
            loss.backward()
            return loss

        optimizer.step(objective)
        self.weight, self.bias = (whiten @ v).detach(), b.detach()  # (D, K), (K,)
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        z = (torch.from_numpy(np.asarray(features, np.float32)) - self.mean) / self.std
        return torch.softmax(z @ self.weight + self.bias, dim=1).numpy()

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.predict_proba(features).argmax(1)


def fit_linear_probe(features: np.ndarray, labels: np.ndarray, C: float = 1.0,
                     basis: Basis | None = None) -> LinearProbe:
    """(N, D) frozen features and their (N,) labels -> a fitted :class:`LinearProbe` (``basis``: see its fit)."""
    return LinearProbe(C).fit(features, labels, basis)


def knn_accuracy(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray,
                 k: int = 20, chunk: int = 1024) -> float:
    """Accuracy of a majority vote of the k nearest training features by cosine similarity (ties: the
    lowest class, as scikit-learn's KNeighborsClassifier), as chunked matrix products."""
    a = F.normalize(torch.from_numpy(train).float(), dim=1)
    q = F.normalize(torch.from_numpy(test).float(), dim=1)
    labels = torch.from_numpy(train_labels).long()
    n_classes = int(labels.max()) + 1
    predictions = []
    for i in range(0, len(q), chunk):
        neighbours = labels[(q[i : i + chunk] @ a.T).topk(k, dim=1).indices]  # (chunk, k) their classes
        votes = torch.zeros(len(neighbours), n_classes).scatter_add_(1, neighbours, torch.ones(neighbours.shape))
        predictions.append(votes.argmax(1))
    return float((torch.cat(predictions).numpy() == test_labels).mean())


def knn_distance(train: np.ndarray, query: np.ndarray, k: int = 5) -> np.ndarray:
    """Mean cosine distance of each query to its k nearest training features (an OOD score)."""
    a = F.normalize(torch.from_numpy(train).float(), dim=1)
    q = F.normalize(torch.from_numpy(query).float(), dim=1)
    out = [(1 - (q[i : i + 1024] @ a.T).topk(k, dim=1).values).mean(1) for i in range(0, len(q), 1024)]
    return torch.cat(out).numpy()
