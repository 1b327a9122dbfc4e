"""One prepared check of the GPU paths on any CUDA machine, with no network.

    python tools/gpu_check.py                      # on a CUDA machine: writes results/gpu-check/
    python tools/gpu_check.py --device cpu --train smoke --fp16 smoke --bench smoke --steps 6 --out /tmp/x  # dry run

For each GPU profile it trains the hybrid (the heaviest objective) for a few hundred steps at the
profile's precision (bf16 on Ampere and newer), then the small-GPU profile once more in fp16 with
loss scaling (the path of a T4), and finally runs `make bench`'s cases for those profiles. It writes
``gpu_check.json`` (every number), ``gpu_check.md`` (the table), ``loss_curves.png`` and
``bench-PROFILE.json``.

Data: the profiles' CIFAR-10 when it is in ``data/`` (see data/README.md for where to put it),
else the first data set present of Fashion-MNIST and scikit-learn's digits, at the profile's
resolution; the shapes that cost time (tokens per image, width, depth, batch) are the profile's
either way, only the vocabulary of the output head differs. Each phase is timed and recorded; a
failing phase (a training run whose compiling fell back to eager counts as failing) is recorded and
the next one runs; phases that would start after ``--deadline``
seconds are skipped, so a time-limited machine still returns what finished.
"""
from __future__ import annotations

import argparse
import functools
import json
import platform
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
from hybridlib.bench import run_benchmarks  # noqa: E402
from hybridlib.config import GPU_PROFILES, OBJECTIVES, get_config  # noqa: E402
from hybridlib.data import load_dataset, prepare_data  # noqa: E402
from hybridlib.errors import DataError  # noqa: E402
from hybridlib.flops import model_flops_per_step  # noqa: E402
from hybridlib.paths import results_dir, runs_dir  # noqa: E402
from hybridlib.hardware import autocast_dtype, matmul_peak  # noqa: E402
from hybridlib.train import train  # noqa: E402


@functools.cache  # each phase asks; loading a data set once is enough
def available_dataset(preferred: str) -> str:
    """``preferred`` if it is on disk, else the first of Fashion-MNIST and digits that is (never downloads)."""
    for name in (preferred, "fashion-mnist", "digits"):
        try:
            load_dataset(name, download=False)
            return name
        except DataError:
            continue
    return "digits"  # embedded in scikit-learn: always there


def device_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, capability=f"{props.major}.{props.minor}",
                    memory_gb=round(props.total_memory / 1e9, 1), cuda=torch.version.cuda)
    else:
        info.update(name=platform.processor() or platform.machine())
    return info


def train_phase(profile: str, device: torch.device, steps: int, precision: str, dataset: str,
                out: Path) -> dict[str, Any]:
    """Train the hybrid of ``profile`` for ``steps`` steps: images/s, MFU, peak memory, the loss history."""
    config = get_config(profile, "hybrid", steps=steps, precision=precision, dataset=dataset,
                        log_every=max(1, steps // 30), checkpoint_every=steps, warmup_steps=max(1, steps // 10))
    data = prepare_data(config.data)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(config, out / f"{profile}-{precision}", overwrite=True, progress=False, device=device,
                       data=data)
    wall = time.perf_counter() - t0
    fell_back = [str(w.message) for w in caught if "torch.compile failed" in str(w.message)]
    if fell_back:  # the run finished, but eagerly: the compiled path this check is for did not work
        raise RuntimeError(fell_back[0])
    dtype = autocast_dtype(precision, device) or torch.float32
    steady = [r["img_per_s"] for r in result.history[len(result.history) // 3:]]  # after compiling and warm-up
    img_per_s = sorted(steady)[len(steady) // 2]
    flops_per_image = model_flops_per_step(config) / config.train.batch_size
    peak = matmul_peak(dtype, device)
    return {
        "profile": profile, "precision": precision, "dtype": str(dtype).replace("torch.", ""), "dataset": dataset,
        "steps": steps, "batch_size": config.train.batch_size,
        "compiled": config.train.compile and not any("torch.compile needs" in str(w.message) for w in caught),
        "tokens_per_image": config.model.seq_len,
        "wall_s": round(wall, 1), "first_log_s": round(result.history[0]["elapsed_s"], 1),
        "img_per_s": round(img_per_s, 1), "gflop_per_image": round(flops_per_image / 1e9, 2),
        "mfu": round(img_per_s * flops_per_image / peak, 3), "peak_tflop_per_s": round(peak / 1e12, 1),
        "peak_mem_gb": round(torch.cuda.max_memory_allocated(device) / 1e9, 2) if device.type == "cuda" else None,
        "first_loss": round(result.history[0]["loss"], 4), "final_loss": round(result.history[-1]["loss"], 4),
        "history": [{k: r[k] for k in ("step", "loss", "img_per_s") if k in r} for r in result.history],
    }


def loss_figure(runs: list[dict[str, Any]], path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for run in runs:
        label = f"{run['profile']} ({run['dtype']})"
        steps = [r["step"] for r in run["history"]]
        axes[0].plot(steps, [r["loss"] for r in run["history"]], label=label)
        axes[1].plot(steps, [r["img_per_s"] for r in run["history"]], label=label)
    axes[0].set(xlabel="step", ylabel="hybrid training loss", title="loss")
    axes[1].set(xlabel="step", ylabel="images / s", title="throughput (first interval includes compiling)")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(report: dict[str, Any]) -> str:
    info = report["machine"]
    lines = [f"# GPU check: {info.get('name')} (compute capability {info.get('capability', '-')}, "
             f"{info.get('memory_gb', '-')} GB), torch {info['torch']}", "",
             "Hybrid training, a few hundred steps per profile (`tools/gpu_check.py`):", "",
             "| profile | dtype | data | steps | img/s | GFLOP/img | MFU | peak mem GB | loss first → last | wall s |",
             "|---|---|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in report["training"]:
        lines.append(f"| {r['profile']} | {r['dtype']} | {r['dataset']} | {r['steps']} | {r['img_per_s']} | "
                     f"{r['gflop_per_image']} | {100 * r['mfu']:.1f} % of {r['peak_tflop_per_s']} TFLOP/s | "
                     f"{r['peak_mem_gb']} | {r['first_loss']} → {r['final_loss']} | {r['wall_s']} |")
    if report.get("bench"):
        lines += ["", "`make bench` cases (ours vs the naive fp32 reference):", "",
                  "| case | dtype | img/s | reference img/s | speedup | MFU | peak mem MB | first step s, cold / warm |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in report["bench"]:
            lines.append(f"| {r['case']} | {r['dtype']} | {r['img_per_s']} | {r['reference_img_per_s']} | "
                         f"{r['speedup']} | {100 * r['mfu']:.1f} % | {r['peak_mem_mb']:.0f} | "
                         f"{r['first_step_s_cold']} / {r['first_step_s_warm']} |")
    for phase, error in report["failed"].items():
        lines.append(f"\nFAILED {phase}: {error}")
    for phase in report["skipped"]:
        lines.append(f"\nSKIPPED {phase} (past the deadline)")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> None:
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="default: results/gpu-check")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--train", nargs="*", default=list(GPU_PROFILES), help="profiles to train (hybrid)")
    parser.add_argument("--steps", type=int, default=300, help="training steps per profile")
    parser.add_argument("--fp16", nargs="*", default=["gpu-small"], help="profiles to train once more in fp16")
    parser.add_argument("--fp16-steps", type=int, default=100)
    parser.add_argument("--bench", nargs="*", default=list(GPU_PROFILES), help="profiles to benchmark")
    parser.add_argument("--deadline", type=float, default=float("inf"), help="seconds; later phases are skipped")
    args = parser.parse_args(argv)
    out = args.out or results_dir() / "gpu-check"
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run it on a GPU machine, or try it with --device cpu --train smoke")
        return 2
    t_start = time.perf_counter()
    report: dict[str, Any] = {"argv": sys.argv[1:] if argv is None else argv, "machine": device_info(device),
                              "training": [], "bench": None, "failed": {}, "skipped": [], "phase_s": {}}
    runs = runs_dir() / "gpu-check"  # checkpoints stay out of the report folder
    phases: list[tuple[str, Any]] = [(f"train {p} auto", (p, "auto", args.steps)) for p in args.train]
    phases += [(f"train {p} fp16", (p, "fp16", args.fp16_steps)) for p in args.fp16]
    phases += [(f"bench {p}", p) for p in args.bench]
    for name, spec in phases:
        if time.perf_counter() - t_start > args.deadline:
            report["skipped"].append(name)
            write_report(report, out)
            continue
        t0 = time.perf_counter()
        print(f"[{time.perf_counter() - t_start:6.0f} s] {name}", flush=True)
        try:
            if isinstance(spec, str):
                rows = run_benchmarks(out / f"bench-{spec}.json", quick=True, objectives=OBJECTIVES, profiles=[spec])
                report["bench"] = (report["bench"] or []) + rows
            else:
                profile, precision, steps = spec
                dataset = available_dataset(get_config(profile).data.dataset)
                report["training"].append(train_phase(profile, device, steps, precision, dataset, runs))
                loss_figure(report["training"], out / "loss_curves.png")
        except Exception as e:  # record and go on: a time-limited machine should return every finished phase
            report["failed"][name] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        report["phase_s"][name] = round(time.perf_counter() - t0, 1)
        write_report(report, out)
    print(markdown(report))
    print(f"gpu_check: {time.perf_counter() - t_start:.0f} s; wrote {out}")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
