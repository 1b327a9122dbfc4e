"""The pretrained weights shipped with the repository (hybridlib/shipped.py): how they are written and found,
and that the committed cpu-profile files load into today's default configuration and give the committed
linear-probe accuracy."""
import json

import pytest
import torch

from hybridlib import studies
from hybridlib.config import OBJECTIVES, get_config
from hybridlib.data import prepare_data
from hybridlib.errors import CheckpointError, DataError
from hybridlib.evaluate import discrimination, model_embedding
from hybridlib.paths import run_dir_for
from hybridlib.shipped import MAX_MB, USE_ENV, find_shipped, ship, shipped_path
from hybridlib.train import ensure_trained

from conftest import REPO

# fp16 storage moves each weight by at most 2**-11 of itself; the probe's accuracy moves by a few test images
PROBE_TOLERANCE = 0.005


@pytest.mark.slow
def test_shipped_weights_are_used_when_there_is_no_run_of_ones_own(tmp_path, monkeypatch, smoke_data, capsys):
    monkeypatch.setenv("HYBRIDLIB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("HYBRIDLIB_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.delenv(USE_ENV, raising=False)
    config = get_config("smoke", "generative", steps=20, checkpoint_every=10)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        ship("smoke", ("generative",))  # nothing trained yet: nothing to ship
    own = ensure_trained(get_config("smoke", "generative"), smoke_data, progress=False)
    [path] = ship("smoke", ("generative",))
    assert path == shipped_path("smoke", "generative") and path.stat().st_size < MAX_MB * 2**20
    capsys.readouterr()

    # a run of one's own is preferred to the shipped weights
    assert ensure_trained(get_config("smoke", "generative"), smoke_data, progress=False).shipped is None

    # without one, the shipped weights: the run's weights in half precision, its history and sample snapshots
    for f in run_dir_for(own.config).iterdir():
        f.unlink()
    loaded = ensure_trained(get_config("smoke", "generative"), smoke_data, progress=False, train_missing=False)
    assert loaded.shipped == path and "weights shipped with the repository" in capsys.readouterr().out
    assert loaded.step == own.step and loaded.history == own.history and loaded.wall_time_s == own.wall_time_s
    assert sorted(loaded.samples) == sorted(own.samples) == [20, 40]
    assert all(torch.equal(loaded.samples[s], own.samples[s]) for s in own.samples)
    for name, w in own.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], w.half().float())

    # another configuration is not served by them, nor is a study (which trains its own runs), nor `make reproduce`
    assert find_shipped(config) is None
    monkeypatch.setenv(USE_ENV, "0")
    assert find_shipped(get_config("smoke", "generative")) is None
    monkeypatch.delenv(USE_ENV)
    with pytest.raises(CheckpointError, match="no finished generative model"):
        ensure_trained(get_config("smoke", "generative"), smoke_data, train_missing=False, shipped=False)
    with pytest.raises(CheckpointError, match="no finished generative model"):
        studies.evaluated(get_config("smoke", "generative"), smoke_data, progress=False, train_missing=False)


def _committed(profile: str) -> dict:
    return json.loads((REPO / "results" / profile / "summary.json").read_text())


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_the_cpu_weights_are_shipped_and_fit_todays_default(objective, monkeypatch):
    monkeypatch.setenv("HYBRIDLIB_CHECKPOINTS", str(REPO / "checkpoints"))
    monkeypatch.delenv(USE_ENV, raising=False)
    path = shipped_path("cpu", objective)
    assert path.exists(), f"{path} is missing: `make reproduce` (cpu profile) writes it"
    assert path.stat().st_size < MAX_MB * 2**20
    assert find_shipped(get_config("cpu", objective)) is not None, \
        f"{path} was trained with other settings than today's cpu profile: rerun `make reproduce`"


@pytest.mark.slow
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_the_shipped_cpu_weights_give_the_committed_probe_accuracy(objective, monkeypatch, tmp_path):
    monkeypatch.setenv("HYBRIDLIB_CHECKPOINTS", str(REPO / "checkpoints"))
    monkeypatch.setenv("HYBRIDLIB_RUNS", str(tmp_path))  # no run of one's own
    monkeypatch.delenv(USE_ENV, raising=False)
    config = get_config("cpu", objective)
    try:
        data = prepare_data(config.data)
    except DataError as e:
        pytest.skip(f"the cpu profile's data is not here ({e})")
    run = ensure_trained(config, data, progress=False, train_missing=False)
    assert run.shipped is not None
    n = config.eval.n_probe_train
    embed = model_embedding(run.model, data, config.eval.eval_batch_size)
    _, metrics = discrimination(embed(data.train_images[:n], False)[0].numpy(), data.train_labels[:n].numpy(),
                                embed(data.test_images, False)[0].numpy(), data.test_labels.numpy(), config.eval)
    committed = _committed("cpu")["models"][objective]["linear_probe_acc"]
    assert metrics["linear_probe_acc"] == pytest.approx(committed, abs=PROBE_TOLERANCE)
