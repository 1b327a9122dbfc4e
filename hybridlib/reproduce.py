"""`make reproduce`: run the notebooks in order, headless, with papermill.

Executed notebooks go to ``results/<profile>/notebooks/``. For the ``cpu`` profile (the one whose
outputs the repository shows on GitHub) they are also copied over ``notebooks/``, after papermill's
timing metadata is scrubbed so that a re-run changes only what really changed, and the weights of its runs
are written to ``checkpoints/`` (hybridlib/shipped.py) for classes that evaluate without training.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from .config import resolve_profile
from .files import write_json
from .folders import repo_root
from .paths import results_dir
from .progress import Echo
from .shipped import USE_ENV, ship

DEFAULT_NOTEBOOKS = ("01_data_and_tokens.ipynb", "02_contrastive.ipynb", "03_generative.ipynb",
                     "04_hybrid.ipynb", "05_evaluation.ipynb")
PUBLISHED_PROFILE = "cpu"


def scrub(nb: Any) -> Any:
    """Drop volatile metadata (papermill's timings, execution timestamps, widget state) and widget outputs."""
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        # a tqdm widget saves only its first state ("0%"): a saved output would mislead, so drop it
        cell.outputs = [o for o in cell.get("outputs", [])
                        if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
    return nb


@contextlib.contextmanager
def kernel_environment(profile: str) -> Iterator[None]:
    """What a notebook's kernel inherits while it runs, restored afterwards: the profile (no parameters are
    injected), and no shipped weights (a reproduction trains its models)."""
    saved = {name: os.environ.get(name) for name in ("HYBRIDLIB_PROFILE", USE_ENV)}
    os.environ.update({"HYBRIDLIB_PROFILE": profile, USE_ENV: "0"})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_notebooks(profile: str | None = None, names: Sequence[str] = DEFAULT_NOTEBOOKS,
                  publish: bool | None = None) -> dict[str, Any]:
    import nbformat  # the notebooks extra: imported here, so that the library works without it
    import papermill

    profile = resolve_profile(profile)
    publish = profile == PUBLISHED_PROFILE if publish is None else publish
    src = repo_root() / "notebooks"
    out_dir = results_dir() / profile / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    log: dict[str, Any] = {"profile": profile, "notebooks": {}}
    t_all = time.perf_counter()
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} (profile {profile})", flush=True)
        t0 = time.perf_counter()
        out = out_dir / name
        with kernel_environment(profile), Echo():  # and the kernel's progress, a line every 30 s
            papermill.execute_notebook(str(src / name), str(out), kernel_name="python3", cwd=str(src),
                                       progress_bar=True, request_save_on_cell_execute=False)
        nb = scrub(nbformat.read(out, as_version=4))
        nbformat.write(nb, out)
        if publish:
            shutil.copyfile(out, src / name)
        log["notebooks"][name] = round(time.perf_counter() - t0, 1)
        print(f"      done in {log['notebooks'][name] / 60:.1f} min", flush=True)
    log["wall_time_s"] = round(time.perf_counter() - t_all, 1)
    full = set(DEFAULT_NOTEBOOKS) <= set(names)
    if publish and full:  # the shipped weights are those behind the published results
        log["shipped"] = [str(p.relative_to(repo_root())) if p.is_relative_to(repo_root()) else str(p)
                          for p in ship(profile)]
    log_name = "reproduce_log.json" if full else f"run_log_{'_'.join(Path(n).stem for n in names)}.json"
    write_json(results_dir() / profile / log_name, log)
    print(f"{', '.join(names)} [{profile}]: {log['wall_time_s'] / 60:.1f} min; results in {results_dir() / profile}")
    return log

