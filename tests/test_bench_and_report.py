import json

import nbformat
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from hybridlib.bench import NaiveAttention
from hybridlib.config import OBJECTIVES, ModelConfig, get_config
from hybridlib.flops import model_flops_per_step
from hybridlib.losses import Objective, nt_xent
from hybridlib.model import CausalSelfAttention, HybridTransformer
from hybridlib.report import markdown_table
from hybridlib.reproduce import scrub


def test_naive_reference_attention_matches_sdpa():
    cfg = ModelConfig(d_model=32, n_head=4, seq_len=9)
    torch.manual_seed(0)
    fast = CausalSelfAttention(cfg)
    x = torch.randn(3, 10, 32)
    assert torch.allclose(fast(x), NaiveAttention(fast, 10)(x), atol=1e-5)


def _counted_flops(fn) -> int:
    """FLOPs of the matmuls ``fn`` runs (mm, addmm, bmm, attention), as torch's FlopCounterMode counts them."""
    counter = FlopCounterMode(display=False)
    # the math backend: attention as explicit batched matmuls over all n x n scores (on the CPU, the fused
    # flash kernel has no FLOP formula and would count 0); the analytic count too takes causal attention in full
    with sdpa_kernel(SDPBackend.MATH), counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("objective, generative_input, head", [
    *[(o, "views", "joint") for o in OBJECTIVES], ("hybrid", "clean", "joint"), ("generative", "views", "pixels"),
    ("hybrid", "views", "pixels"), ("generative", "views", "pixels-wide")])
def test_flop_count_matches_a_counted_training_step(objective, generative_input, head):
    # 2 encoder blocks but 1 decoder block, a 16-wide projection of a 32-wide model: no two terms of the count coincide
    config = get_config("smoke", objective, batch_size=8, n_encoder_layers=2, proj_dim=16,
                        generative_input=generative_input, head=head.split("-")[0], head_width=3 if "wide" in head else 1)
    torch.manual_seed(0)
    module = Objective(HybridTransformer(config.model), config.train, config.data.dims_per_token)
    b, t, v = config.train.batch_size, config.model.seq_len, config.model.vocab_size
    clean, view1, view2 = torch.randint(0, v, (3, b, t))
    inputs = (clean, None, None) if objective == "generative" else (clean, view1, view2)
    step = _counted_flops(lambda: module(*inputs)["loss"].backward())
    # The analytic count is the model's: the loss's one matmul, NT-Xent's (2b x 2b) similarity of the projections,
    # is counted here on its own and comes on top; embeddings, norms and the softmax are no matmuls in either count.
    z = torch.randn(2, b, config.model.proj_dim, requires_grad=True)
    loss = 0 if objective == "generative" else _counted_flops(
        lambda: nt_xent(z[0], z[1], config.train.temperature).backward())
    assert loss < 0.01 * step
    # the two agree exactly (integers); the tolerance only allows for float rounding of the analytic count
    assert step - loss == pytest.approx(model_flops_per_step(config), rel=1e-9)


def _fake_models(**over):
    base = {"linear_probe_acc": 0.7, "knn_acc": 0.6, "ood_auroc_near": 0.8, "ood_auroc_far": 0.99, "corruption_acc_mean": 0.5, "ece": 0.02,
            "test_bits_per_dim": 1.0}
    models = {n: dict(base) for n in ("contrastive", "generative", "hybrid", "raw_pixels", "random_init")}
    for key, value in over.items():
        name, metric = key.split("__")
        models[name][metric] = value
    return models


def test_markdown_table_has_a_row_per_model():
    table = markdown_table(_fake_models())
    assert table.count("\n") == 6 and "| raw_pixels |" in table


def test_scrub_removes_volatile_metadata():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    nb.metadata["papermill"] = {"duration": 3.2}
    nb.metadata["widgets"] = {"state": {}}
    nb.cells[0].metadata["papermill"] = {"duration": 1.0}
    nb.cells[0].metadata["execution"] = {"iopub.status.busy": "2026"}
    nb.cells[0].outputs = [
        nbformat.v4.new_output("display_data", data={
            "text/plain": "  0%|  | 0/300", "application/vnd.jupyter.widget-view+json": {"model_id": "x"}}),
        nbformat.v4.new_output("stream", text="300 steps\n"),
    ]
    out = scrub(nb)
    assert "papermill" not in out.metadata and "widgets" not in out.metadata
    assert out.cells[0].metadata == {} and [o["output_type"] for o in out.cells[0].outputs] == ["stream"]


@pytest.mark.slow
def test_bench_quick_runs_and_writes_json(tmp_path):
    from hybridlib.bench import run_benchmarks

    rows = run_benchmarks(out=tmp_path / "bench.json", quick=True, objectives=("generative",), heads=("joint",))
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved == rows
    for key in ("case", "objective", "profile", "device", "img_per_s", "reference_img_per_s", "speedup", "mfu",
                "peak_mem_mb", "reference_mfu", "speedup_at_full_mfu", "compiled", "first_step_s_cold",
                "first_step_s_warm", "gflop_per_image"):
        assert key in saved[0]
    assert saved[0]["img_per_s"] > 0 and 0 < saved[0]["mfu"] < 1 and 0 < saved[0]["reference_mfu"] < 1
    assert saved[0]["compiled"] == get_config("cpu", "generative").train.compile
    # the second run finds the first one's kernels in the compile cache
    assert saved[0]["first_step_s_warm"] < saved[0]["first_step_s_cold"]
    assert saved[0]["eval_s"] is None or saved[0]["eval_s"] > 0  # None: Fashion-MNIST is not on this machine


def test_bench_times_an_evaluation_on_the_profiles_data(smoke_data, monkeypatch):
    from hybridlib import bench

    monkeypatch.setattr(bench, "_prepared", lambda config: smoke_data)
    assert bench._eval_seconds(get_config("smoke", "hybrid"), "cpu", quick=True) > 0

    def missing(config):
        raise bench.DataError("not on disk")

    monkeypatch.setattr(bench, "_prepared", missing)
    assert bench._eval_seconds(get_config("smoke", "hybrid"), "cpu", quick=True) is None


@pytest.mark.parametrize("head", ["joint", "pixels"])
def test_a_bench_case_times_each_head(head):
    """One case in this process at the smoke profile's shapes (not compiled: seconds): the step of either head."""
    from hybridlib.bench import _run_case

    case = _run_case("hybrid", "smoke", head, False, "cpu", True)
    assert case["img_per_s"] > 0 and case["flops_per_step"] == model_flops_per_step(get_config("smoke", "hybrid",
                                                                                               head=head))


def test_the_recipe_step_is_timed_against_the_baseline_in_each_precision(monkeypatch):
    from hybridlib import bench, config

    monkeypatch.setitem(config.RECIPE_BASELINES, "smoke", {"train": {"optimizer": "adamw"}})
    monkeypatch.setattr(config, "_profile", _smoke_with_muon(config._profile))
    timed = []

    def fake_throughputs(configs, device_name, rounds, quick):
        timed.append({name: (c.train.optimizer, c.train.precision) for name, c in configs.items()})
        return {"old": 100.0, "new": 80.0}

    monkeypatch.setattr(bench, "recipe_throughputs", fake_throughputs)
    monkeypatch.setattr(bench, "autocast_dtype", lambda precision, device: torch.bfloat16)
    out = bench.recipe_step_ratios(["smoke"], quick=True, objectives=("generative",))
    assert timed == [{"old": ("adamw", p), "new": ("muon", p)} for p in ("fp32", "bf16")]
    assert [(r["precision"], r["ratio"]) for r in out["rows"]] == [("fp32", 0.8), ("bf16", 0.8)]
    assert out["cpu"] and out["torch"] == torch.__version__
    monkeypatch.setattr(bench, "autocast_dtype", lambda precision, device: None)  # an fp32 machine: fp32 only
    assert [r["precision"] for r in bench.recipe_step_ratios(["smoke"], True, ("generative",))["rows"]] == ["fp32"]


def _smoke_with_muon(profile):
    from dataclasses import replace

    def patched(name):
        c = profile(name)
        return replace(c, train=replace(c.train, optimizer="muon")) if name == "smoke" else c
    return patched
