"""The notebooks' Python sources (notebooks/NN_name.py, jupytext percent format) match the notebooks.

Each notebook is paired with a source beside it (notebooks/jupytext.toml); `make notebooks` syncs a pair
after an edit of either side. These tests read files only: no kernel, no torch in the tests themselves.
"""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import jupytext
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
NOTEBOOK_PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
SOURCE_FORMAT = "py:percent"
# the repository's address lives in one place, pyproject.toml; every badge and install cell must use it
REPO_URL = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
COLAB_BADGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def cell_inputs(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    """What the source holds of each cell: its type, its text and its tags (no tags and ``[]`` are the same)."""
    return [(c.cell_type, c.source, tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def source_differences(notebook: Path, source: Path) -> list[str]:
    """How the cells of ``notebook`` (.ipynb) differ from those jupytext reads from ``source`` (.py); empty when equal."""
    in_nb = cell_inputs(jupytext.read(notebook))
    in_py = cell_inputs(jupytext.read(source, fmt=SOURCE_FORMAT))
    problems = []
    if len(in_nb) != len(in_py):
        problems.append(f"{len(in_nb)} cells in {notebook.name}, {len(in_py)} in {source.name}")
    for i, (a, b) in enumerate(zip(in_nb, in_py)):
        for what, x, y in zip(("type", "source", "tags"), a, b):
            if x != y:
                problems.append(f"cell {i} {what}: {notebook.name} has {x!r}, {source.name} has {y!r}")
    return problems


def notebook_ids():
    return [p.stem for p in NOTEBOOK_PATHS]


def test_there_are_notebooks():
    assert len(NOTEBOOK_PATHS) >= 6


@pytest.mark.parametrize("notebook", NOTEBOOK_PATHS, ids=notebook_ids())
def test_notebook_matches_its_source(notebook):
    source = notebook.with_suffix(".py")
    assert source.exists(), f"{notebook.name} has no source {source.name}: run `make notebooks`"
    problems = source_differences(notebook, source)
    assert not problems, (f"{notebook.name} and {source.name} differ; run `make notebooks` (jupytext --sync) "
                          "to bring the older one up to date:\n" + "\n".join(problems))


def test_every_source_has_its_notebook():
    for source in NOTEBOOKS.glob("*.py"):
        assert source.with_suffix(".ipynb").exists(), f"{source.name} has no notebook: run `make notebooks`"


def test_notebooks_are_paired_by_the_config():
    config = tomllib.loads((NOTEBOOKS / "jupytext.toml").read_text())
    assert config["formats"] == f"ipynb,{SOURCE_FORMAT}"


def _edit_source(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, count))


@pytest.mark.parametrize("edit", ["code", "markdown", "tag", "new cell", "notebook side"])
def test_a_difference_is_reported(tmp_path, edit):
    notebook = tmp_path / "02_contrastive.ipynb"
    source = tmp_path / "02_contrastive.py"
    shutil.copy(NOTEBOOKS / notebook.name, notebook)
    shutil.copy(NOTEBOOKS / source.name, source)
    assert source_differences(notebook, source) == []  # a copy compares equal, outside the repository too
    if edit == "code":
        _edit_source(source, "PROFILE, SEED, STEPS = None, 0, None\n", "PROFILE, SEED, STEPS = None, 1, None\n")
    elif edit == "markdown":
        _edit_source(source, "# ## The loss curve", "# ## The loss curves")
    elif edit == "tag":
        _edit_source(source, '# %% tags=["parameters"]\n', "# %%\n")
    elif edit == "new cell":
        source.write_text(source.read_text() + '\n# %%\nprint("one more cell")\n')
    else:
        nb = jupytext.read(notebook)
        nb.cells[0].source += "\n\nOne more line."
        jupytext.write(nb, notebook)
    problems = source_differences(notebook, source)
    assert problems, f"the {edit} edit went unnoticed"
    expected = {"code": "cell 1 source", "markdown": "source", "tag": "cell 1 tags", "new cell": "cells in",
                "notebook side": "cell 0 source"}[edit]
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("notebook", NOTEBOOK_PATHS, ids=notebook_ids())
def test_notebook_kernel_and_no_widget_state(notebook):
    nb = jupytext.read(notebook)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", nb.metadata.get("kernelspec")
    assert "widgets" not in nb.metadata, "saved widget state: `make reproduce` scrubs it (hybridlib.reproduce.scrub)"
    for i, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            assert WIDGET_MIME not in output.get("data", {}), f"cell {i} saved a widget output"


def colab_problems(notebook: Path, repo_url: str) -> list[str]:
    """What in ``notebook`` disagrees with ``repo_url``: its Colab badge (the first cell, the only Colab link) and
    its one Colab cell, which clones that repository."""
    nb = jupytext.read(notebook)
    colab = repo_url.replace("https://github.com/", "https://colab.research.google.com/github/")
    badge = COLAB_BADGE.format(url=f"{colab}/blob/main/notebooks/{notebook.name}")
    problems = [] if nb.cells[0].cell_type == "markdown" and badge in nb.cells[0].source else [f"no badge {badge}"]
    links = re.findall(r"https://colab\.research\.google\.com/github/[^)\s\"']+", "\n".join(c.source for c in nb.cells))
    if links != [f"{colab}/blob/main/notebooks/{notebook.name}"]:
        problems.append(f"Colab links {links}")
    installs = [c.source for c in nb.cells if c.cell_type == "code" and "google.colab" in c.source]
    if len(installs) != 1:
        return problems + [f"{len(installs)} Colab cells, not one"]
    if f'REPO_URL, HOME = "{repo_url}", "/content/hybridlib"' not in installs[0] or "git\", \"clone" not in installs[0]:
        problems.append("the Colab cell does not clone the repository's address")
    if set(re.findall(r"https?://[^\s\"'()]+", installs[0])) != {repo_url}:
        problems.append("the Colab cell names another address")
    return problems


@pytest.mark.parametrize("notebook", NOTEBOOK_PATHS, ids=notebook_ids())
def test_colab_badge_and_install_use_the_repository_url(notebook):
    assert colab_problems(notebook, REPO_URL) == []


def test_a_fork_changes_its_address_in_every_place_with_one_command(tmp_path):
    """tools/set_repo_url.py on a copy of the repository: afterwards every notebook agrees with the new address
    in pyproject.toml, the pairs still match, and the README's badges follow."""
    import runpy

    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(NOTEBOOKS, tmp_path / "notebooks")
    tool = runpy.run_path(str(REPO / "tools" / "set_repo_url.py"))
    fork = "https://github.com/a-teacher/ssl-course"
    changed = tool["set_repo_url"](tmp_path, fork)
    assert tool["current_url"](tmp_path) == fork and len(changed) == 2 + 2 * len(NOTEBOOK_PATHS)
    for notebook in sorted((tmp_path / "notebooks").glob("*.ipynb")):
        assert colab_problems(notebook, fork) == []
        assert source_differences(notebook, notebook.with_suffix(".py")) == []
    readme = (tmp_path / "README.md").read_text()
    assert REPO_URL.removeprefix("https://github.com/") not in readme and "github/a-teacher/ssl-course/blob" in readme
    with pytest.raises(SystemExit, match="OWNER/NAME"):
        tool["set_repo_url"](tmp_path, "https://gitlab.com/a/b")
