"""The README's Layout section, checked: every MLflow call lives in the MLflow layer
(``recorder`` writes runs, ``stored`` reads them back, ``sweep_runs`` keeps sweeps; ``plugin``
implements MLflow's own provider interface and makes no call); modules form layers (no import
cycle, lazy imports included); no function is long."""

from __future__ import annotations

import ast
import re

from conftest import REPO

PACKAGE = REPO / "grok_mlflow"
MLFLOW_LAYER = ["plugin.py", "recorder.py", "stored.py", "sweep_runs.py"]


def test_only_the_mlflow_layer_imports_mlflow():
    importers = sorted(p.name for p in PACKAGE.glob("*.py")
                       if re.search(r"^\s*(import mlflow|from mlflow)", p.read_text(), re.M))
    assert importers == MLFLOW_LAYER
    plugin = (REPO / "grok_mlflow" / "plugin.py").read_text()
    calls = re.findall(r"(?<![\w`])mlflow\.\w+", plugin)
    assert calls == ["mlflow.tracking"]          # the import of the provider's base class


def test_the_plugin_registers_cleanly_when_grok_mlflow_is_imported_first():
    """MLflow loads the plugin from its entry point while importing itself; grok_mlflow's
    modules importing the plugin first left it half-initialised (MLflow warned and dropped it)."""
    import subprocess
    import sys

    code = ("import warnings; warnings.simplefilter('error');"
            "import grok_mlflow.tracking, grok_mlflow.lightning, grok_mlflow.training;"
            "from mlflow.tracking.context.registry import _run_context_provider_registry as r;"
            "print(sorted(type(p).__name__ for p in r))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "GrokContextProvider" in done.stdout and "circular" not in done.stderr


def _imports() -> dict[str, set[str]]:
    """{module: the package's modules it imports}, function-level (lazy) imports included."""
    graph = {}
    for path in PACKAGE.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found.update([node.module.split(".")[0]] if node.module else
                             [a.name for a in node.names])
        graph[path.stem] = found - {path.stem}
    return graph


def test_modules_form_layers_with_no_import_cycle():
    graph, placed = _imports(), []
    remaining = {m: set(d) & set(graph) for m, d in graph.items() if m != "__init__"}
    while remaining:                       # peel off the modules that import only placed ones
        ready = sorted(m for m, deps in remaining.items() if deps <= set(placed))
        assert ready, f"import cycle among {sorted(remaining)}"
        placed += ready
        for m in ready:
            del remaining[m]
    assert graph["settings"] <= {"_context"}        # the bottom: settings import nothing above
    assert "tracking" not in graph["recorder"] | graph["stored"] | graph["sweep_runs"]


def _code_lines(node: ast.FunctionDef) -> int:
    """A function's lines without its docstring (arguments, units, an example: wanted)."""
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
            first.value.value, str):
        lines -= first.end_lineno - first.lineno + 1
    return lines


def test_no_function_is_longer_than_80_lines():
    long = [f"{path.name}:{node.name} ({_code_lines(node)} lines)"
            for path in PACKAGE.glob("*.py")
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and _code_lines(node) > 80]
    assert long == []


# modules without behaviour of their own to test apart: entry points, context managers tested
# through the measures, drawing (every figure is drawn by a run in the suite), the progress bar
UNTESTED_APART = {"__init__", "__main__", "_context", "_modes", "plots", "terminal"}


def test_tests_mirror_the_package():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - UNTESTED_APART
    missing = sorted(m for m in modules if not (REPO / "tests" / f"test_{m}.py").exists())
    assert missing == []
