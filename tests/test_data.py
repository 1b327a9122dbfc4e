import gzip

import numpy as np
import pytest
import torch

from hybridlib import data as data_mod
from hybridlib.config import get_config
from hybridlib.data import load_dataset, read_idx, resize
from hybridlib.errors import ConfigError, DataError


def _write_idx(path, array, gz=True):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    (gzip.open(path, "wb") if gz else open(path, "wb")).write(raw)


def _fake_fashion(folder, n=12, gz=True):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    _write_idx(folder / f"train-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)), gz)
    _write_idx(folder / f"train-labels-idx1-ubyte{suffix}", rng.integers(0, 10, (n,)), gz)
    _write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n // 2, 28, 28)), gz)
    _write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", rng.integers(0, 10, (n // 2,)), gz)


def test_digits_is_embedded_and_split():
    d = load_dataset("digits")
    assert d.train_images.shape == (1347, 1, 8, 8) and d.test_images.shape == (450, 1, 8, 8)
    assert d.train_images.dtype == torch.uint8 and int(d.train_images.max()) == 255
    assert set(d.train_labels.tolist()) == set(range(10)) and d.num_classes == 10


def test_resize_shrinks_by_area_and_keeps_range():
    x = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    y = resize(x, 14)
    assert y.shape == (3, 1, 14, 14) and 0 <= y.min() and y.max() <= 1
    assert torch.allclose(y, (x.float() / 255).view(3, 1, 14, 2, 14, 2).mean((3, 5)), atol=1e-6)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_a_local_folder(tmp_path, monkeypatch, gz):
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    _fake_fashion(tmp_path / "fashion-mnist", gz=gz)
    d = load_dataset("fashion-mnist", root=tmp_path, download=False)
    assert d.train_images.shape == (12, 1, 28, 28) and d.test_images.shape == (6, 1, 28, 28)
    assert d.classes[0] == "T-shirt/top"


def test_missing_offline_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)


def test_truncated_and_corrupt_files_are_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    _fake_fashion(tmp_path / "fashion-mnist", gz=False)
    path = tmp_path / "fashion-mnist" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)
    path.write_bytes(b"hello world, not an idx file")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)
    gz = tmp_path / "x.gz"
    gz.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (100).to_bytes(4, "big") + bytes(100))[:-8])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(gz)


def test_download_failure_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="could not be downloaded"):
        load_dataset("mnist", root=tmp_path, download=False)


def test_unknown_dataset():
    with pytest.raises(ConfigError, match="choose one of"):
        load_dataset("imagenet")


def test_prepare_data_tokens_match_images(smoke_data):
    d = smoke_data
    assert d.train_tokens.shape == (1347, 16) and d.train_tokens.max() < 256
    assert torch.equal(d.tokenizer.encode(d.train_images[:10]), d.train_tokens[:10])


def test_n_train_subset():
    from hybridlib.data import load_data

    d = load_data(get_config("smoke", n_train=100).data)
    assert len(d.train_images) == 100 and len(d.train_labels) == 100
