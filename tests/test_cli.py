import json
import subprocess

import pytest
import torch

from conftest import python_cmd, subprocess_env


def run(*args, check=False):
    return subprocess.run(python_cmd("-m", "hybridlib", *args), capture_output=True, text=True, env=subprocess_env())


@pytest.mark.parametrize("args, message", [
    (["train", "--objective", "jigsaw", "--profile", "smoke"], "choose from 'contrastive', 'generative', 'hybrid'"),
    (["train", "--objective", "hybrid", "--profile", "laptop"], "choose from 'smoke', 'cpu', 'gpu-small', 'gpu', 'auto'"),
    (["train", "--objective", "hybrid", "--steps", "0"], "must be positive, got 0"),
    (["train", "--objective", "hybrid", "--batch-size", "-2"], "must be positive, got -2"),
    (["train", "--objective", "hybrid", "--steps", "ten"], "'ten' is not an integer"),
    (["train", "--objective", "hybrid", "--dataset", "imagenet"], "choose from 'digits'"),
    (["evaluate", "--ckpt", "/no/such/checkpoint.pt"], "no checkpoint at /no/such/checkpoint.pt"),
    (["fetch-data", "imagenet"], "choose from 'digits'"),
    pytest.param(["bench", "--profiles", "gpu"], "needs CUDA", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="CUDA is present")),
])
def test_bad_input_is_one_line_and_a_non_zero_exit(args, message):
    result = run(*args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_train_refuse_resume_evaluate(tmp_path):
    out = tmp_path / "run"
    base = ["train", "--objective", "hybrid", "--profile", "smoke", "--out", str(out), "--no-progress"]
    first = run(*base, "--steps", "10")
    assert first.returncode == 0 and "to step 10" in first.stdout, first.stderr
    again = run(*base, "--steps", "10")
    assert again.returncode == 1 and "already holds a run" in again.stderr
    more = run(*base, "--steps", "20", "--resume")
    assert more.returncode == 0 and "to step 20" in more.stdout
    evaluated = run("evaluate", "--ckpt", str(out / "checkpoint.pt"), "--no-progress")
    assert evaluated.returncode == 0, evaluated.stderr
    results = json.loads((out / "evaluation.json").read_text())
    assert results["objective"] == "hybrid" and 0 <= results["linear_probe_acc"] <= 1
    table = run("evaluate", "--ckpt", str(out), "--baselines", "--out", str(tmp_path / "all.json"), "--no-progress")
    assert table.returncode == 0, table.stderr
    assert "| hybrid |" in table.stdout and "| raw_pixels |" in table.stdout and "| random_init |" in table.stdout
    assert set(json.loads((tmp_path / "all.json").read_text())["models"]) == {"hybrid", "raw_pixels", "random_init"}
