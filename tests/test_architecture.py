"""The code's shape, checked: the modules' import graph has no cycle, imports sit at the top of
each module (the notebooks extra, imported only where it is needed, aside), and every module imports
on its own in a fresh interpreter."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import hybridlib

PACKAGE = Path(hybridlib.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
# the optional notebooks extra, and torchvision's data sets (slow to import; `import hybridlib` stays cheap)
LOCAL_IMPORTS_ALLOWED = {("reproduce", "nbformat"), ("reproduce", "papermill"), ("data", "torchvision")}


def _tree(module: str) -> ast.Module:
    return ast.parse((PACKAGE / f"{module}.py").read_text())


def internal_imports(module: str) -> set[str]:
    """The hybridlib modules ``module`` imports (relative imports of sibling modules)."""
    out = set()
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(alias.name for alias in node.names)
    return out & set(MODULES)


def test_the_import_graph_has_no_cycle():
    graph = {m: internal_imports(m) for m in MODULES}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        if state.get(m) == 1:
            raise AssertionError("import cycle: " + " -> ".join(path + [m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for n in sorted(graph[m]):
            visit(n, path + [m])
        state[m] = 2

    for m in MODULES:
        visit(m, [])


def test_imports_are_at_the_top():
    local = set()
    for m in MODULES:
        for fn in ast.walk(_tree(m)):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, ast.Import):
                        local.update((m, a.name.split(".")[0]) for a in node.names)
                    elif isinstance(node, ast.ImportFrom):
                        local.add((m, "." * node.level + (node.module or "")))
    assert local <= LOCAL_IMPORTS_ALLOWED, f"imports inside functions: {sorted(local - LOCAL_IMPORTS_ALLOWED)}"


@pytest.mark.slow
def test_every_module_imports_on_its_own():
    code = ("import importlib, sys\n"
            f"for m in {MODULES!r}:\n"
            "    for k in [k for k in sys.modules if k.startswith('hybridlib')]:\n"
            "        del sys.modules[k]\n"
            "    importlib.import_module('hybridlib.' + m)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert result.returncode == 0, result.stderr[-2000:]
