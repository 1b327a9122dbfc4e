"""The gpu profile's code path (RGB images, k-means palette, one token per pixel), on the CPU with tiny shapes."""
import pytest
import torch

from hybridlib import data as data_mod
from hybridlib.config import get_config
from hybridlib.data import ImageData, prepare_data
from hybridlib.config import EvalConfig
from hybridlib.evaluate import evaluate_model
from hybridlib.train import train

from conftest import REPO


def _fake_rgb(name, root=None, download=True):
    g = torch.Generator().manual_seed(len(name))
    images = lambda n: (torch.rand(n, 3, 32, 32, generator=g) * 255).to(torch.uint8)  # noqa: E731
    labels = lambda n: torch.randint(0, 10, (n,), generator=g)  # noqa: E731
    return ImageData(name, images(64), labels(64), images(32), labels(32), [str(i) for i in range(10)])


@pytest.mark.slow
def test_gpu_profile_trains_and_evaluates_with_tiny_shapes(tmp_path, monkeypatch):
    from hybridlib import evaluate as evaluate_mod

    monkeypatch.setattr(data_mod, "load_dataset", _fake_rgb)  # CIFAR-10, and SVHN / CIFAR-100 as OOD sets
    monkeypatch.setattr(evaluate_mod, "load_dataset", _fake_rgb)
    config = get_config("gpu", "hybrid", image_size=8, palette_size=16, d_model=32, n_head=2, n_encoder_layers=1,
                        n_decoder_layers=1, proj_dim=16, batch_size=8, steps=4, checkpoint_every=2, log_every=2,
                        warmup_steps=1, compile=False)  # compiling is tested once, in test_train.py
    assert (config.model.vocab_size, config.model.seq_len, config.data.dims_per_token) == (16, 64, 3)
    data = prepare_data(config.data, root=tmp_path)
    assert (tmp_path / "palette_cifar10_8px_16.npy").exists()
    assert data.train_tokens.shape == (64, 64) and data.train_tokens.max() < 16
    result = train(config, tmp_path / "run", progress=False, data=data, device="cpu")
    assert result.step == 4 and all(torch.isfinite(torch.tensor(r["loss"])) for r in result.history)
    r = evaluate_model(result.model, data, "hybrid", EvalConfig(n_probe_train=64, n_ood=16, n_corrupt=8, knn_k=3),
                       progress=False)
    assert {"svhn", "cifar100", "vflip"} <= set(r["ood"]["likelihood"])
    assert 0 < r["test_bits_per_dim"] < 8


@pytest.mark.slow
def test_a_training_notebook_runs_at_the_small_gpu_profiles_shapes(tmp_path):
    """Notebook 2 under gpu-small (16x16 images: 256 tokens, d = 256, 4 + 2 blocks) on the CPU, for two
    steps of a small batch, on 256 of the embedded digits since CIFAR-10 is not downloaded in tests."""
    papermill = pytest.importorskip("papermill")
    out = tmp_path / "02_contrastive.ipynb"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "02_contrastive.ipynb"), str(out), kernel_name="python3", progress_bar=False,
        parameters={"PROFILE": "gpu-small", "STEPS": 2,
                    "OVERRIDES": {"dataset": "digits", "n_train": 256, "batch_size": 16, "compile": False,
                                  "log_every": 1}})
    text = out.read_text()
    assert "profile gpu-small: digits at 16x16, 2 steps of batch 16" in text
    assert '"output_type": "error"' not in text
