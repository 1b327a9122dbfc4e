import json

import nbformat
import pytest
import torch

from hybridlib.bench import NaiveAttention
from hybridlib.flops import model_flops_per_step
from hybridlib.config import ModelConfig, get_config
from hybridlib.model import CausalSelfAttention
from hybridlib.report import markdown_table
from hybridlib.reproduce import scrub


def test_naive_reference_attention_matches_sdpa():
    cfg = ModelConfig(d_model=32, n_head=4, seq_len=9)
    torch.manual_seed(0)
    fast = CausalSelfAttention(cfg)
    x = torch.randn(3, 10, 32)
    assert torch.allclose(fast(x), NaiveAttention(fast, 10)(x), atol=1e-5)


def test_flop_count_by_hand():
    c = get_config("smoke", "generative", batch_size=2)
    m = c.model  # d=32, 1+1 blocks, T=16, V=256
    n, d = 17, 32
    block = n * (24 * d * d + 4 * n * d)
    assert model_flops_per_step(c) == 3 * 2 * (2 * block + 2 * 16 * d * 256)  # 2 images
    hybrid = get_config("smoke", "hybrid", batch_size=2)  # 2 images, 2 views each
    assert model_flops_per_step(hybrid) == 3 * 2 * 2 * (2 * block + 2 * 16 * d * 256 + 2 * (d * d + d * m.proj_dim))


def _fake_models(**over):
    base = {"linear_probe_acc": 0.7, "knn_acc": 0.6, "ood_auroc_mean": 0.8, "corruption_acc_mean": 0.5, "ece": 0.02,
            "ood_best_score": "knn_distance", "test_bits_per_dim": 1.0}
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

    rows = run_benchmarks(out=tmp_path / "bench.json", quick=True, objectives=("generative",))
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
