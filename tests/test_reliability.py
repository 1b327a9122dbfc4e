"""Issues 6 and 16: nothing a student does, or a dying laptop does to them, loses work or gives a silent
wrong result; every ordinary mistake is one line."""
import errno
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from hybridlib.checkpoint import load_checkpoint, load_model, save_checkpoint
from hybridlib.config import get_config
from hybridlib.errors import CheckpointError, NonFiniteLossError
from hybridlib.evaluate import evaluate_checkpoint
from hybridlib.rundir import hold_run_dir
from hybridlib.train import read_history, train

from conftest import assert_one_line_error, cli, python_cmd, state_dicts_equal, subprocess_env

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
from hybridlib.config import get_config
from hybridlib.model import HybridTransformer
path = sys.argv[1]
config = get_config("smoke", "generative")
weights = {k: torch.ones_like(v) for k, v in HybridTransformer(config.model).state_dict().items()}
checkpoint.save_checkpoint({"config": config.to_dict(), "step": 1, "model": weights}, path)
real_save = torch.save
def half_then_die(obj, f):
    f.write(b"PK" + b"x" * 5000)   # part of a file...
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)   # ...then the power goes
torch.save = half_then_die
checkpoint.save_checkpoint({"config": config.to_dict(), "step": 2, "model": weights}, path)
"""


def test_a_kill_during_a_checkpoint_write_keeps_the_previous_one(tmp_path):
    path = tmp_path / "checkpoint.pt"
    proc = subprocess.run(python_cmd("-c", _KILL_DURING_WRITE, str(path)), env=subprocess_env())
    assert proc.returncode == -signal.SIGKILL
    state = load_checkpoint(path)
    assert state["step"] == 1 and all(torch.equal(v, torch.ones_like(v)) for v in state["model"].values())


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


@pytest.mark.slow
def test_same_seed_same_metrics(tmp_path, smoke_data):
    config = get_config("smoke", "hybrid", steps=20)
    results = []
    for name in ("a", "b"):
        train(config, tmp_path / name, progress=False, data=smoke_data)
        r = evaluate_checkpoint(tmp_path / name, device="cpu", progress=False,
                                cfg=get_config("smoke").eval, data=smoke_data)
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
    assert sorted(p.name for p in run.iterdir()) == [".hybridlib-run", "checkpoint.pt", "config.json",
                                                      "history.csv"]  # no temp files
    assert load_checkpoint(run)["step"] == 20
    assert [r["step"] for r in read_history(run)] == [5, 10, 15, 20]  # one writer: no duplicated rows
    subprocess.run(cmd + ["--steps", "30", "--resume"], check=True, env=subprocess_env(), timeout=300)
    assert load_checkpoint(run)["step"] == 30
    assert [r["step"] for r in read_history(run)] == [5, 10, 15, 20, 25, 30]


# ---------------------------------------------------------------- issue 16: reliability, round two
# Rule: hybridlib writes only into a folder that is new, empty or marked as its own run; every ordinary
# mistake is one line on stderr and a non-zero exit; no checkpoint ever holds non-finite weights.

SMOKE = ["train", "--objective", "generative", "--profile", "smoke", "--no-progress"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, smoke_data):
    """A finished 10-step generative run, to copy and tamper with."""
    run = tmp_path_factory.mktemp("smoke_run") / "run"
    train(get_config("smoke", "generative", steps=10, checkpoint_every=5), run, progress=False, data=smoke_data)
    return run


def _copy_run(smoke_run, to):
    shutil.copytree(smoke_run, to)
    return to


# 1, 2: a folder that merely looks like a run, or is the current folder, is never written


def test_a_folder_that_is_not_a_run_is_never_written(tmp_path, capsys, monkeypatch):
    foreign = tmp_path / "p"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"app": 1}')
    (foreign / "history.csv").write_text("precious")
    for flags in ([], ["--resume"], ["--overwrite"], ["--resume", "--overwrite"]):
        assert_one_line_error(cli(capsys, *SMOKE, "--steps", "3", "--out", foreign, *flags),
                              "is not a hybridlib run folder (no .hybridlib-run)")
    assert sorted(os.listdir(foreign)) == ["config.json", "history.csv"]
    assert (foreign / "config.json").read_text() == '{"app": 1}' and (foreign / "history.csv").read_text() == "precious"
    monkeypatch.chdir(foreign)  # the current folder
    assert_one_line_error(cli(capsys, *SMOKE, "--out", ""), "argument --out: is empty", code=2)
    assert_one_line_error(cli(capsys, *SMOKE, "--out", "."), "is not a hybridlib run folder")
    assert sorted(os.listdir(foreign)) == ["config.json", "history.csv"]


def test_an_unmarked_run_of_an_older_version_is_refused_with_the_way_to_adopt_it(smoke_run, tmp_path, capsys):
    old = _copy_run(smoke_run, tmp_path / "old")
    (old / ".hybridlib-run").unlink()
    assert_one_line_error(cli(capsys, *SMOKE, "--steps", "12", "--out", old, "--resume"),
                          f"`touch {old / '.hybridlib-run'}`")
    (old / ".hybridlib-run").touch()
    code, out, _ = cli(capsys, *SMOKE, "--steps", "12", "--checkpoint-every", "5", "--out", old, "--resume")
    assert code == 0 and "from step 10 to step 12" in out


def test_resume_with_nothing_to_resume_says_so(tmp_path, capsys):
    code, out, err = cli(capsys, *SMOKE, "--steps", "2", "--out", tmp_path / "new", "--resume")
    assert code == 0 and "to step 2" in out
    assert err == [f"hybridlib: warning: nothing to resume in {tmp_path / 'new'} (no checkpoint): a new run starts "
                   "at step 0"]


# 3: one process per run folder; a killed process leaves nothing stuck (9: nor its temporary files)


def test_a_run_folder_is_held_by_one_process_at_a_time(tmp_path, capsys):
    run = tmp_path / "run"
    with hold_run_dir(run):  # flock: two open files of one lock file exclude each other, as two processes do
        assert_one_line_error(cli(capsys, *SMOKE, "--steps", "2", "--out", run), "in use by another hybridlib process")
        assert sorted(p.name for p in run.iterdir()) == [".hybridlib-run"]
    assert cli(capsys, *SMOKE, "--steps", "2", "--out", run)[0] == 0  # released at the end of the block


@pytest.mark.slow
def test_a_second_training_is_refused_and_a_killed_one_leaves_nothing_stuck(tmp_path, capsys):
    run = tmp_path / "run"
    proc = subprocess.Popen(python_cmd("-m", "hybridlib", *SMOKE, "--steps", "100000", "--checkpoint-every", "5",
                                       "--log-every", "5", "--out", str(run)), env=subprocess_env())
    try:
        deadline = time.time() + 120
        while not (run / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the training ended before the test could try a second one"
        assert_one_line_error(cli(capsys, *SMOKE, "--steps", "3", "--out", run, "--overwrite"),
                              "in use by another hybridlib process")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    stale = run / ".checkpoint.pt.k1lled00.tmp"  # what a kill during a save leaves behind
    stale.write_bytes(b"x" * 1000)
    step = load_checkpoint(run)["step"]
    code, out, _ = cli(capsys, *SMOKE, "--steps", str(step + 5), "--checkpoint-every", "5", "--out", run, "--resume")
    assert code == 0 and f"from step {step} to step {step + 5}" in out
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))


def test_stale_temporary_files_of_ours_are_removed_and_no_others(smoke_run, tmp_path, smoke_data):
    run = _copy_run(smoke_run, tmp_path / "run")
    ours = [run / ".checkpoint.pt.abcd1234.tmp", run / ".history.csv.x_y_z_12.tmp", run / ".config.json.q.tmp"]
    theirs = [run / ".notes.txt.abcd1234.tmp", run / "checkpoint.pt.tmp"]
    for path in ours + theirs:
        path.write_bytes(b"x")
    train(get_config("smoke", "generative", steps=10, checkpoint_every=5), run, resume=True, progress=False,
          data=smoke_data)
    assert not any(p.exists() for p in ours) and all(p.exists() for p in theirs)


def test_results_get_the_users_normal_permissions(tmp_path, smoke_data):
    umask = os.umask(0o027)
    try:
        train(get_config("smoke", "generative", steps=2), tmp_path / "run", progress=False, data=smoke_data)
    finally:
        os.umask(umask)
    for name in ("checkpoint.pt", "history.csv", "config.json", ".hybridlib-run"):
        assert stat.S_IMODE(os.stat(tmp_path / "run" / name).st_mode) == 0o640, name


# 4: evaluate checks where it will write before it works, and shows the table whatever happens


def test_evaluate_and_bench_check_their_output_before_any_work(smoke_run, tmp_path, capsys, monkeypatch):
    from hybridlib import cli as cli_mod

    def no_work(*args, **kwargs):
        raise AssertionError("evaluated before the output location was checked")

    monkeypatch.setattr(cli_mod, "evaluate_checkpoint", no_work)
    (tmp_path / "mine.json").write_text("mine")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    shutil.copy(smoke_run / "checkpoint.pt", foreign)
    cases = [
        (["--ckpt", smoke_run, "--out", tmp_path], "is a folder; give a file name"),
        (["--ckpt", smoke_run, "--out", tmp_path / "mine.json"], "already exists; pass --overwrite"),
        (["--ckpt", smoke_run, "--out", tmp_path / "mine.json" / "all.json"], "is a file, not a folder"),
        (["--ckpt", foreign / "checkpoint.pt"], "pass --out FILE for the results"),
        (["--ckpt", smoke_run, "--device", "banana"], "unknown device 'banana'"),
    ]
    for args, message in cases:
        assert_one_line_error(cli(capsys, "evaluate", *args, "--no-progress"), message)
    assert_one_line_error(cli(capsys, "bench", "--out", tmp_path / "mine.json"), "already exists; pass --overwrite")
    assert (tmp_path / "mine.json").read_text() == "mine" and sorted(os.listdir(foreign)) == ["checkpoint.pt"]

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), kwargs.get("dir"))

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)  # root ignores permissions: simulate a read-only disk
    assert_one_line_error(cli(capsys, "evaluate", "--ckpt", smoke_run, "--no-progress"),
                          f"hybridlib: error: {smoke_run}: Read-only file system")


def test_evaluate_prints_the_table_even_if_writing_fails(smoke_run, tmp_path, capsys, monkeypatch):
    from hybridlib import cli as cli_mod

    monkeypatch.setattr(cli_mod, "evaluate_checkpoint",
                        lambda path, **kwargs: {"linear_probe_acc": 0.875, "eval_time_s": 1.0})

    def disk_full(path, obj):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(cli_mod, "write_json", disk_full)
    code, out, err = cli(capsys, "evaluate", "--ckpt", smoke_run, "--out", tmp_path / "all.json", "--no-progress")
    assert code == 1 and "| generative | 0.875 |" in out
    assert err == [f"hybridlib: error: {tmp_path / 'all.json'}: No space left on device"]


# 5: no non-finite option, and no non-finite weights in a checkpoint or a finished run


@pytest.mark.parametrize("option, value", [("--lr", "inf"), ("--lr", "nan"), ("--lam", "inf"),
                                           ("--temperature", "-inf"), ("--temperature", "NaN")])
def test_non_finite_options_are_refused(capsys, option, value):
    assert_one_line_error(cli(capsys, *SMOKE, f"{option}={value}"), f"must be a finite number, got '{value}'", code=2)


def _nan_gradient_at_call(monkeypatch, n):
    """The n-th training step's loss stays finite but its gradient is NaN."""
    from hybridlib import losses

    real_forward, calls = losses.Objective.forward, {"n": 0}

    def forward(self, *args):
        calls["n"] += 1
        out = real_forward(self, *args)
        if calls["n"] == n:
            out["loss"].register_hook(lambda grad: grad * float("nan"))
        return out

    monkeypatch.setattr(losses.Objective, "forward", forward)


def test_a_nan_gradient_just_before_a_checkpoint_never_reaches_it(tmp_path, smoke_data, monkeypatch):
    _nan_gradient_at_call(monkeypatch, 8)  # step 7: the checkpoint of step 8 would hold NaN weights
    config = get_config("smoke", "generative", steps=12, checkpoint_every=4, log_every=2)
    with pytest.raises(NonFiniteLossError, match="weights became NaN or infinite between steps 6 and 8.*"
                                                 "last good checkpoint"):
        train(config, tmp_path, progress=False, data=smoke_data)
    state = load_checkpoint(tmp_path)  # which also checks that every weight is finite
    assert state["step"] == 4


def test_a_one_step_run_with_nan_weights_is_not_reported_as_done(tmp_path, capsys, monkeypatch):
    _nan_gradient_at_call(monkeypatch, 1)
    assert_one_line_error(cli(capsys, *SMOKE, "--steps", "1", "--out", tmp_path / "run"),
                          "weights became NaN or infinite between steps 0 and 1 (from the gradient); no checkpoint")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


# 6, 7, 8: a checkpoint from elsewhere is checked before anything is built, and refused in one line


def _set(section, key, value):
    def change(state):
        state["config"][section][key] = value
    return change


@pytest.mark.parametrize("change, message", [
    (_set("model", "n_head", 3), "d_model 32 is not divisible by n_head 3"),
    (_set("model", "n_head", 0), "n_head must be positive"),
    (_set("model", "vocab_size", 10**8), "vocab_size 100000000 and seq_len 16 must be the data's 256"),
    (_set("model", "d_model", 10**5), "parameters, more than 1e+09"),  # would be 1e11 floats
    (_set("data", "levels", 2), "must be the data's 16"),
    (_set("train", "lr", float("nan")), "lr must be a finite number"),
    (lambda s: s.update(config="hello"), "not a hybridlib configuration"),
    (lambda s: s.pop("model"), "holds no model weights"),
    (lambda s: s.pop("step"), "holds no valid step count"),
    (lambda s: s["model"].update({"head.weight": torch.zeros(3, 3)}),
     "tensor 'head.weight' has shape (3, 3), the configuration needs (256, 32)"),
    (lambda s: s["model"].pop("ln_f.bias"), "tensor 'ln_f.bias' is missing"),
    (lambda s: s["model"].update(extra=torch.zeros(1)), "unexpected tensor 'extra'"),
    (lambda s: s["model"]["tok_emb.weight"].__setitem__((0, 0), float("nan")),
     "holds NaN or infinite weights (first in 'tok_emb.weight')"),
], ids=["n_head3", "n_head0", "vocab1e8", "d_model1e5", "levels", "lr_nan", "config", "no_model", "no_step",
        "shape", "missing", "unexpected", "nan_weights"])
def test_a_checkpoint_from_elsewhere_is_one_line(smoke_run, tmp_path, capsys, change, message):
    state = torch.load(smoke_run / "checkpoint.pt", weights_only=True)
    change(state)
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(tmp_path / "checkpoint.pt")
    assert_one_line_error(cli(capsys, "evaluate", "--ckpt", tmp_path / "checkpoint.pt", "--out", tmp_path / "r.json"),
                          message)


def test_a_checkpoint_without_an_optimizer_evaluates_but_does_not_resume(smoke_run, tmp_path, smoke_data):
    run = _copy_run(smoke_run, tmp_path / "run")
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    del state["optimizer"]
    torch.save(state, run / "checkpoint.pt")
    load_model(run)
    with pytest.raises(CheckpointError, match="cannot resume .* it holds no optimizer; pass --overwrite"):
        train(get_config("smoke", "generative", steps=20, checkpoint_every=5), run, resume=True, progress=False,
              data=smoke_data)


def test_torchs_load_errors_are_one_line_and_never_suggest_unsafe_loading(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"format": 1, "config": {}, "payload": _Exploit()}, evil)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"PK" + bytes(range(256)) * 4)
    for path in (evil, garbage):
        with pytest.raises(CheckpointError, match="is not a loadable hybridlib checkpoint") as e:
            load_checkpoint(path)
        assert "\n" not in str(e.value) and "weights_only" not in str(e.value)


# 10, 13: ordinary mistakes on the command line are one line


@pytest.mark.parametrize("args, message", [
    (["--seed", "99999999999999999999999"], "seed must be below 2**32"),
    (["--seed", str(2**62)], "seed must be below 2**32"),
    (["--device", "banana"], "unknown device 'banana'; use cpu, cuda or cuda:N"),
    (["--out", "/dev/null"], "--out /dev/null is a file, not a folder"),
    (["--n-train", "0"], "must be positive, got 0"),
])
def test_ordinary_mistakes_are_one_line(capsys, args, message):
    status, _, err = cli(capsys, *SMOKE, *args)
    assert status != 0 and len(err) == 1 and message in err[0], err


def test_impossible_output_folders_are_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    cases = [
        (tmp_path / "file", "is a file, not a folder"),
        (tmp_path / "file" / "sub", f"lies under {tmp_path / 'file'}, which is a file"),
        (tmp_path / ("x" * 5000), "File name too long"),
        (tmp_path / "dangling", f"is a symbolic link to {tmp_path / 'gone'}, which does not exist"),
    ]
    for out, message in cases:
        assert_one_line_error(cli(capsys, *SMOKE, "--out", out), message)
    real_mkdir = Path.mkdir

    def no_permission(self, *args, **kwargs):  # root ignores permissions: simulate an unwritable parent
        if self.name == "locked":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", no_permission)
    assert_one_line_error(cli(capsys, *SMOKE, "--out", tmp_path / "locked"),
                          f"hybridlib: error: {tmp_path / 'locked'}: Permission denied")


def test_a_missing_gpu_is_one_line(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert_one_line_error(cli(capsys, *SMOKE, "--device", "cuda"), "CUDA is not available on this machine")


class _FullDisk:
    """A file that takes 2000 bytes, then fails as a full disk does."""

    def __init__(self, f):
        self.f, self.written = f, 0

    def write(self, data):
        self.written += len(data)
        if self.written > 2000:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.f.write(data)

    def flush(self):
        self.f.flush()


def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_last_one(tmp_path, capsys, monkeypatch):
    real_save, calls = torch.save, {"n": 0}

    def save_until_the_disk_is_full(obj, f):
        calls["n"] += 1
        real_save(obj, f if calls["n"] == 1 else _FullDisk(f))

    monkeypatch.setattr(torch, "save", save_until_the_disk_is_full)
    run = tmp_path / "run"
    assert_one_line_error(cli(capsys, *SMOKE, "--steps", "4", "--checkpoint-every", "2", "--log-every", "2", "--out",
                              run),
                          f"hybridlib: error: {run / 'checkpoint.pt'}: No space left on device; the previous "
                          "checkpoint.pt is kept")
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(run)["step"] == 2 and not list(run.glob(".*.tmp"))


def test_a_missing_checkpoint_names_the_folder_to_train_into(tmp_path, capsys):
    assert_one_line_error(cli(capsys, "evaluate", "--ckpt", tmp_path / "runs" / "x"),
                          f"no checkpoint at {tmp_path / 'runs' / 'x' / 'checkpoint.pt'}; train one with "
                          f"`python -m hybridlib train ... --out {tmp_path / 'runs' / 'x'}`")


def test_resuming_a_finished_run_to_fewer_steps_says_nothing_was_done(smoke_run, tmp_path, capsys):
    run = _copy_run(smoke_run, tmp_path / "run")
    before = (run / "checkpoint.pt").read_bytes()
    code, out, err = cli(capsys, *SMOKE, "--steps", "4", "--checkpoint-every", "5", "--out", run, "--resume")
    assert code == 0 and not err
    assert out.strip() == f"nothing to train: the run in {run} is already at step 10 (--steps 4); pass a larger " \
                          "--steps to continue it"
    assert (run / "checkpoint.pt").read_bytes() == before


def test_repeating_images_is_warned_about(tmp_path, capsys, smoke_data):
    code, _, err = cli(capsys, *SMOKE, "--steps", "1", "--n-train", "1", "--out", tmp_path / "one")
    assert code == 0 and err == ["hybridlib: warning: 1 training images for batches of 64: every batch repeats "
                                 "images (and contrastive negatives include copies of the positive); use a smaller "
                                 "--batch-size or a larger --n-train"]
    code, _, err = cli(capsys, *SMOKE, "--steps", "1", "--n-train", "5000", "--out", tmp_path / "many")
    assert code == 0 and err == ["hybridlib: warning: n_train 5000 is more than the 1347 training images of digits: "
                                 "all of them are used"]
    with pytest.warns(UserWarning, match="every batch repeats images"):
        train(get_config("smoke", "generative", steps=1, batch_size=1400), tmp_path / "api", progress=False,
              data=smoke_data)
