"""Command line: the same API the notebooks use.

    python -m hybridlib train --objective hybrid --profile smoke --out runs/x [--steps N] [--seed S] [--resume]
    python -m hybridlib evaluate --ckpt runs/a runs/b [--baselines] [--out results.json]
    python -m hybridlib fetch-data fashion-mnist
    python -m hybridlib report --profile cpu
    python -m hybridlib predictions --profile cpu
    python -m hybridlib bench

Every error is one line on stderr and a non-zero exit status; every warning is one line on stderr.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence

from .bench import recipe_step_ratios, run_benchmarks
from .checkpoint import load_checkpoint
from .controls import CAPACITY_WIDTHS, SEEDS as CONTROL_SEEDS, run_capacity, run_controls
from .config import (DATASETS, GPU_PROFILES, HEADS, OBJECTIVES, OPTIMIZERS, PROFILE_CHOICES, RECIPE_BASELINES,
                     SCHEDULES, Config, get_config, recipe_baseline, resolve_profile)
from .data import DEBIAN_FASHION_MNIST, fetch_data, find_fashion_mnist, prepare_data
from .errors import HybridlibError, RunDirectoryError
from .evaluate import evaluate_baselines, evaluate_checkpoint
from .experiments import bits_anchors, compare_heads, evaluate_all, run_seeds
from .files import write_json
from .hardware import PRECISIONS, resolve_device
from .layers import SEEDS as LAYER_SEEDS, layers_markdown, run_layers
from .paths import data_dir, results_dir, run_dir_for
from .predictions import table as prediction_table
from .report import ablations_markdown, anchors_markdown, heads_markdown, markdown_table, seeds_markdown, write_summary
from .reproduce import DEFAULT_NOTEBOOKS, run_notebooks
from .rundir import check_can_write, is_run_dir, not_a_run_message
from .shipped import ship
from .slides import write_slides
from .recipe import N_VAL, run_recipe
from .studies import SCALING_STEPS, run_ablations, run_scaling
from .train import train


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage too; one line is easier to read
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _number(cast: type, allow_zero: bool):
    """An argparse type: an int or float that is positive (or, with allow_zero, not negative)."""
    def parse(text: str) -> int | float:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if cast is int else 'a number'}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if not (value > 0 or (allow_zero and value == 0)):
            raise argparse.ArgumentTypeError(f"must be {'zero or ' if allow_zero else ''}positive, got {value}")
        return value
    return parse


_positive_int, _non_negative_int = _number(int, False), _number(int, True)
_positive_float, _non_negative_float = _number(float, False), _number(float, True)


def _path(text: str) -> Path:
    """An argparse type: a non-empty path (an empty one is usually an unset shell variable)."""
    if not text:
        raise argparse.ArgumentTypeError("is empty; give a path")
    return Path(text)


def _recipe_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", choices=("baseline", "profile"), default="baseline",
                        help="baseline (default): the training recipe the committed study ran on, the profile's before "
                        "the recipe study (docs/recipe.md); profile: today's profile recipe, a new study that "
                        "replaces the committed files")


def _study_config(args: argparse.Namespace, **overrides: int | None) -> Config:
    """The hybrid configuration a study starts from: the profile's, on the recipe --recipe names."""
    config = get_config(args.profile, "hybrid", **overrides)
    return recipe_baseline(config) if args.recipe == "baseline" else config


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="hybridlib", description="Hybrid generative-contrastive representation learning.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)

    t = sub.add_parser("train", help="train one objective")
    t.add_argument("--objective", required=True, choices=OBJECTIVES)
    t.add_argument("--profile", default=None, choices=PROFILE_CHOICES,
                   help="default: $HYBRIDLIB_PROFILE, else auto (gpu on a large GPU, gpu-small on another, else cpu)")
    t.add_argument("--out", type=_path, default=None, help="run folder (default: runs/PROFILE/seedS/OBJECTIVE)")
    t.add_argument("--steps", type=_positive_int)
    t.add_argument("--seed", type=_non_negative_int)
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    t.add_argument("--batch-size", type=_positive_int)
    t.add_argument("--lr", type=_positive_float)
    t.add_argument("--lam", type=_non_negative_float, help="hybrid weight of the contrastive loss")
    t.add_argument("--temperature", type=_positive_float, help="NT-Xent temperature")
    t.add_argument("--generative-input", choices=("views", "clean"))
    t.add_argument("--head", choices=HEADS, help="joint: one softmax over all token values; pixels: a token's pixels "
                   "one by one (the same exact likelihood, far fewer outputs)")
    t.add_argument("--precision", choices=PRECISIONS,
                   help="default auto: bf16 where the hardware has it, fp16 with loss scaling on older GPUs, else fp32")
    t.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the training step (default: the profile's choice; on but for smoke)")
    t.add_argument("--checkpoint-every", type=_positive_int)
    t.add_argument("--log-every", type=_positive_int)
    t.add_argument("--n-train", type=_positive_int, help="use only the first N training images")
    t.add_argument("--n-val", type=_non_negative_int, help="hold out the last N training images as the validation set")
    t.add_argument("--eval-every", type=_non_negative_int, help="validation metrics every N steps (needs --n-val)")
    t.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="adamw, or muon for the blocks' matrices (AdamW for the rest)")
    t.add_argument("--schedule", choices=SCHEDULES, help="cosine, or wsd (warm-up, stable, then a linear decay)")
    t.add_argument("--weight-decay", type=_non_negative_float)
    t.add_argument("--qk-norm", action=argparse.BooleanOptionalAction, default=None,
                   help="RMS-normalise queries and keys before attention")
    t.add_argument("--zero-init-proj", action=argparse.BooleanOptionalAction, default=None,
                   help="start the residual branches' output projections at zero")
    t.add_argument("--dataset", choices=DATASETS, help="override the profile's data set")
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    t.add_argument("--no-progress", action="store_true")

    e = sub.add_parser("evaluate", help="evaluate checkpoints on every axis and print the comparison table")
    e.add_argument("--ckpt", type=_path, required=True, nargs="+", help="checkpoint files or their run folders")
    e.add_argument("--baselines", action="store_true", help="add raw pixels and a random-init encoder to the table")
    e.add_argument("--out", type=_path, default=None,
                   help="one JSON file for all results (default: evaluation.json beside each checkpoint)")
    e.add_argument("--overwrite", action="store_true", help="replace the --out file if it exists")
    e.add_argument("--device", default=None)
    e.add_argument("--no-progress", action="store_true")

    f = sub.add_parser("fetch-data", help="make a data set available offline")
    f.add_argument("dataset", choices=DATASETS)

    r = sub.add_parser("report", help="train what is missing, evaluate all models and write results/PROFILE/summary.*")
    r.add_argument("--profile", default=None, choices=PROFILE_CHOICES)
    r.add_argument("--seed", type=_non_negative_int, default=0)

    sd = sub.add_parser("seeds", help="the comparison over several seeds (mean ± std) -> results/PROFILE/seeds.*")
    sd.add_argument("--profile", default=None, choices=PROFILE_CHOICES)
    sd.add_argument("--seeds", type=_non_negative_int, nargs="+", default=[0, 1, 2])

    ab = sub.add_parser("ablations", help="the hybrid's design space under one budget, by a rule fixed in advance "
                        "-> results/PROFILE/ablations.* (resumes where it stopped)")
    ab.add_argument("--profile", default=None, choices=PROFILE_CHOICES)
    ab.add_argument("--stage", type=int, choices=(1, 2, 3), default=3, help="stop after this stage")
    ab.add_argument("--steps", type=_positive_int, help="the budget of every run (default: the profile's)")
    ab.add_argument("--finished-only", action="store_true", help="train nothing: tabulate the finished runs")
    _recipe_argument(ab)

    sc = sub.add_parser("scaling", help="the three objectives at several budgets and seeds -> results/PROFILE/"
                        "scaling.* (resumes where it stopped)")
    sc.add_argument("--profile", default=None, choices=PROFILE_CHOICES)
    sc.add_argument("--steps", type=_positive_int, nargs="+", default=list(SCALING_STEPS))
    sc.add_argument("--finished-only", action="store_true", help="train nothing: tabulate the finished runs")
    _recipe_argument(sc)

    rc = sub.add_parser("recipe", help="the training-recipe search on a validation split -> results/PROFILE/recipe.* "
                        "(resumes where it stopped; protocol: docs/recipe.md)")
    rc.add_argument("--profile", default=None, choices=PROFILE_CHOICES)
    rc.add_argument("--n-val", type=_positive_int, default=N_VAL, help="validation images: the last N training images")
    rc.add_argument("--images", type=_positive_int, help="training images per search run (default: 30%% of the "
                    "profile's)")
    rc.add_argument("--stage", type=int, choices=(1, 2, 3, 4), default=4, help="stop after this stage")
    rc.add_argument("--finished-only", action="store_true", help="train nothing: tabulate the finished runs")

    ct = sub.add_parser("controls", help="the controls of the hybrid's bits/dim gap -> results/PROFILE/controls.* "
                        "(resumes where it stopped; protocol: docs/controls.md)")
    ct.add_argument("--profile", default=None, choices=PROFILE_CHOICES)
    ct.add_argument("--seeds", type=_non_negative_int, nargs="+", default=list(CONTROL_SEEDS))
    ct.add_argument("--finished-only", action="store_true", help="train nothing: tabulate the finished runs")

    cp = sub.add_parser("capacity", help="the hybrid's bits/dim penalty at three widths -> results/PROFILE/capacity.* "
                        "(resumes where it stopped; protocol: docs/controls.md)")
    cp.add_argument("--profile", default=None, choices=PROFILE_CHOICES)
    cp.add_argument("--widths", type=_positive_int, nargs="+", default=list(CAPACITY_WIDTHS),
                    help="d_model of each size (multiples of 32)")
    cp.add_argument("--seeds", type=_non_negative_int, nargs="+", default=list(CONTROL_SEEDS))
    cp.add_argument("--finished-only", action="store_true", help="train nothing: tabulate the finished runs")

    hd = sub.add_parser("heads", help="the two output heads compared at equal steps and equal training time "
                        "-> results/PROFILE/heads.*")
    hd.add_argument("--profile", default=None, choices=PROFILE_CHOICES)
    hd.add_argument("--seed", type=_non_negative_int, default=0)
    hd.add_argument("--steps", type=_positive_int, help="the joint head's budget (default: the profile's)")
    _recipe_argument(hd)

    sl = sub.add_parser("slides", help="single-panel lecture figures (architecture, causal mask, NT-Xent's "
                        "similarity matrix) -> results/PROFILE/slides/")
    sl.add_argument("--profile", default=None, choices=PROFILE_CHOICES)

    ly = sub.add_parser("layers", help="a linear probe after every block of the generative and hybrid runs, over "
                        "seeds -> results/PROFILE/layers.* (trains missing runs)")
    ly.add_argument("--profile", default=None, choices=PROFILE_CHOICES)
    ly.add_argument("--seeds", type=_non_negative_int, nargs="+", default=list(LAYER_SEEDS))
    ly.add_argument("--finished-only", action="store_true", help="train nothing: probe the finished runs only")

    pr = sub.add_parser("predictions", help="the predictions the notebooks recorded before their runs, beside what "
                        "the runs measured (results/PROFILE/predictions.json)")
    pr.add_argument("--profile", default=None, choices=PROFILE_CHOICES)

    an = sub.add_parser("anchors", help="bits/dim of non-neural predictors of the test set -> results/PROFILE/anchors.*")
    an.add_argument("--profile", default=None, choices=PROFILE_CHOICES)

    rp = sub.add_parser("reproduce", help="run the notebooks headless with papermill (what `make reproduce` does)")
    rp.add_argument("--profile", default=None, choices=PROFILE_CHOICES)
    rp.add_argument("--notebooks", nargs="+", default=None, help="file names in notebooks/ (default: 01 to 05)")

    sh = sub.add_parser("ship", help="write the weights of the profile's seed-0 runs to checkpoints/PROFILE/ (what "
                        "`make reproduce` does at its end), for classes that evaluate without training")
    sh.add_argument("--profile", default=None, choices=PROFILE_CHOICES)

    b = sub.add_parser("bench", help="benchmark the training step against a naive reference")
    b.add_argument("--out", type=_path, default=None, help="default: results/bench.json")
    b.add_argument("--overwrite", action="store_true", help="replace the --out file if it exists")
    b.add_argument("--quick", action="store_true", help="fewer repetitions (for tests)")
    b.add_argument("--recipe-only", action="store_true", help="only today's recipe against the one before the recipe "
                   "study, side by side -> bench_recipe.json beside --out")
    b.add_argument("--profiles", nargs="+", choices=("cpu", *GPU_PROFILES), default=None,
                   help="default: cpu, and the GPU profiles when CUDA is present")
    return parser


def _train(args: argparse.Namespace) -> None:
    config = get_config(
        args.profile, args.objective, steps=args.steps, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
        lam=args.lam, temperature=args.temperature, generative_input=args.generative_input, head=args.head,
        precision=args.precision, compile=args.compile, checkpoint_every=args.checkpoint_every,
        log_every=args.log_every, n_train=args.n_train, dataset=args.dataset, n_val=args.n_val,
        eval_every=args.eval_every, optimizer=args.optimizer, schedule=args.schedule, weight_decay=args.weight_decay,
        qk_norm=args.qk_norm, zero_init_proj=args.zero_init_proj,
    )
    out = args.out or run_dir_for(config, ignore=("steps",))  # --resume --steps N continues the same run
    result = train(config, out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                   device=args.device)
    if result.start_step >= config.train.steps:
        print(f"nothing to train: the run in {out} is already at step {result.step} (--steps {config.train.steps}); "
              "pass a larger --steps to continue it")
        return
    last = result.history[-1] if result.history else {}
    summary = ", ".join(f"{k} {last[k]:.4g}" for k in ("loss", "bits_per_dim", "con_loss") if k in last)
    resumed = f" from step {result.start_step}" if result.start_step else ""
    print(f"trained {args.objective} [{config.profile}]{resumed} to step {result.step} in {result.wall_time_s:.1f} s"
          f" ({summary}); checkpoint: {result.checkpoint}")


def _evaluate(args: argparse.Namespace) -> None:
    # fail fast, before any work: the device, every checkpoint, every place a result will be written
    device = resolve_device(args.device)
    configs = [Config.from_dict(load_checkpoint(path)["config"]) for path in args.ckpt]
    targets = [(path if path.is_dir() else path.parent) / "evaluation.json" for path in args.ckpt]
    if args.out is not None:
        check_can_write(args.out, args.overwrite)
    else:
        for target in targets:
            if not is_run_dir(target.parent):
                raise RunDirectoryError(not_a_run_message(target.parent, "pass --out FILE for the results"))
            check_can_write(target, overwrite=True)  # a run's own evaluation.json is replaced
    data = prepare_data(configs[0].data) if all(c.data == configs[0].data for c in configs) else None
    models, per_checkpoint = {}, []
    for path, config, target in zip(args.ckpt, configs, targets):
        result = evaluate_checkpoint(path, device=device, progress=not args.no_progress, data=data)
        name = config.train.objective if config.train.objective not in models else str(path)
        models[name] = result
        per_checkpoint.append((result, target))
    if args.baselines:
        data = data or prepare_data(configs[0].data)
        models.update(evaluate_baselines(configs[0], data, device, progress=not args.no_progress))
    print(markdown_table(models))  # before writing: should writing fail, the numbers are still on screen
    print("evaluation time: " + ", ".join(f"{k} {v['eval_time_s']:.0f} s" for k, v in models.items()))
    if args.out is not None:
        write_json(args.out, {"models": models})
    else:
        for result, target in per_checkpoint:
            write_json(target, result)


def _fetch_data(name: str) -> str:
    """fetch-data: Fashion-MNIST from Debian's package where that is possible (root with apt-get: no
    download from outside the distribution's mirrors), else :func:`hybridlib.data.fetch_data`."""
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    if name == "fashion-mnist" and root and shutil.which("apt-get") and find_fashion_mnist(data_dir()) is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "dataset-fashion-mnist"], capture_output=True)
        if find_fashion_mnist(data_dir()) == DEBIAN_FASHION_MNIST:
            return f"fashion-mnist: installed Debian package dataset-fashion-mnist into {DEBIAN_FASHION_MNIST}"
    return fetch_data(name)


def _report(profile: str | None, seed: int) -> None:
    """report: train what is missing, evaluate everything, write and print results/PROFILE/summary.md."""
    t0 = time.perf_counter()
    summary = evaluate_all(get_config(profile, "hybrid", seed=seed))
    summary["report_wall_time_s"] = time.perf_counter() - t0
    print((write_summary(summary) / "summary.md").read_text())


def _one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line, its middle elided beyond ``limit`` characters (a path too long for the OS...)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-limit // 2 :]}"


def _os_error_message(e: OSError) -> str:
    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
    return _one_line(f"{where}: {e.strerror}" if where and e.strerror else str(e))


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"hybridlib: warning: {_one_line(str(message), 1000)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. The one place where errors become one line on stderr and an exit status: the
    project's typed errors and the operating system's (a path, a permission, a full disk)."""
    args = build_parser().parse_args(argv)
    show_warning, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        if args.command == "train":
            _train(args)
        elif args.command == "evaluate":
            _evaluate(args)
        elif args.command == "fetch-data":
            print(_fetch_data(args.dataset))
        elif args.command == "report":
            _report(args.profile, args.seed)
        elif args.command == "seeds":
            print(seeds_markdown(run_seeds(get_config(args.profile, "hybrid"), tuple(args.seeds))))
        elif args.command == "ablations":
            print(ablations_markdown(run_ablations(_study_config(args, steps=args.steps),
                                                   stop_after_stage=args.stage, finished_only=args.finished_only)))
        elif args.command == "scaling":
            out = run_scaling(_study_config(args), tuple(args.steps), finished_only=args.finished_only)
            print((results_dir() / out["profile"] / "scaling.md").read_text())
        elif args.command == "recipe":
            out = run_recipe(get_config(args.profile, "hybrid"), n_val=args.n_val, images=args.images,
                             stop_after_stage=args.stage, finished_only=args.finished_only)
            print((results_dir() / out["profile"] / "recipe.md").read_text())
        elif args.command in ("controls", "capacity"):
            config = get_config(args.profile, "hybrid")
            if args.command == "controls":
                out = run_controls(config, tuple(args.seeds), finished_only=args.finished_only)
            else:
                out = run_capacity(config, tuple(args.widths), tuple(args.seeds), finished_only=args.finished_only)
            print((results_dir() / out["profile"] / f"{args.command}.md").read_text())
        elif args.command == "heads":
            print(heads_markdown(compare_heads(_study_config(args, seed=args.seed, steps=args.steps))))
        elif args.command == "slides":
            config = get_config(args.profile, "contrastive")
            for path in write_slides(config, prepare_data(config.data)):
                print(f"wrote {path}")
        elif args.command == "layers":
            out = run_layers(get_config(args.profile, "hybrid"), tuple(args.seeds), finished_only=args.finished_only)
            print(layers_markdown(out))
        elif args.command == "predictions":
            print(prediction_table(get_config(args.profile)))
        elif args.command == "anchors":
            print(anchors_markdown(bits_anchors(get_config(args.profile))))
        elif args.command == "reproduce":
            run_notebooks(args.profile, args.notebooks or DEFAULT_NOTEBOOKS)
        elif args.command == "ship":
            for path in ship(resolve_profile(args.profile)):
                print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB)")
        elif args.command == "bench":
            if args.out is not None:  # before minutes of benchmarking
                check_can_write(args.out, args.overwrite)
            if args.recipe_only:
                out = (args.out or results_dir() / "bench.json").with_name("bench_recipe.json")
                profiles = [p for p in args.profiles or ["cpu"] if p in RECIPE_BASELINES]
                write_json(out, recipe_step_ratios(profiles, quick=args.quick))
                print(f"wrote {out}")
            else:
                run_benchmarks(out=args.out, quick=args.quick, profiles=args.profiles)
    except HybridlibError as e:
        print(f"hybridlib: error: {_one_line(str(e), 1000)}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"hybridlib: error: {_os_error_message(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hybridlib: interrupted; the last checkpoint is kept (continue with --resume)", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = show_warning
    return 0
