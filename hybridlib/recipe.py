"""The recipe study: which training recipe gets each objective to its quality in the least time.

A search at a short budget, scored on the validation split only (``DataConfig.n_val``: held-out training
images, never the test set), by a rule fixed in docs/recipe.md before any of its runs (``RECIPE_RULE`` is that
rule in one paragraph). Stage 1 changes one factor at a time from the profile's recipe; stage 2 combines each
objective's winning levels and searches the learning rate again around them. Like the other studies it resumes:
every run is a folder of its own (:func:`hybridlib.train.ensure_trained`), and the tables and the figure are
rewritten after every run. Every finished run is also recorded in results/<profile>/recipe.json under its folder's
name, so a fresh clone (which has no runs/) goes on from the committed results instead of training them again.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .bench import recipe_throughputs
from .claims import Claim, judge
from .config import OBJECTIVES, Config, get_config, recipe_baseline, trains_decoder
from .data import PreparedData, prepare_data
from .errors import CheckpointError, ConfigError, NonFiniteLossError
from .experiments import evaluate_run, run_to_run_spread
from .files import write_json, write_text
from .hardware import resolve_device
from .paths import results_dir, run_dir_for, runs_dir
from .report import recipe_figures, recipe_markdown
from .studies import ROW_KEYS
from .train import TrainResult, ensure_trained
from .validation import VAL_FIELDS

N_VAL = 5_000  # validation images: the last N_VAL training images (Fashion-MNIST: 55 000 left to train on)
SEARCH_FRACTION = 0.3  # the search budget: this fraction of the profile's training images (cpu: 300 of 1000 steps)
MARGIN = 0.005  # a level replaces the default only if it scores at least this much better (0.5 % relative)
LR_FACTORS = (0.5, 2.0, 4.0)  # stage 1: the learning rate times these
STAGE2_LR_FACTORS = (0.5, 1.0, 2.0)  # stage 2: the combination at its learning rate times these
DIVERGED_NAME = "diverged.json"  # written into a run folder whose training became NaN: a restart skips the run
MEASURED = ("steps", "batch_size", "lr", "val_knn_acc", "val_bits_per_dim", "train_minutes", "img_per_s", "diverged")
OPTIMISATION = ("learning rate", "optimizer", "weight decay", "schedule")  # chosen per objective
SHARED = ("batch size", "QK-norm", "output projections", "head")  # architecture and data: one choice for all

RECIPE_RULE = (
    "Fixed before any recipe run (docs/recipe.md). Validation split: the last N training images, never trained on; "
    "the test set is not read. Search budget: a fixed number of training images, equal for every setting (a larger "
    "batch takes fewer steps), warm-up the profile's fraction of the steps, seed 0. Score, relative to the "
    "objective's own default at that budget: contrastive val kNN/default - 1; generative 1 - val bits/dim/default; "
    "hybrid the sum of both. Stage 1: one factor at a time from the profile's recipe. The optimisation factors "
    "(learning rate, optimizer, weight decay, schedule) are chosen per objective: the best level if it scores at "
    f"least {MARGIN:g} above the default, else the default. The shared factors (batch size, QK-norm, output "
    "projections, head) are one choice for every objective they apply to: a level is adopted if it scores at least "
    f"{MARGIN:g} above the default for a majority of them (the head: both objectives with a decoder). Stage 2: per "
    "objective, its chosen levels and the adopted shared levels together, at the chosen learning rate times 0.5, 1 "
    "and 2; the objective's recipe is the best of these if it scores at least the margin above the default, else "
    "the default. Stage 3 (the final budget, 3 seeds, old against new on the test set) confirms or rejects it."
)


@dataclass(frozen=True)
class Setting:
    """One level of one factor: changes to a configuration's model and training settings."""
    name: str
    factor: str
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    objectives: tuple[str, ...] = OBJECTIVES  # the objectives it applies to

    def apply(self, config: Config) -> Config:
        return config.with_model(**self.model).with_train(**self.train)


def search_settings(config: Config) -> list[Setting]:
    """Stage 1: the default and every level of every factor, one factor at a time from ``config``'s recipe."""
    t, m = config.train, config.model
    settings = [Setting("default", "default")]
    settings += [Setting(f"lr {t.lr * f:g}", "learning rate", train={"lr": t.lr * f}) for f in LR_FACTORS]
    other = "muon" if t.optimizer == "adamw" else "adamw"
    settings.append(Setting(f"optimizer {other}", "optimizer", train={"optimizer": other}))
    settings.append(Setting("weight decay on the hidden matrices only" if t.decay_embeddings else
                            "weight decay on every matrix", "weight decay",
                            train={"decay_embeddings": not t.decay_embeddings}))
    schedule = "wsd" if t.schedule == "cosine" else "cosine"
    settings.append(Setting(f"schedule {schedule}", "schedule", train={"schedule": schedule}))
    settings.append(Setting(f"batch {2 * t.batch_size}", "batch size", train={"batch_size": 2 * t.batch_size}))
    settings.append(Setting("QK-norm " + ("off" if m.qk_norm else "on"), "QK-norm", model={"qk_norm": not m.qk_norm}))
    settings.append(Setting("output projections " + ("GPT-2 init" if m.zero_init_proj else "zero init"),
                            "output projections", model={"zero_init_proj": not m.zero_init_proj}))
    head = "pixels" if m.head == "joint" else "joint"
    settings.append(Setting(f"head {head}", "head", model={"head": head}, objectives=("generative", "hybrid")))
    return settings


def search_config(config: Config, objective: str, setting: Setting, images: int, n_val: int) -> Config:
    """The run that scores ``setting`` for ``objective``: ``images`` training images (steps = images / batch), the
    profile's warm-up fraction, validation at the end only, the last ``n_val`` training images held out."""
    run = setting.apply(_base(config, objective, n_val))
    steps = max(1, round(images / run.train.batch_size))
    warmup = max(1, round(steps * config.train.warmup_steps / config.train.steps))
    return run.with_train(steps=steps, warmup_steps=warmup, eval_every=steps,
                          checkpoint_every=min(steps, config.train.checkpoint_every))


def score(objective: str, row: dict[str, Any], default: dict[str, Any]) -> float:
    """The selection score of ``row`` against its objective's default row (0 for the default itself; None for a run
    that diverged, which loses to every run that did not)."""
    if row.get("diverged") or default.get("diverged"):
        return None
    knn = row["val_knn_acc"] / default["val_knn_acc"] - 1
    bits = 1 - row["val_bits_per_dim"] / default["val_bits_per_dim"] if trains_decoder(objective) else 0.0
    return {"contrastive": knn, "generative": bits, "hybrid": knn + bits}[objective]


def _score_of(row: dict[str, Any]) -> float:
    """A row's score for comparisons: a diverged run (score None) scores -inf."""
    return -math.inf if row.get("score") is None else row["score"]


def choose_stage1(rows: list[dict[str, Any]], settings: list[Setting]) -> dict[str, Any]:
    """RECIPE_RULE's stage-1 choices from the scored stage-1 rows: per objective its optimisation levels, and the
    adopted shared levels (one list for all objectives)."""
    by = {(r["objective"], r["setting"]): r for r in rows if r["stage"] == 1}
    per_objective: dict[str, list[str]] = {o: [] for o in OBJECTIVES}
    for objective in OBJECTIVES:
        for factor in OPTIMISATION:
            levels = [s for s in settings if s.factor == factor and objective in s.objectives]
            best = max(levels, key=lambda s: _score_of(by[(objective, s.name)]), default=None)
            if best is not None and _score_of(by[(objective, best.name)]) >= MARGIN:
                per_objective[objective].append(best.name)
    shared = []
    for factor in SHARED:
        for s in (s for s in settings if s.factor == factor):
            wins = sum(_score_of(by[(o, s.name)]) >= MARGIN for o in s.objectives)
            if wins > len(s.objectives) / 2:
                shared.append(s.name)
                break  # one level per factor (each shared factor has one level besides the default)
    return {"per_objective": per_objective, "shared": shared}


def combined(settings: list[Setting], names: list[str], objective: str, lr_factor: float, base_lr: float) -> Setting:
    """One setting that applies every level in ``names`` that ``objective`` takes, at the chosen lr x lr_factor."""
    chosen = [s for s in settings if s.name in names and objective in s.objectives]
    model = {k: v for s in chosen for k, v in s.model.items()}
    train = {k: v for s in chosen for k, v in s.train.items()}
    train["lr"] = train.get("lr", base_lr) * lr_factor
    label = ", ".join(s.name for s in chosen if s.factor != "learning rate") or "default"
    return Setting(f"{label}; lr {train['lr']:g}", "combined", model=model, train=train, objectives=(objective,))


def run_recipe(config: Config, n_val: int = N_VAL, images: int | None = None, progress: bool = True,
               finished_only: bool = False, stop_after_stage: int = 3, seeds: tuple[int, ...] = (0, 1, 2)
               ) -> dict[str, Any]:
    """The stages of RECIPE_RULE for ``config``'s profile (up to ``stop_after_stage``); writes
    results/<profile>/recipe.{json,md} and its figures after every run. ``images``: the search budget (default
    SEARCH_FRACTION of the profile's). ``finished_only``: train nothing, tabulate what has finished (the rest is
    listed as pending). ``seeds``: stage 3's. Runs that recipe.json already records for this study are not trained
    or evaluated again (:func:`recorded_runs`).
    """
    if n_val <= 0:
        raise ConfigError(f"the recipe study needs a validation split: n_val must be positive, got {n_val}")
    config = recipe_baseline(config)  # the study's "old" recipe: the profile's before the study adopted its result
    images = images or round(SEARCH_FRACTION * config.train.steps * config.train.batch_size)
    data = prepare_data(config.with_data(n_val=n_val).data)
    settings = search_settings(config)
    previous = recorded_study(config, n_val, images)  # read once: every run below rewrites the file
    recorded = recorded_runs(previous)
    out: dict[str, Any] = {"profile": config.profile, "rule": RECIPE_RULE, "n_val": n_val, "images": images,
                           "margin": MARGIN, "base": config.to_dict()["train"], "base_config": _as_json(config),
                           "rows": [], "pending": [], "stages": {}}
    defaults: dict[str, dict[str, Any]] = {}

    def record(stage: int, objective: str, setting: Setting) -> None:
        run_config = search_config(config, objective, setting, images, n_val)
        key = run_key(run_config)
        row = ({k: recorded[key][k] for k in MEASURED if k in recorded[key]} if key in recorded else
               _measured(run_config, data, progress, finished_only))
        if row is None:
            out["pending"].append(f"stage {stage}: {objective}, {setting.name}")
        else:
            row = {"stage": stage, "objective": objective, "setting": setting.name, "factor": setting.factor,
                   "model": setting.model, "train": setting.train, **row, "run": key}
            if setting.name == "default":
                defaults[objective] = row
            row["score"] = score(objective, row, defaults[objective]) if objective in defaults else None
            out["rows"].append(row)
        _write_recipe(out)

    for setting in settings:  # every objective's default first, then factor by factor
        for objective in setting.objectives:
            record(1, objective, setting)
    if out["pending"] or stop_after_stage < 2:
        return out
    choice = choose_stage1(out["rows"], settings)
    out["stages"]["1"] = choice
    for objective in OBJECTIVES:
        names = choice["per_objective"][objective] + choice["shared"]
        for f in STAGE2_LR_FACTORS:
            record(2, objective, combined(settings, names, objective, f, config.train.lr))
    if out["pending"]:
        return out
    out["stages"]["2"] = {o: _winner([r for r in out["rows"] if r["objective"] == o and r["stage"] == 2],
                                     defaults[o]) for o in OBJECTIVES}
    _write_recipe(out)
    if stop_after_stage >= 3:
        confirm(config, out, data, seeds, progress, finished_only, recorded)
    if stop_after_stage >= 4 and not out["pending"]:
        time_to_target(config, out, data, seeds, progress, finished_only, recorded,
                       previous.get("time_to_target", {}))
    return out


def run_key(config: Config) -> str:
    """The name a run is recorded under in recipe.json: the name of its folder under runs/ as the profile's recipe
    before the study named it (every setting that differs from :func:`recipe_baseline`'s, and the seed), so that
    adopting the study's result does not rename its records."""
    default = recipe_baseline(get_config(config.profile, config.train.objective, seed=config.train.seed))
    return run_dir_for(config, default=default).relative_to(runs_dir()).as_posix()


def _base(config: Config, objective: str, n_val: int) -> Config:
    """The study's baseline recipe for ``objective`` with the last ``n_val`` training images held out."""
    return recipe_baseline(config, objective).with_data(n_val=n_val)


def recorded_study(config: Config, n_val: int, images: int) -> dict[str, Any]:
    """results/<profile>/recipe.json where it is this study's (the same profile configuration, validation split and
    search budget); {} where there is none or it is another's."""
    try:
        previous = json.loads((results_dir() / config.profile / "recipe.json").read_text())
    except (OSError, ValueError):
        return {}
    same = (previous.get("base_config"), previous.get("n_val"), previous.get("images")) == (_as_json(config), n_val,
                                                                                             images)
    return previous if same else {}


def recorded_runs(study: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The finished runs a :func:`recorded_study` records, by :func:`run_key` (a stage-3 run that is also on stage
    4's ladder as its stage-3 row, which holds every axis)."""
    rows = [*study.get("time_to_target", {}).get("runs", []), *study.get("rows", []), *study.get("confirm", [])]
    return {r["run"]: r for r in rows if "run" in r}


def _as_json(config: Config) -> dict[str, Any]:
    return json.loads(json.dumps(config.to_dict()))  # as recipe.json holds it (tuples as lists)


CURVE_POINTS = 10  # validation points along each confirmation run: the curves of the figure
OWN_AXES = {"contrastive": ("linear_probe_acc",), "generative": ("test_bits_per_dim",),
            "hybrid": ("linear_probe_acc", "test_bits_per_dim")}


def final_config(config: Config, objective: str, setting: Setting, n_val: int, budget: float = 1.0) -> Config:
    """A confirmation run: ``setting`` at ``budget`` times the profile's training images (steps = images / batch),
    the profile's warm-up fraction, validated CURVE_POINTS times, the validation split held out."""
    run = setting.apply(_base(config, objective, n_val))
    steps = max(1, round(budget * config.train.steps * config.train.batch_size / run.train.batch_size))
    warmup = max(1, round(steps * config.train.warmup_steps / config.train.steps))
    return run.with_train(steps=steps, warmup_steps=warmup, eval_every=max(1, steps // CURVE_POINTS))


def confirm(config: Config, out: dict[str, Any], data: PreparedData, seeds: tuple[int, ...], progress: bool,
            finished_only: bool, recorded: dict[str, dict[str, Any]]) -> None:
    """Stage 3: each objective's old recipe and its stage-2 recipe at the final budget over ``seeds``, every axis
    on the test set; the new one is adopted where it beats the old on the objective's own axes by the claims' rule
    (held on one, not held on none). Fills ``out["stages"]["3"]`` and ``out["confirm"]`` (one row per run)."""
    floors = run_to_run_spread(config.profile)
    out["confirm"], decisions = [], {}
    for seed in seeds:  # every objective and recipe on seed 0 first: the comparison exists before its spread
        for objective in OBJECTIVES:
            new = out["stages"]["2"][objective]
            recipes = {"old": Setting("default", "default"),
                       "new": Setting(new["setting"], "combined", model=new["model"], train=new["train"])}
            for label, setting in recipes.items():
                if label == "new" and setting.name == "default":
                    continue  # the search kept the old recipe: nothing to confirm
                run_config = final_config(config, objective, setting, out["n_val"]).with_train(seed=seed)
                key = run_key(run_config)
                if key in recorded:
                    out["confirm"].append(recorded[key])
                    continue
                run = _trained(run_config, data, progress, finished_only)
                if run is None:
                    out["pending"].append(f"stage 3: {objective}, {label} recipe, seed {seed}")
                    continue
                if run == "diverged":
                    out["confirm"].append({"objective": objective, "recipe": label, "setting": setting.name,
                                           "seed": seed, "diverged": True, "run": key})
                    _write_recipe(out)
                    continue
                result = evaluate_run(run, data, config.eval, progress)
                out["confirm"].append({"objective": objective, "recipe": label, "setting": setting.name, "seed": seed,
                                       "steps": run.step, "batch_size": run_config.train.batch_size,
                                       "train_minutes": run.wall_time_s / 60,
                                       **{k: result.get(k) for k in ROW_KEYS},
                                       "curve": _curve(run.history), "run": key})
                _write_recipe(out)
    for objective in OBJECTIVES:
        rows = {label: [r for r in out["confirm"] if r["objective"] == objective and r["recipe"] == label]
                for label in ("old", "new")}
        if out["stages"]["2"][objective]["setting"] == "default":
            decisions[objective] = {"adopted": False, "why": "the search kept the old recipe"}
            continue
        if len(rows["new"]) < len(seeds) or len(rows["old"]) < len(seeds):
            continue  # pending
        if any(r.get("diverged") for r in rows["new"]):
            decisions[objective] = {"adopted": False, "setting": out["stages"]["2"][objective]["setting"],
                                    "why": "the new recipe diverged on a seed at the final budget"}
            continue
        if any(r.get("diverged") for r in rows["old"]):
            raise NonFiniteLossError(f"the old {objective} recipe diverged at the final budget, so the comparison "
                                     f"has no baseline; see {DIVERGED_NAME} in its run folder")
        judged = [judge(Claim(objective, "the new recipe beats the old", metric, "new", "old",
                              higher_is_better=metric != "test_bits_per_dim"),
                        [r[metric] for r in rows["new"]], [r[metric] for r in rows["old"]], floors.get(metric, 0.0))
                  for metric in OWN_AXES[objective]]
        adopted = any(j["verdict"] == "held" for j in judged) and not any(j["verdict"] == "not held" for j in judged)
        decisions[objective] = {"adopted": adopted, "setting": out["stages"]["2"][objective]["setting"],
                                "verdicts": {j["metric"]: {k: j[k] for k in ("gap", "spread", "verdict")}
                                             for j in judged}}
    out["stages"]["3"] = decisions
    _write_recipe(out)


LADDER = (0.25, 0.5, 1.0, 2.0)  # time to target: the new recipe at these multiples of the profile's budget
TARGET_BUDGETS = (1.0, 2.0)  # the targets: the old recipe's 3-seed means at these multiples (scaling.json)
MIN_SEEDS = 3  # a budget of the old ladder counts only with at least this many seeds (a mean, like the targets)


def targets(config: Config) -> list[dict[str, Any]]:
    """Each objective's targets on its own axes: the old recipe's 3-seed mean at each TARGET_BUDGETS multiple of the
    profile's steps, from results/<profile>/scaling.json (empty where that study has not run)."""
    path = results_dir() / config.profile / "scaling.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    out = []
    for objective in OBJECTIVES:
        for metric in OWN_AXES[objective]:
            for budget in TARGET_BUDGETS:
                steps = round(budget * config.train.steps)
                values = [r[metric] for r in rows if r["objective"] == objective and r["steps"] == steps]
                if len(values) >= MIN_SEEDS:
                    out.append({"objective": objective, "metric": metric, "target_steps": steps,
                                "target": float(np.mean(values))})
    return out


def _reaches(metric: str, value: float, target: float) -> bool:
    return value <= target if metric == "test_bits_per_dim" else value >= target


def time_to_target(config: Config, out: dict[str, Any], data: PreparedData, seeds: tuple[int, ...], progress: bool,
                   finished_only: bool, recorded: dict[str, dict[str, Any]], previous: dict[str, Any]) -> None:
    """Stage 4: training minutes to each target, old recipe against new. Quality: the cheapest budget of a ladder
    (each a full schedule, every seed) whose mean reaches the target; the old recipe's ladder is scaling.json's,
    the new recipe's trained here (LADDER, stopping at the first budget that reaches every target of its
    objective). Time: that budget's steps times each recipe's seconds per step, measured side by side in one
    process (:func:`hybridlib.bench.recipe_throughputs`), or read from ``previous`` (the recorded stage 4) where that
    measured the same configurations on the same device. Fills ``out["time_to_target"]``."""
    goals = targets(config)
    path = results_dir() / config.profile / "scaling.json"
    old_rows = json.loads(path.read_text())["rows"] if path.exists() else []
    result: dict[str, Any] = {"ladder": [], "rows": [], "runs": []}  # runs: each ladder run's own metrics
    new_configs, old_configs = {}, {}
    # every run already measured (the 1x budget's are stage 3's); _ladder_point adds the ones it trains
    known = {**recorded, **{r["run"]: r for r in out["confirm"] if "run" in r}}
    for objective in OBJECTIVES:
        new = out["stages"]["2"][objective]
        if new["setting"] == "default":
            continue
        setting = Setting(new["setting"], "combined", model=new["model"], train=new["train"])
        new_configs[objective] = final_config(config, objective, setting, out["n_val"])
        old_configs[objective] = recipe_baseline(config, objective)
        mine = [g for g in goals if g["objective"] == objective]
        for budget in LADDER:
            point = _ladder_point(config, out, data, objective, setting, budget, mine, seeds, progress, finished_only,
                                  known, result["runs"])
            if point is None:  # pending
                break
            result["ladder"].append(point)
            _write_recipe({**out, "time_to_target": result})
            if not point.get("diverged") and all(_reaches(g["metric"], point[g["metric"]], g["target"]) for g in mine):
                break
    if out["pending"] or not new_configs:
        out["time_to_target"] = result
        _write_recipe(out)
        return
    names = {f"{label} {o}": c for o in new_configs for label, c in (("old", old_configs[o]), ("new", new_configs[o]))}
    device = str(resolve_device())  # the device the runs trained on
    measured = json.loads(json.dumps({name: c.to_dict() for name, c in names.items()}))  # as recipe.json holds it
    if previous.get("configs") == measured and previous.get("device") == device:
        rates = previous["img_per_s"]  # measured once: rerunning the study does not move its table
    else:
        rates = recipe_throughputs(names, device)
    result.update(img_per_s=rates, device=device, configs=measured)
    for g in goals:
        objective = g["objective"]
        if objective not in new_configs:
            continue
        row = dict(g)
        for label, ladder, batch in (
                ("old", [{"steps": r["steps"], g["metric"]: r[g["metric"]], "seed": r["seed"]} for r in old_rows
                         if r["objective"] == objective], old_configs[objective].train.batch_size),
                ("new", [r for r in result["ladder"] if r["objective"] == objective and not r.get("diverged")],
                 new_configs[objective].train.batch_size)):
            by_steps: dict[int, list[float]] = {}
            for r in ladder:
                by_steps.setdefault(r["steps"], []).append(r[g["metric"]])
            if label == "old":  # scaling.json's budgets with fewer seeds than the targets' are not means to compare
                by_steps = {s: v for s, v in by_steps.items() if len(v) >= MIN_SEEDS}
            reached = [s for s, v in sorted(by_steps.items()) if _reaches(g["metric"], float(np.mean(v)), g["target"])]
            seconds_per_step = batch / rates[f"{label} {objective}"]
            row[f"{label}_steps"] = reached[0] if reached else None
            row[f"{label}_minutes"] = reached[0] * seconds_per_step / 60 if reached else None
        row["speedup"] = (row["old_minutes"] / row["new_minutes"]
                          if row["old_minutes"] and row["new_minutes"] else None)
        result["rows"].append(row)
    out["time_to_target"] = result
    _write_recipe(out)


def _ladder_point(config: Config, out: dict[str, Any], data: PreparedData, objective: str, setting: Setting,
                  budget: float, goals: list[dict[str, Any]], seeds: tuple[int, ...], progress: bool,
                  finished_only: bool, known: dict[str, dict[str, Any]], runs: list[dict[str, Any]]
                  ) -> dict[str, Any] | None:
    """The new recipe at ``budget`` times the profile's images: each goal's metric, the mean over ``seeds`` on the
    test set (None, and the missing run listed as pending, where a run has not finished and ``finished_only``).
    A run in ``known`` (by :func:`run_key`) is taken from there; each run of the ladder, known or trained here, is
    recorded in ``runs`` (once)."""
    values: dict[str, list[float]] = {g["metric"]: [] for g in goals}
    for seed in seeds:
        run_config = final_config(config, objective, setting, out["n_val"], budget).with_train(seed=seed)
        key = run_key(run_config)
        if key not in known:
            run = _trained(run_config, data, progress, finished_only)
            if run is None:
                out["pending"].append(f"stage 4: {objective}, new recipe at {budget:g}x the budget, seed {seed}")
                return None
            record = {"objective": objective, "budget": budget, "seed": seed, "steps": run_config.train.steps,
                      "run": key}
            if run == "diverged":
                record["diverged"] = True
            else:
                evaluation = evaluate_run(run, data, config.eval, progress)
                record.update(steps=run.step, **{m: evaluation[m] for m in values})
            known[key] = record
        if all(r["run"] != key for r in runs):
            runs.append({"objective": objective, "budget": budget, "seed": seed, "run": key,
                         **{k: known[key][k] for k in ("steps", "diverged", *values) if k in known[key]}})
        if known[key].get("diverged"):  # this budget does not reach the targets; the ladder goes on to the next
            return {"objective": objective, "budget": budget, "steps": run_config.train.steps, "diverged": True,
                    **{m: None for m in values}}
        for metric in values:
            values[metric].append(known[key][metric])
    return {"objective": objective, "budget": budget, "steps": known[key]["steps"],
            **{m: float(np.mean(v)) for m, v in values.items()}}


def _curve(history: list[dict[str, float]]) -> list[dict[str, float | None]]:
    """A run's validation points (step, training seconds, metrics; None where a metric is absent), the same
    whether the history is in memory or read back from history.csv."""
    points = [r for r in history if not math.isnan(r.get("val_knn_acc", math.nan))]
    return [{"step": int(r["step"]), "elapsed_s": float(r["elapsed_s"]),
             **{k: None if math.isnan(r.get(k, math.nan)) else float(r[k]) for k in VAL_FIELDS}} for r in points]


def _winner(rows: list[dict[str, Any]], default: dict[str, Any]) -> dict[str, Any]:
    """The stage-2 row with the best score if it is at least MARGIN above the default, else the default."""
    best = max(rows, key=_score_of)
    chosen = best if _score_of(best) >= MARGIN else default
    return {k: chosen[k] for k in ("setting", "model", "train", "score")}


def _trained(config: Config, data: PreparedData, progress: bool, finished_only: bool) -> TrainResult | str | None:
    """``config``'s finished run (trained here unless ``finished_only``), None where it is pending, or "diverged"
    where its training became NaN or infinite: that is a result of the setting, recorded as DIVERGED_NAME in the
    run's folder (with the error), so the study goes on and a restart does not train it again."""
    marker = run_dir_for(config) / DIVERGED_NAME
    if marker.exists():
        return "diverged"
    try:
        return ensure_trained(config, data, progress, train_missing=not finished_only, shipped=False)
    except CheckpointError:
        if not finished_only:  # a real error, not a pending run
            raise
        return None
    except NonFiniteLossError as e:
        write_json(marker, {"error": str(e)})
        print(f"{e} The recipe study records this run as diverged ({marker}) and goes on.", flush=True)
        return "diverged"


def _measured(config: Config, data: PreparedData, progress: bool, finished_only: bool) -> dict[str, Any] | None:
    """The validation metrics and cost of ``config``'s run (trained here unless ``finished_only``; None: pending;
    ``diverged: True`` and no metrics where its training became NaN)."""
    run = _trained(config, data, progress, finished_only)
    if run is None:
        return None
    if run == "diverged":
        return {"steps": config.train.steps, "batch_size": config.train.batch_size, "lr": config.train.lr,
                "val_knn_acc": None, "val_bits_per_dim": None, "train_minutes": None, "img_per_s": None,
                "diverged": True}
    last = next(r for r in reversed(run.history) if not math.isnan(r.get("val_knn_acc", math.nan)))
    return {"steps": run.step, "batch_size": config.train.batch_size, "lr": config.train.lr,
            "val_knn_acc": last["val_knn_acc"],
            "val_bits_per_dim": last.get("val_bits_per_dim") if trains_decoder(config.train.objective) else None,
            "train_minutes": run.wall_time_s / 60, "img_per_s": config.train.batch_size * run.step / run.wall_time_s}


def _write_recipe(out: dict[str, Any]) -> None:
    folder = results_dir() / out["profile"]
    write_json(folder / "recipe.json", out)
    figures = recipe_figures(out, folder / "figures")
    write_text(folder / "recipe.md", recipe_markdown(out, figures))
