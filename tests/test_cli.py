import json
import subprocess

import pytest
import torch

from hybridlib.errors import ConfigError

from conftest import cli, python_cmd, subprocess_env


def run(*args):
    """``python -m hybridlib ARGS`` in a new interpreter (a CompletedProcess: returncode, stdout, stderr)."""
    return subprocess.run(python_cmd("-m", "hybridlib", *args), capture_output=True, text=True, env=subprocess_env())


# What the command line says, in this process (each interpreter started pays for importing torch); that
# the process exits with the status and the one line is tested below, once for each kind of exit.
@pytest.mark.parametrize("args, message, code", [
    (["train", "--objective", "jigsaw", "--profile", "smoke"], "choose from 'contrastive', 'generative', 'hybrid'", 2),
    (["train", "--objective", "hybrid", "--profile", "laptop"],
     "choose from 'smoke', 'cpu', 'gpu-small', 'gpu', 'auto'", 2),
    (["train", "--objective", "hybrid", "--steps", "0"], "must be positive, got 0", 2),
    (["train", "--objective", "hybrid", "--batch-size", "-2"], "must be positive, got -2", 2),
    (["train", "--objective", "hybrid", "--steps", "ten"], "'ten' is not an integer", 2),
    (["train", "--objective", "hybrid", "--dataset", "imagenet"], "choose from 'digits'", 2),
    (["evaluate", "--ckpt", "/no/such/checkpoint.pt"], "no checkpoint at /no/such/checkpoint.pt", 1),
    (["fetch-data", "imagenet"], "choose from 'digits'", 2),
    pytest.param(["bench", "--profiles", "gpu"], "needs CUDA", 1, marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="CUDA is present")),
])
def test_bad_input_is_one_line_and_a_non_zero_exit(capsys, args, message, code):
    status, _, err = cli(capsys, *args)
    assert status == code and len(err) == 1 and message in err[0], err


@pytest.mark.parametrize("args, code, message", [
    pytest.param(["evaluate", "--ckpt", "/no/such/checkpoint.pt"], 1,
                 "hybridlib: error: no checkpoint at /no/such/checkpoint.pt", id="error", marks=pytest.mark.slow),
    pytest.param(["train", "--objective", "jigsaw"], 2,
                 "hybridlib train: error: argument --objective: invalid choice: 'jigsaw'", id="usage"),
])
def test_the_process_exits_with_the_status_and_one_line_on_stderr(args, code, message):
    result = run(*args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code and result.stdout == "", result.stdout
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.slow
def test_train_refuse_resume_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "--objective", "hybrid", "--profile", "smoke", "--out", str(out), "--no-progress"]
    code, stdout, err = cli(capsys, *base, "--steps", "10")
    assert code == 0 and "to step 10" in stdout, err
    code, _, err = cli(capsys, *base, "--steps", "10")
    assert code == 1 and "already holds a run" in "\n".join(err)
    code, stdout, err = cli(capsys, *base, "--steps", "20", "--resume")
    assert code == 0 and "to step 20" in stdout, err
    code, _, err = cli(capsys, "evaluate", "--ckpt", str(out / "checkpoint.pt"), "--no-progress")
    assert code == 0, err
    results = json.loads((out / "evaluation.json").read_text())
    assert results["objective"] == "hybrid" and 0 <= results["linear_probe_acc"] <= 1
    code, stdout, err = cli(capsys, "evaluate", "--ckpt", str(out), "--baselines", "--out", str(tmp_path / "all.json"),
                            "--no-progress")
    assert code == 0, err
    assert "| hybrid |" in stdout and "| raw_pixels |" in stdout and "| random_init |" in stdout
    assert set(json.loads((tmp_path / "all.json").read_text())["models"]) == {"hybrid", "raw_pixels", "random_init"}


@pytest.mark.parametrize("command, study", [("ablations", "run_ablations"), ("heads", "compare_heads")])
def test_the_studies_run_at_the_budget_given_by_steps(capsys, monkeypatch, command, study):
    """`make ablations` and `make heads` pass --steps 500 (the budget of the committed cpu tables)."""
    seen = []

    def record(config, **kwargs):
        seen.append(config.train.steps)
        raise ConfigError("stop here")  # the budget it was given is all this test asks about

    monkeypatch.setattr(f"hybridlib.cli.{study}", record)
    for args in ([], ["--steps", "7"]):
        assert cli(capsys, command, "--profile", "smoke", *args)[2] == ["hybridlib: error: stop here"]
    assert seen == [40, 7]  # the smoke profile's own budget, then the one given


def test_the_old_studies_keep_the_recipe_they_ran_on_unless_asked():
    from hybridlib.cli import _study_config, build_parser
    from hybridlib.config import get_config, recipe_baseline

    args = build_parser().parse_args(["scaling", "--profile", "cpu"])
    assert _study_config(args) == recipe_baseline(get_config("cpu", "hybrid"))
    args = build_parser().parse_args(["ablations", "--profile", "cpu", "--steps", "500"])
    assert _study_config(args, steps=args.steps).train.optimizer == "adamw"
    args = build_parser().parse_args(["heads", "--profile", "cpu", "--recipe", "profile", "--steps", "500"])
    assert _study_config(args, seed=args.seed, steps=args.steps) == get_config("cpu", "hybrid", steps=500)
