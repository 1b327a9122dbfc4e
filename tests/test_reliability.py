"""Issue 6: nothing a student does, or a dying laptop does to them, loses work or gives a silent wrong result."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from hybridlib.checkpoint import load_checkpoint, load_model, save_checkpoint
from hybridlib.config import get_config
from hybridlib.errors import CheckpointError, NonFiniteLossError
from hybridlib.evaluate import evaluate_checkpoint, eval_config_for
from hybridlib.train import read_history, train

from conftest import python_cmd, state_dicts_equal, subprocess_env

TRAIN = ["-m", "hybridlib", "train", "--objective", "hybrid", "--profile", "smoke", "--no-progress",
         "--checkpoint-every", "10", "--log-every", "5"]


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_exact(tmp_path):
    steps = "300"
    reference = tmp_path / "reference"
    subprocess.run(python_cmd(*TRAIN, "--steps", steps, "--out", str(reference)), check=True, env=subprocess_env())

    run = tmp_path / "killed"
    proc = subprocess.Popen(python_cmd(*TRAIN, "--steps", steps, "--out", str(run)), env=subprocess_env())
    deadline = time.time() + 120
    while not (run / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(random.uniform(0.0, 0.3))  # a random step after the first checkpoint
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    killed_at = load_checkpoint(run)["step"]
    assert 10 <= killed_at < int(steps), "the process finished before it was killed; the test proved nothing"

    subprocess.run(python_cmd(*TRAIN, "--steps", steps, "--out", str(run), "--resume"), check=True, env=subprocess_env())
    a, b = load_checkpoint(reference), load_checkpoint(run)
    assert b["step"] == int(steps)
    assert state_dicts_equal(a["model"], b["model"])  # bit for bit
    assert [r["step"] for r in read_history(run)] == [r["step"] for r in read_history(reference)]


_KILL_DURING_WRITE = """
import os, signal, sys, torch
from hybridlib import checkpoint
path = sys.argv[1]
checkpoint.save_checkpoint({"config": {}, "step": 1, "model": {"w": torch.ones(1000)}}, path)
real_save = torch.save
def half_then_die(obj, f):
    f.write(b"PK" + b"x" * 5000)   # part of a file...
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)   # ...then the power goes
torch.save = half_then_die
checkpoint.save_checkpoint({"config": {}, "step": 2, "model": {"w": torch.zeros(1000)}}, path)
"""


def test_a_kill_during_a_checkpoint_write_keeps_the_previous_one(tmp_path):
    path = tmp_path / "checkpoint.pt"
    proc = subprocess.run(python_cmd("-c", _KILL_DURING_WRITE, str(path)), env=subprocess_env())
    assert proc.returncode == -signal.SIGKILL
    state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["model"]["w"], torch.ones(1000))


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_loading_never_runs_code_and_rejects_garbage(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"format": 1, "config": {}, "payload": _Exploit()}, evil)
    with pytest.raises(CheckpointError, match="not a loadable hybridlib checkpoint"):
        load_checkpoint(evil)
    truncated = tmp_path / "truncated.pt"
    save_checkpoint({"config": {}, "step": 0, "model": {"w": torch.ones(100)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a loadable"):
        load_checkpoint(truncated)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.ones(1)}, plain)
    with pytest.raises(CheckpointError, match="not a hybridlib checkpoint"):
        load_checkpoint(plain)


def test_a_checkpoint_for_another_model_names_the_mismatch(tmp_path, smoke_data):
    train(get_config("smoke", "generative", steps=5), tmp_path, progress=False, data=smoke_data)
    with pytest.raises(CheckpointError, match=r"model.d_model: 32 != 64"):
        load_model(tmp_path, expected=get_config("smoke", "generative", d_model=64))
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    state["model"]["head.weight"] = torch.zeros(3, 3)
    save_checkpoint({k: v for k, v in state.items() if k != "format"}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model(tmp_path / "bad.pt")


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, smoke_data, monkeypatch):
    from hybridlib import losses

    real_forward, calls = losses.Objective.forward, {"n": 0}

    def nan_at_step_23(self, *args):
        calls["n"] += 1
        out = real_forward(self, *args)
        if calls["n"] == 24:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(losses.Objective, "forward", nan_at_step_23)
    config = get_config("smoke", "hybrid", steps=40, checkpoint_every=10, log_every=5)
    with pytest.raises(NonFiniteLossError, match="at step 23.*last good checkpoint"):
        train(config, tmp_path, progress=False, data=smoke_data)
    state = load_checkpoint(tmp_path)
    assert state["step"] == 20
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_same_seed_same_metrics(tmp_path, smoke_data):
    config = get_config("smoke", "hybrid", steps=20)
    results = []
    for name in ("a", "b"):
        train(config, tmp_path / name, progress=False, data=smoke_data)
        r = evaluate_checkpoint(tmp_path / name, device="cpu", progress=False,
                                cfg=eval_config_for("smoke"), data=smoke_data)
        results.append(json.dumps({k: v for k, v in r.items() if k not in ("eval_time_s", "checkpoint")}))
    assert results[0] == results[1]  # as JSON text: NaN (an empty calibration bin) != NaN
    h = [[{k: v for k, v in row.items() if k not in ("img_per_s", "elapsed_s")} for row in read_history(tmp_path / n)]
         for n in ("a", "b")]
    assert str(h[0]) == str(h[1])  # str: NaN != NaN


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_checkpoint_once_and_resume(tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    assert torchrun, "torchrun comes with torch"
    run = tmp_path / "ddp"
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", *TRAIN, "--out", str(run)]
    subprocess.run(cmd + ["--steps", "20"], check=True, env=subprocess_env(), timeout=300)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "config.json", "history.csv"]  # no temp files
    assert load_checkpoint(run)["step"] == 20
    assert [r["step"] for r in read_history(run)] == [5, 10, 15, 20]  # one writer: no duplicated rows
    subprocess.run(cmd + ["--steps", "30", "--resume"], check=True, env=subprocess_env(), timeout=300)
    assert load_checkpoint(run)["step"] == 30
    assert [r["step"] for r in read_history(run)] == [5, 10, 15, 20, 25, 30]
