"""The README's Layout section, checked: modules are placed in concepts (``CONCEPTS``: a
subpackage's folder, or a top-level module's name) that import only downwards (a deliberate bad
import in a scratch copy is caught); every MLflow call lives in the MLflow layer (``store``:
``recorder`` writes runs, ``stored`` reads them back, ``sweep_runs`` keeps sweeps; ``plugin``
implements MLflow's own provider interface and makes no call); no import cycle, lazy imports
and every subpackage included; no function is long."""

from __future__ import annotations

import ast
import re

from conftest import REPO

PACKAGE = REPO / "grok_mlflow"

# The concepts, from the bottom up: a module imports only from its own concept or those below.
# A module in a subpackage belongs to the concept its folder names (``measures/complexity.py``:
# measures); a module at the top is placed here by name (the flat modules of today).
CONCEPTS = {
    "ground": ["settings", "_context"],
    "measures": ["network", "complexity", "partition", "deformation", "radius", "regions",
                 "robustness", "evaluation", "tasks", "_modes"],
    "findings": ["phases", "report", "claims", "plots", "history"],
    "store": ["recorder", "stored", "sweep_runs"],
    "tracker": ["tracking", "ensemble", "probes", "measure", "schedule", "distributed",
                "terminal", "settle"],
    "adapters": ["lightning", "huggingface", "plugin", "stopper"],
    "runner": ["data", "batches", "models", "stacking", "training", "runs", "run_parts"],
    "sweeps": ["sweep", "progress"],
    "entry": ["cli", "__main__", "__init__"],
}
ORDER = list(CONCEPTS)
MLFLOW_LAYER = {"store", "plugin"}          # the concept, and the plugin (MLflow's interface)


def _modules(root=PACKAGE) -> dict[str, object]:
    """{dotted name inside the package (``measures.complexity``, ``tracking``): path}, every
    subpackage walked."""
    return {".".join(p.relative_to(root).with_suffix("").parts): p
            for p in sorted(root.rglob("*.py"))}


def concept(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1:
        assert parts[0] in CONCEPTS, f"{module}: folder {parts[0]} is not a concept"
        return parts[0]
    found = [c for c, names in CONCEPTS.items() if parts[0] in names]
    assert found, f"{module}: a top-level module CONCEPTS does not place"
    return found[0]


def _imports(root=PACKAGE) -> dict[str, set[str]]:
    """{module: the package's modules it imports}, relative imports of any level and
    function-level (lazy) ones included; ``from . import x`` resolves to the module ``x``."""
    modules = _modules(root)
    graph = {}
    for name, path in modules.items():
        package = name.split(".")[:-1]           # an __init__'s package is its folder too
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            base = package[:len(package) - (node.level - 1)]
            targets = ([base + node.module.split(".")] if node.module else
                       [base + [a.name] for a in node.names])
            for target in targets:
                for k in range(len(target), 0, -1):        # the longest existing module
                    dotted = ".".join(target[:k])
                    if dotted in modules or f"{dotted}.__init__" in modules:
                        found.add(dotted if dotted in modules else f"{dotted}.__init__")
                        break
        graph[name] = found - {name}
    return graph


def upward_imports(root=PACKAGE) -> list[str]:
    """Every import from a concept above the importer's (``ORDER``)."""
    return [f"{a} ({concept(a)}) imports {b} ({concept(b)})"
            for a, deps in sorted(_imports(root).items()) for b in sorted(deps)
            if ORDER.index(concept(b)) > ORDER.index(concept(a))]


def test_only_the_mlflow_layer_imports_mlflow():
    importers = sorted(m for m, p in _modules().items()
                       if re.search(r"^\s*(import mlflow|from mlflow)", p.read_text(), re.M))
    assert importers and all(concept(m) == "store" or m.split(".")[-1] == "plugin"
                             for m in importers), importers
    plugin = next(p for m, p in _modules().items() if m.split(".")[-1] == "plugin").read_text()
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


def test_concepts_import_only_downwards():
    """measures import nothing from the tracker, the store, the runner or sweeps; only the
    store and the plugin import MLflow (above); the tracker imports no runner or sweeps."""
    assert {m: concept(m) for m in _modules()}             # every module placed
    assert upward_imports() == []


def test_the_layer_check_catches_a_bad_import(tmp_path):
    """A deliberate bad import in a scratch copy (a measure importing the tracker, lazily, in
    a subpackage): the check names it."""
    import shutil

    copy = tmp_path / "grok_mlflow"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "measures").mkdir(exist_ok=True)
    (copy / "measures" / "__init__.py").write_text("")
    (copy / "measures" / "bad.py").write_text("def f():\n    from ..tracking import GrokTracker\n"
                                              "    from .. import sweep\n")
    assert upward_imports(copy) == ["measures.bad (measures) imports sweep (sweeps)",
                                    "measures.bad (measures) imports tracking (tracker)"]


def test_modules_form_layers_with_no_import_cycle():
    graph, placed = _imports(), []
    remaining = {m: set(d) & set(graph) for m, d in graph.items() if m != "__init__"}
    while remaining:                       # peel off the modules that import only placed ones
        ready = sorted(m for m, deps in remaining.items() if deps <= set(placed))
        assert ready, f"import cycle among {sorted(remaining)}"
        placed += ready
        for m in ready:
            del remaining[m]
    settings = next(m for m in graph if m.split(".")[-1] == "settings")
    assert {d.split(".")[-1] for d in graph[settings]} <= {"_context"}   # the bottom


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
            for path in PACKAGE.rglob("*.py")
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and _code_lines(node) > 80]
    assert long == []


# modules without behaviour of their own to test apart: entry points, context managers tested
# through the measures, drawing (every figure is drawn by a run in the suite), the progress bar
UNTESTED_APART = {"__init__", "__main__", "_context", "_modes", "plots", "terminal"}


def test_tests_mirror_the_package():
    modules = {p.stem for p in PACKAGE.rglob("*.py")} - UNTESTED_APART
    missing = sorted(m for m in modules if not (REPO / "tests" / f"test_{m}.py").exists())
    assert missing == []
