"""Precision, compilation and the profile choice by hardware, every branch on the CPU.

A GPU's capability is simulated by monkeypatching what the code asks of ``torch.cuda``; fp16 with
a gradient scaler really runs on the CPU (torch's CPU autocast and GradScaler support it).
"""
import json
import runpy
import sys
from types import SimpleNamespace

import pytest
import torch

from hybridlib import config as config_module, flops, hardware, step as step_module, train as train_module
from hybridlib.checkpoint import load_checkpoint
from hybridlib.config import OBJECTIVES, get_config, resolve_profile
from hybridlib import cli
from hybridlib.errors import CheckpointError, ConfigError, InputError, NonFiniteLossError
from hybridlib.model import HybridTransformer
from hybridlib.hardware import autocast_dtype, can_compile, grad_scaler
from hybridlib.train import ensure_trained, train

from conftest import REPO, state_dicts_equal

CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")


def _gpu(monkeypatch, capability, memory_gb=16.0):
    """Pretend to have one CUDA GPU of this compute capability and memory."""
    major, minor = capability
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: SimpleNamespace(
        major=major, minor=minor, total_memory=memory_gb * 1e9, name="simulated"))


@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float16), ((8, 0), torch.bfloat16),
                                                  ((9, 0), torch.bfloat16)])
def test_auto_precision_on_a_gpu_follows_its_capability(monkeypatch, capability, expected):
    _gpu(monkeypatch, capability)
    assert autocast_dtype("auto", CUDA) == expected
    assert autocast_dtype("fp16", CUDA) == torch.float16
    assert autocast_dtype("fp32", CUDA) is None


def test_bf16_is_refused_on_a_gpu_without_it(monkeypatch):
    _gpu(monkeypatch, (7, 5))
    with pytest.raises(ConfigError, match="compute capability 7.5.*fp16"):
        autocast_dtype("bf16", CUDA)


@pytest.mark.parametrize("native, bf16_peak, expected", [
    (True, 2.3, True),  # AVX512-BF16 on an AMD EPYC: bf16 matmuls 2.3x fp32's
    (True, 0.6, False),  # a virtual machine exposing AVX512-BF16 whose bf16 matmuls are slower than fp32
    (True, 1.2, False),  # not clearly faster
    (False, 2.3, False),  # no bf16 kernels: never, whatever a timing says
])
def test_auto_precision_on_a_cpu_takes_bf16_only_where_it_is_native_and_faster(monkeypatch, tmp_path, native,
                                                                                bf16_peak, expected):
    monkeypatch.setenv("HYBRIDLIB_CACHE", str(tmp_path))  # nothing measured on this "machine" yet
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: native)
    monkeypatch.setattr(hardware, "matmul_peak", lambda dtype, device, size=None:
                        bf16_peak if dtype == torch.bfloat16 else 1.0)
    hardware.cpu_bf16_is_faster.cache_clear()
    try:
        assert hardware.cpu_bf16_is_faster() is expected
        assert autocast_dtype("auto", CPU) == (torch.bfloat16 if expected else None)
        assert autocast_dtype("bf16", CPU) == torch.bfloat16  # asked for explicitly: emulated if need be
    finally:
        hardware.cpu_bf16_is_faster.cache_clear()  # the real machine's answer for the tests after this one


def test_the_cpu_precision_is_measured_once_per_machine_and_then_remembered(monkeypatch, tmp_path):
    """A second process on the same machine reads the first one's choice instead of timing again: under load a
    timing flips around the threshold, and the same seed would train in another precision."""
    monkeypatch.setenv("HYBRIDLIB_CACHE", str(tmp_path))
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setattr(hardware, "matmul_peak", lambda dtype, device, size=None: 2.0 if dtype == torch.bfloat16 else 1.0)
    hardware.cpu_bf16_is_faster.cache_clear()
    try:
        assert hardware.cpu_bf16_is_faster() is True
        saved = json.loads((tmp_path / "hardware.json").read_text())
        assert [v["bf16_faster"] for v in saved.values()] == [True]

        def loaded_machine(dtype, device, size=None):
            return 0.5 if dtype == torch.bfloat16 else 1.0  # the same machine, timed while busy

        monkeypatch.setattr(hardware, "matmul_peak", loaded_machine)
        hardware.cpu_bf16_is_faster.cache_clear()  # a new process
        assert hardware.cpu_bf16_is_faster() is True
    finally:
        hardware.cpu_bf16_is_faster.cache_clear()


def test_unknown_precision_is_one_clear_error():
    with pytest.raises(ConfigError, match="choose one of: auto, fp32, bf16, fp16"):
        autocast_dtype("fp8", CPU)
    with pytest.raises(ConfigError, match="unknown precision"):
        get_config("smoke", precision="half")


def test_the_gradient_scaler_is_on_for_fp16_only():
    assert grad_scaler(torch.float16, CPU).is_enabled()
    assert not grad_scaler(torch.bfloat16, CPU).is_enabled()
    assert not grad_scaler(None, CPU).is_enabled()


@pytest.mark.parametrize("capability, memory_gb, expected", [
    ((7, 5), 16, "gpu-small"),  # a T4
    ((8, 6), 24, "gpu-small"),  # a 24 GB card
    ((12, 0), 32, "gpu-small"),  # a 32 GB card: the gpu profile's hybrid alone allocates 31 GB
    ((7, 0), 32, "gpu-small"),  # a V100: no bf16
    ((8, 0), 40, "gpu"),  # an A100
    ((9, 0), 80, "gpu"),  # an H100
])
def test_auto_profile_on_a_gpu_follows_its_size_and_capability(monkeypatch, capability, memory_gb, expected):
    _gpu(monkeypatch, capability, memory_gb)
    assert resolve_profile("auto") == expected


def test_auto_profile_without_cuda_is_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_profile("auto") == "cpu"


@pytest.mark.parametrize("capability, triton, expected", [((7, 5), True, True), ((6, 1), True, False),
                                                          ((9, 0), False, False)])
def test_compiling_on_cuda_needs_triton_and_a_supported_gpu(monkeypatch, capability, triton, expected):
    _gpu(monkeypatch, capability)
    monkeypatch.setattr(hardware, "has_triton", lambda: triton)
    assert can_compile(CUDA) is expected


@pytest.mark.slow
def test_fp16_with_loss_scaling_trains_and_resumes_exactly(tmp_path, smoke_data):
    config = get_config("smoke", "hybrid", steps=8, checkpoint_every=4, log_every=4, precision="fp16")
    full = train(config, tmp_path / "full", progress=False, data=smoke_data, device="cpu")
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in full.history)
    state = load_checkpoint(tmp_path / "full")
    assert state["scaler"]["scale"] > 0  # the scaler's state is in the checkpoint

    train(get_config("smoke", "hybrid", steps=4, checkpoint_every=4, log_every=4, precision="fp16"),
          tmp_path / "split", progress=False, data=smoke_data, device="cpu")
    resumed = train(config, tmp_path / "split", resume=True, progress=False, data=smoke_data, device="cpu")
    assert state_dicts_equal(full.model.state_dict(), resumed.model.state_dict())
    assert load_checkpoint(tmp_path / "split")["scaler"] == state["scaler"]


class _BrokenBackward(torch.autograd.Function):
    """Identity forward; a backward that fails like a kernel the compiler got wrong."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("shape '[2050, 384]' is invalid for input of size 2")


def _compile_that_fails(where):
    def fake_compile(module, **kwargs):
        def compiled(*args):
            if where == "forward":
                raise RuntimeError("triton: bf16 is not supported on this GPU")
            out = dict(module(*args))
            out["loss"] = _BrokenBackward.apply(out["loss"])
            return out
        return compiled
    return fake_compile


@pytest.mark.parametrize("where", ["forward", "backward"])
@pytest.mark.slow
def test_a_failing_compile_warns_once_and_trains_eagerly(tmp_path, smoke_data, monkeypatch, where):
    eager = train(get_config("smoke", "hybrid", steps=6, log_every=3), tmp_path / "eager", progress=False,
                  data=smoke_data, device="cpu")
    monkeypatch.setattr(step_module, "can_compile", lambda device: True)
    monkeypatch.setattr(torch, "compile", _compile_that_fails(where))
    with pytest.warns(UserWarning, match="torch.compile failed") as caught:
        broken = train(get_config("smoke", "hybrid", steps=6, log_every=3, compile=True), tmp_path / "broken",
                       progress=False, data=smoke_data, device="cpu")
    assert sum("torch.compile failed" in str(w.message) for w in caught) == 1
    assert state_dicts_equal(eager.model.state_dict(), broken.model.state_dict())


def _compile_failing_at_call(n, error):
    """A stand-in for torch.compile whose module works until its ``n``-th call, which raises ``error``."""
    def fake_compile(module, **kwargs):
        calls = {"n": 0}

        def compiled(*args):
            calls["n"] += 1
            if calls["n"] == n:
                raise error
            return module(*args)
        return compiled
    return fake_compile


@pytest.mark.parametrize("n, error", [(3, RuntimeError("an illegal memory access was encountered")),
                                      (1, InputError("tokens must be integers"))])
def test_only_a_first_compiled_step_falls_back_and_our_errors_never_do(tmp_path, smoke_data, monkeypatch, n, error):
    """Once a compiled step has run, a failure is real (no eager retry on a broken device); a bad input
    is ours to report, not a compiler's failure."""
    monkeypatch.setattr(step_module, "can_compile", lambda device: True)
    monkeypatch.setattr(torch, "compile", _compile_failing_at_call(n, error))
    with pytest.raises(type(error), match=str(error)):
        train(get_config("smoke", "hybrid", steps=6, log_every=3, compile=True), tmp_path / "run", progress=False,
              data=smoke_data, device="cpu")


@pytest.mark.slow
def test_fp16_overflowing_at_every_step_is_an_error_not_a_finished_run(tmp_path, smoke_data, monkeypatch):
    """fp16 loss scaling skips steps with NaN or infinite gradients, so the weights stay finite: the
    collapsing loss scale is what shows that the run stopped learning."""
    class NaNGradients(HybridTransformer):
        def __init__(self, cfg):
            super().__init__(cfg)
            for p in self.parameters():
                p.register_hook(lambda g: torch.full_like(g, float("nan")))

    monkeypatch.setattr(train_module, "HybridTransformer", NaNGradients)
    with pytest.raises(NonFiniteLossError, match="fp16 gradients overflowed.*--precision fp32"):
        train(get_config("smoke", "generative", steps=40, log_every=5, precision="fp16"), tmp_path / "run",
              progress=False, data=smoke_data, device="cpu")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()  # the first checkpoint (step 20) came after it


@pytest.mark.slow
def test_a_missing_model_is_trained_with_a_time_estimate_or_refused_by_name(smoke_data, capsys):
    config = get_config("smoke", "generative", seed=7)
    with pytest.raises(CheckpointError, match="no finished generative model.*03_generative"):
        ensure_trained(config, smoke_data, train_missing=False)
    run = ensure_trained(config, smoke_data, progress=False)
    assert run.step == config.train.steps
    assert "training it here (the run of notebooks/03_generative.ipynb, from step 0), roughly" in capsys.readouterr().out
    again = ensure_trained(config, smoke_data, progress=False)  # now found: no note, the same weights
    assert "training it here" not in capsys.readouterr().out
    assert all(torch.equal(a, b) for a, b in zip(run.model.state_dict().values(), again.model.state_dict().values()))


def test_the_cli_resumes_its_default_run_folder_with_more_steps(capsys):
    args = ["train", "--objective", "generative", "--profile", "smoke", "--seed", "8", "--no-progress"]
    assert cli.main([*args, "--steps", "4"]) == 0
    assert cli.main([*args, "--steps", "6", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "from step 4 to step 6" in out and "runs/smoke/seed8/generative/checkpoint.pt" in out


def test_the_small_gpu_profiles_arithmetic_fits_a_class_slot_on_a_t4():
    """At an assumed 25 % of a T4's 65 TFLOP/s fp16 peak each training notebook's training takes at most 8
    minutes, and the full gpu profile's three objectives about an hour on an A100 (an estimate, by the
    FLOP count; docs/profiles.md)."""
    small = {o: flops.estimate_train_minutes(get_config("gpu-small", o), 65e12) for o in OBJECTIVES}
    assert max(small.values()) <= 8 and sum(small.values()) <= 15
    full = sum(flops.estimate_train_minutes(get_config("gpu", o), 312e12) for o in OBJECTIVES)
    assert 40 <= full <= 70


def test_the_gpu_profiles_keep_the_controlled_comparison():
    """Both GPU profiles train the three objectives on the same data, model and budget."""
    for profile in config_module.GPU_PROFILES:
        configs = [get_config(profile, o) for o in OBJECTIVES]
        assert len({(c.data, c.model) for c in configs}) == 1
        assert len({(c.train.steps, c.train.batch_size, c.train.lr) for c in configs}) == 1


@pytest.mark.slow
def test_gpu_check_runs_end_to_end_on_the_cpu(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--device", "cpu", "--train", "smoke", "--fp16", "smoke",
                                      "--bench", "--steps", "4", "--fp16-steps", "2", "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "tools" / "gpu_check.py"), run_name="__main__")
    assert exit_info.value.code == 0
    report = (tmp_path / "gpu_check.md").read_text()
    assert "| smoke | bfloat16 |" in report or "| smoke | float32 |" in report
    assert "| smoke | float16 |" in report and "FAILED" not in report
    assert (tmp_path / "loss_curves.png").stat().st_size > 0
