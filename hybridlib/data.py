"""Data sets by name, resized and held in memory as tensors.

``digits``        scikit-learn's bundled 8x8 digits: embedded, never downloaded (smoke profile, tests).
``fashion-mnist`` looked for in ``data/fashion-mnist/``, then in Debian's ``dataset-fashion-mnist``
                  package (/usr/share/datasets/fashion-mnist), then downloaded by torchvision (cpu profile).
``mnist``, ``kmnist``, ``cifar10``, ``cifar100``, ``svhn``: torchvision downloads into ``data/`` (cifar10: gpu
                  profile; mnist and kmnist: near-OOD sets of the cpu profile, used when present).

Images are kept as uint8 (N, C, H, W) at their native size; :func:`resize` turns them into
floats in [0, 1] at the profile's resolution.
"""
from __future__ import annotations

import gzip
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor

from .config import DATASETS, DataConfig
from .errors import ConfigError, DataError
from .paths import data_dir
from .tokenizer import Tokenizer, make_tokenizer

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass
class ImageData:
    """A labelled image data set in memory."""

    name: str
    train_images: Tensor  # (N, C, H, W) uint8
    train_labels: Tensor  # (N,) int64
    test_images: Tensor  # (M, C, H, W) uint8
    test_labels: Tensor  # (M,) int64
    classes: list[str]
    val_images: Tensor | None = None  # (V, C, H, W) uint8: training images held out (DataConfig.n_val)
    val_labels: Tensor | None = None  # (V,)
    # which images of the data set's training split each of train_images and val_images is: disjoint by construction
    train_index: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))
    val_index: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def resize(images: Tensor, size: int) -> Tensor:
    """(N, C, H, W) uint8 -> (N, C, size, size) floats in [0, 1]; area-averaged when shrinking."""
    x = images.float() / 255.0
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    mode = "area" if x.shape[-1] > size else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(x, size=(size, size), mode=mode, **kwargs).clamp_(0, 1)


def load_dataset(name: str, root: Path | None = None, download: bool = True) -> ImageData:
    """Load a data set by name. Raises DataError, saying how to get it, when it is missing or corrupt."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    root = Path(root) if root is not None else data_dir()
    if name == "digits":
        return _load_digits()
    if name == "fashion-mnist":
        return _load_fashion_mnist(root, download)
    return _load_torchvision(name, root, download)


def load_data(config: DataConfig, root: Path | None = None, download: bool = True) -> ImageData:
    """The data set of a configuration: the last ``n_val`` training images held out as the validation set, and the
    first ``n_train`` of the rest kept for training. The test set is never touched."""
    data = load_dataset(config.dataset, root, download)
    n = len(data.train_images)
    if config.n_val >= n:
        raise ConfigError(f"n_val {config.n_val} leaves no training images: {config.dataset} has {n}; "
                          "hold out fewer (n_val)")
    keep = n - config.n_val
    if config.n_train is not None and config.n_train > keep:
        warnings.warn(f"n_train {config.n_train} is more than the {keep} training images of "
                      f"{config.dataset}{' left after n_val' if config.n_val else ''}: all of them are used",
                      stacklevel=2)
    n_train = keep if config.n_train is None else min(config.n_train, keep)
    data.val_images, data.val_labels = data.train_images[keep:], data.train_labels[keep:]
    data.train_index, data.val_index = torch.arange(n_train), torch.arange(keep, n)
    data.train_images, data.train_labels = data.train_images[:n_train], data.train_labels[:n_train]
    return data


def _load_digits() -> ImageData:
    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    x_tr, x_te, y_tr, y_te = train_test_split(images, digits.target, test_size=0.25, random_state=0,
                                              stratify=digits.target)
    return ImageData("digits", torch.from_numpy(x_tr), torch.from_numpy(y_tr).long(),
                     torch.from_numpy(x_te), torch.from_numpy(y_te).long(), [str(i) for i in range(10)])


def read_idx(path: Path, expected_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (optionally gzipped), checking its header against its length and, with ``expected_ndim``,
    that it holds at least one item of that many dimensions, none of them empty."""
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path} is truncated or corrupt ({e}); delete it and fetch it again") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes; delete it and fetch it again")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + math.prod(shape):  # Python ints: a header's sizes cannot overflow
        raise DataError(f"{path} is truncated or corrupt: its header says {shape} but it holds "
                        f"{len(raw) - header} bytes of data; delete it and fetch it again")
    if expected_ndim is not None and (ndim != expected_ndim or 0 in shape):
        raise DataError(f"{path} holds an array of shape {shape}, not {expected_ndim}-dimensional with no empty "
                        "dimension; delete it and fetch it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx_folder(folders: list[Path]) -> dict[str, Path] | None:
    for folder in folders:
        found = {}
        for key, stem in _IDX_FILES.items():
            for candidate in (folder / stem, folder / f"{stem}.gz"):
                if candidate.exists():
                    found[key] = candidate
                    break
        if len(found) == len(_IDX_FILES):
            return found
    return None


def fashion_mnist_folders(root: Path) -> list[Path]:
    """Where Fashion-MNIST's IDX files are looked for, in order."""
    return [root / "fashion-mnist", root / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST]


def find_fashion_mnist(root: Path) -> Path | None:
    """The first folder that holds Fashion-MNIST's four IDX files, or None."""
    files = _find_idx_folder(fashion_mnist_folders(root))
    return None if files is None else next(iter(files.values())).parent


def _load_fashion_mnist(root: Path, download: bool) -> ImageData:
    files = _find_idx_folder(fashion_mnist_folders(root))
    if files is None and download:
        try:
            from torchvision import datasets  # see _load_torchvision

            datasets.FashionMNIST(str(root), train=True, download=True)
            datasets.FashionMNIST(str(root), train=False, download=True)
        except Exception:  # any network or parsing failure: fall through to the one clear message
            pass
        files = _find_idx_folder(fashion_mnist_folders(root))
    if files is None:
        raise DataError(
            "Fashion-MNIST not found. Get it one of three ways: "
            "`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), "
            "or `python -m hybridlib fetch-data fashion-mnist` (apt when root, else a download), "
            f"or put the four IDX files (train-images-idx3-ubyte[.gz], ...) in {root / 'fashion-mnist'}/"
        )
    arrays = {k: read_idx(p, 3 if k.endswith("images") else 1) for k, p in files.items()}
    for split in ("train", "test"):
        if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
            raise DataError(f"Fashion-MNIST {split} images and labels differ in number; fetch them again")
        if arrays[f"{split}_labels"].max() >= len(FASHION_CLASSES):
            raise DataError(f"Fashion-MNIST {split} labels go up to {arrays[f'{split}_labels'].max()}, but there are "
                            f"{len(FASHION_CLASSES)} classes; fetch them again")
    return ImageData(
        "fashion-mnist",
        torch.from_numpy(arrays["train_images"].copy())[:, None], torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        torch.from_numpy(arrays["test_images"].copy())[:, None], torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        list(FASHION_CLASSES),
    )


def _load_torchvision(name: str, root: Path, download: bool) -> ImageData:
    from torchvision import datasets  # slow to import and needed only for these data sets

    try:
        if name == "svhn":
            splits = [datasets.SVHN(str(root / "svhn"), split=s, download=download) for s in ("train", "test")]
            images = [torch.from_numpy(s.data) for s in splits]  # (N, 3, 32, 32)
            labels = [torch.from_numpy(s.labels).long() for s in splits]
            classes = [str(i) for i in range(10)]
        else:
            cls = {"mnist": datasets.MNIST, "kmnist": datasets.KMNIST, "cifar10": datasets.CIFAR10,
                   "cifar100": datasets.CIFAR100}[name]
            splits = [cls(str(root), train=t, download=download) for t in (True, False)]
            images = [torch.as_tensor(np.asarray(s.data)) for s in splits]
            images = [x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2) for x in images]
            labels = [torch.as_tensor(np.asarray(s.targets)).long() for s in splits]
            classes = list(splits[0].classes)
    except Exception as e:  # torchvision raises RuntimeError, URLError, OSError... all mean "not here"
        raise DataError(
            f"{name} is not in {root} and could not be downloaded ({type(e).__name__}: {e}). "
            f"Connect to the internet and run `python -m hybridlib fetch-data {name}`, "
            f"or copy torchvision's {name} files into {root}/"
        ) from e
    return ImageData(name, images[0].contiguous(), labels[0], images[1].contiguous(), labels[1], classes)


def fetch_data(name: str, root: Path | None = None) -> str:
    """Make a data set available offline (found in ``data/`` or Debian's folder, else downloaded by
    torchvision into ``data/``); returns a line saying where it is."""
    root = Path(root) if root is not None else data_dir()
    found = find_fashion_mnist(root) if name == "fashion-mnist" else None
    if found is not None:
        return f"fashion-mnist: found in {found}"
    data = load_dataset(name, root, download=True)  # raises DataError with instructions
    return f"{name}: {len(data.train_images)} training and {len(data.test_images)} test images ready"


@dataclass
class PreparedData:
    """A data set resized to the profile's resolution, with its tokenizer and clean tokens."""

    config: DataConfig
    source: ImageData
    tokenizer: Tokenizer
    train_images: Tensor  # (N, C, R, R) floats in [0, 1]
    train_tokens: Tensor  # (N, T) int64
    test_images: Tensor  # (M, C, R, R)
    test_tokens: Tensor  # (M, T)
    val_images: Tensor  # (V, C, R, R): the held-out training images (V = n_val; 0 without a validation set)

    @property
    def train_labels(self) -> Tensor:
        return self.source.train_labels

    @property
    def val_labels(self) -> Tensor:
        return self.source.val_labels

    @property
    def test_labels(self) -> Tensor:
        return self.source.test_labels


def prepare_data(config: DataConfig, root: Path | None = None, download: bool = True) -> PreparedData:
    """Load, resize and tokenize a data set once; training and evaluation index these tensors."""
    root = Path(root) if root is not None else data_dir()
    source = load_data(config, root, download)
    train_images = resize(source.train_images, config.image_size)
    test_images = resize(source.test_images, config.image_size)
    val_images = resize(source.val_images, config.image_size)
    tokenizer = make_tokenizer(config, train_images, cache_dir=root)
    return PreparedData(config, source, tokenizer, train_images, tokenizer.encode(train_images),
                        test_images, tokenizer.encode(test_images), val_images)
