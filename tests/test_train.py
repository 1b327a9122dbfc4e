import fcntl
import json
import math

import pytest
import torch

from hybridlib.checkpoint import load_checkpoint, load_model
from hybridlib.config import get_config
from hybridlib.errors import CheckpointError, RunDirectoryError
from hybridlib.step import BatchSampler, lr_factor
from hybridlib import progress
from hybridlib.paths import run_dir_for
from hybridlib.rundir import MARKER_NAME
from hybridlib.train import SNAPSHOT_SAMPLES, ensure_trained, read_history, sample_snapshot, train

from conftest import state_dicts_equal


@pytest.mark.parametrize("objective", ["contrastive", "generative", "hybrid"])
@pytest.mark.slow
def test_smoke_training_learns_checkpoints_and_logs(tmp_path, smoke_data, objective, monkeypatch):
    config = get_config("smoke", objective, steps=60, checkpoint_every=30, log_every=10)
    monkeypatch.setenv(progress.ENV, str(tmp_path / "progress.log"))
    result = train(config, tmp_path / "run", progress=False, data=smoke_data)
    announced = (tmp_path / "progress.log").read_text().splitlines()
    assert len(announced) == 6 and announced[-1].startswith(f"{objective} [smoke] step 60/60: loss ")
    history = read_history(tmp_path / "run")
    assert [row["step"] for row in history] == [10, 20, 30, 40, 50, 60]
    assert history[-1]["loss"] < history[0]["loss"]  # it learns
    assert all(row["img_per_s"] > 0 for row in history)
    if objective != "contrastive":
        assert 0 < history[-1]["bits_per_dim"] < math.log2(config.data.levels)  # better than uniform
    else:
        assert math.isnan(history[-1]["bits_per_dim"])
    state = load_checkpoint(tmp_path / "run")
    assert result.wall_time_s == state["wall_time_s"]  # what a later read of the finished run reports
    assert state["step"] == 60 and json.loads((tmp_path / "run" / "config.json").read_text())["train"]["objective"] == objective
    model, loaded_config, _ = load_model(tmp_path / "run" / "checkpoint.pt")
    assert loaded_config == config and state_dicts_equal(model.state_dict(), result.model.state_dict())
    if objective == "contrastive":  # an untrained decoder's samples would teach nothing
        assert result.samples == {}
    else:  # a snapshot at each checkpoint, kept in it, each from the same random numbers
        assert sorted(result.samples) == [30, 60] and sorted(state["samples"]) == [30, 60]
        assert result.samples[60].shape == (SNAPSHOT_SAMPLES, config.model.seq_len)
        assert torch.equal(result.samples[60], sample_snapshot(result.model, config.train.seed))
        assert not torch.equal(result.samples[30], result.samples[60])


@pytest.mark.slow
def test_resume_after_a_crash_equals_uninterrupted(tmp_path, smoke_data, monkeypatch):
    config = get_config("smoke", "hybrid", steps=30, checkpoint_every=10)
    full = train(config, tmp_path / "full", progress=False, data=smoke_data)

    from hybridlib import losses

    real_forward, calls = losses.Objective.forward, {"n": 0}

    def crash_at_step_17(self, *args):
        calls["n"] += 1
        if calls["n"] == 18:
            raise RuntimeError("simulated crash")
        return real_forward(self, *args)

    monkeypatch.setattr(losses.Objective, "forward", crash_at_step_17)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(config, tmp_path / "crashed", progress=False, data=smoke_data)
    monkeypatch.setattr(losses.Objective, "forward", real_forward)
    assert load_checkpoint(tmp_path / "crashed")["step"] == 10
    resumed = train(config, tmp_path / "crashed", resume=True, progress=False, data=smoke_data)
    assert state_dicts_equal(full.model.state_dict(), resumed.model.state_dict())
    assert [r["step"] for r in read_history(tmp_path / "crashed")] == [r["step"] for r in full.history]
    assert sorted(resumed.samples) == [10, 20, 30]  # the snapshots before the crash are kept
    assert all(torch.equal(full.samples[s], resumed.samples[s]) for s in full.samples)


@pytest.mark.slow
def test_existing_run_is_refused_unless_resumed_or_overwritten(tmp_path, smoke_data):
    config = get_config("smoke", "generative", steps=10)
    train(config, tmp_path / "run", progress=False, data=smoke_data)
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    with pytest.raises(RunDirectoryError, match="--resume .* or --overwrite"):
        train(config, tmp_path / "run", progress=False, data=smoke_data)
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before  # nothing lost
    other = get_config("smoke", "contrastive", steps=10)
    with pytest.raises(CheckpointError, match="train.objective: 'generative' != 'contrastive'"):
        train(other, tmp_path / "run", resume=True, progress=False, data=smoke_data)
    train(other, tmp_path / "run", overwrite=True, progress=False, data=smoke_data)
    assert load_checkpoint(tmp_path / "run")["config"]["train"]["objective"] == "contrastive"


def test_a_folder_of_other_files_is_refused(tmp_path, smoke_data):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="not empty"):
        train(get_config("smoke", "hybrid", steps=5), tmp_path, progress=False, data=smoke_data)


@pytest.mark.slow
def test_resume_can_extend_a_finished_run(tmp_path, smoke_data):
    train(get_config("smoke", "hybrid", steps=10, checkpoint_every=5), tmp_path, progress=False, data=smoke_data)
    result = train(get_config("smoke", "hybrid", steps=20, checkpoint_every=5), tmp_path, resume=True,
                   progress=False, data=smoke_data)
    assert result.step == 20 and [r["step"] for r in result.history][-1] == 20


def test_runs_named_under_an_earlier_default_budget_are_put_where_they_belong(tmp_path, smoke_data, monkeypatch,
                                                                             capsys):
    """A default budget that changes (the cpu profile's went from 500 to 1000 steps) leaves runs under names the
    new default gives to other runs. Each is moved, marker and all, to the folder its own budget has now; a run is
    never continued to another budget (a model of neither schedule), and nothing is lost."""
    monkeypatch.setenv("HYBRIDLIB_RUNS", str(tmp_path / "runs"))
    today = get_config("smoke", "generative")  # today's default: its folder's name has no steps in it
    short = today.with_train(steps=today.train.steps // 2)  # an earlier default, in today's default folder
    train(short, run_dir_for(today), progress=False, data=smoke_data)
    old_weights = load_checkpoint(run_dir_for(today))["model"]

    # asked for by its own budget, it moves into that budget's folder, and nothing trains
    got = ensure_trained(short, smoke_data, progress=False, shipped=False)
    assert got.out_dir == run_dir_for(short) and got.start_step == got.step == short.train.steps
    assert (run_dir_for(short) / MARKER_NAME).is_file() and not run_dir_for(today).exists()
    assert state_dicts_equal(got.model.state_dict(), old_weights)

    # found where today's run belongs, it moves out, and today's run trains from step 0, not from the old one
    run_dir_for(short).rename(run_dir_for(today))
    run = ensure_trained(today, smoke_data, progress=False, shipped=False)
    assert run.step == today.train.steps and run.start_step == 0
    assert f"moved from {run_dir_for(today)} to {run_dir_for(short)}" in capsys.readouterr().out
    assert state_dicts_equal(load_checkpoint(run_dir_for(short))["model"], old_weights)
    fresh = train(today, tmp_path / "fresh", progress=False, data=smoke_data)
    assert state_dicts_equal(run.model.state_dict(), fresh.model.state_dict())

    # today's run under the name an earlier default gave it (steps named) moves into today's default folder
    named = run_dir_for(today, always=("steps",))
    run_dir_for(today).rename(named)
    assert ensure_trained(today, smoke_data, progress=False, train_missing=False).out_dir == run_dir_for(today)
    assert not named.exists()

    # where both folders are taken, or the run is held by another process, nothing moves and the error says so
    train(short, named, progress=False, data=smoke_data)
    run_dir_for(today).rename(tmp_path / "today")
    named.rename(run_dir_for(today))
    with pytest.raises(CheckpointError, match="move one of them elsewhere"):
        ensure_trained(today, smoke_data, progress=False, shipped=False)
    assert load_checkpoint(run_dir_for(today))["step"] == short.train.steps
    run_dir_for(short).rename(tmp_path / "short")
    with open(run_dir_for(today) / MARKER_NAME) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RunDirectoryError, match="in use by another hybridlib process"):
            ensure_trained(today, smoke_data, progress=False, shipped=False)
    assert load_checkpoint(run_dir_for(today))["step"] == short.train.steps and not run_dir_for(short).exists()


def test_a_finished_run_in_its_folder_is_read_once(tmp_path, smoke_data, monkeypatch):
    """Opening a notebook on a finished run reads its checkpoint once, not once to check where it belongs and again
    to load it."""
    monkeypatch.setenv("HYBRIDLIB_RUNS", str(tmp_path / "runs"))
    config = get_config("smoke", "contrastive")
    trained = train(config, run_dir_for(config), progress=False, data=smoke_data)
    reads = []
    monkeypatch.setattr("hybridlib.train.load_checkpoint", lambda path: reads.append(path) or load_checkpoint(path))
    got = ensure_trained(config, smoke_data, progress=False, train_missing=False)
    assert len(reads) == 1 and got.out_dir == run_dir_for(config)
    assert state_dicts_equal(got.model.state_dict(), trained.model.state_dict())


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    cfg = get_config("smoke", steps=100, warmup_steps=10, min_lr_ratio=0.1).train
    factors = [lr_factor(s, cfg) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert lr_factor(100, cfg) == pytest.approx(0.1)


def test_batch_sampler_covers_each_epoch_once_and_splits_across_ranks():
    s = BatchSampler(n_items=100, batch_size=10, seed=0)
    epoch = torch.cat([s(step) for step in range(10)])
    assert sorted(epoch.tolist()) == list(range(100))
    assert not torch.equal(s(0), s(10))  # a new permutation each epoch
    r0, r1 = BatchSampler(100, 10, 0, rank=0, world=2), BatchSampler(100, 10, 0, rank=1, world=2)
    assert sorted(torch.cat([r0(3), r1(3)]).tolist()) == sorted(s(3).tolist())
    tiny = BatchSampler(n_items=3, batch_size=8, seed=0)
    assert len(tiny(0)) == 8


@pytest.mark.slow
def test_compiled_step_trains_like_the_eager_one(tmp_path, smoke_data):
    """torch.compile (on for the cpu and gpu profiles) changes speed, not what is learned."""
    eager = train(get_config("smoke", "hybrid", steps=10, log_every=5), tmp_path / "eager", progress=False,
                  data=smoke_data)
    compiled = train(get_config("smoke", "hybrid", steps=10, log_every=5, compile=True), tmp_path / "compiled",
                     progress=False, data=smoke_data)
    for a, b in zip(eager.history, compiled.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-2)
    # compile is a speed setting: a run may be resumed with it switched
    train(get_config("smoke", "hybrid", steps=12, log_every=5), tmp_path / "compiled", resume=True,
          progress=False, data=smoke_data)


@pytest.mark.slow
def test_two_compiled_trainings_of_one_seed_are_equal_bit_for_bit(tmp_path, smoke_data):
    config = get_config("smoke", "hybrid", steps=10, log_every=5, compile=True)
    first = train(config, tmp_path / "first", progress=False, data=smoke_data)
    second = train(config, tmp_path / "second", progress=False, data=smoke_data)
    assert state_dicts_equal(first.model.state_dict(), second.model.state_dict())


def test_without_a_compiler_training_warns_and_runs_eagerly(tmp_path, smoke_data, monkeypatch):
    from hybridlib import step as step_module

    monkeypatch.setattr(step_module, "can_compile", lambda device: False)
    with pytest.warns(UserWarning, match="C\\+\\+ compiler"):
        result = train(get_config("smoke", "generative", steps=5, compile=True), tmp_path / "run", progress=False,
                       data=smoke_data)
    assert result.step == 5


@pytest.mark.slow
def test_sample_snapshots_leave_training_untouched(tmp_path, smoke_data, monkeypatch):
    """Sampling at each checkpoint draws from a generator of its own and puts the model back in training mode: the
    trained weights are those of a run that never sampled (with dropout, whose masks come from the global random
    stream, so a sampler that drew from that stream or left the model in eval mode would change them)."""
    config = get_config("smoke", "generative", steps=20, checkpoint_every=5, dropout=0.1)
    sampled = train(config, tmp_path / "sampled", progress=False, data=smoke_data)
    monkeypatch.setattr("hybridlib.train.sample_snapshot", lambda model, seed: torch.zeros(1))
    plain = train(config, tmp_path / "plain", progress=False, data=smoke_data)
    assert sorted(sampled.samples) == [5, 10, 15, 20]
    assert state_dicts_equal(sampled.model.state_dict(), plain.model.state_dict())
