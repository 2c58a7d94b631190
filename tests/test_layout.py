"""The layout (README "Layout", docs/layout.md), checked: modules are placed in concepts (``CONCEPTS``: a
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
# measures); the few modules at the top are placed here by name.
CONCEPTS = {
    "ground": ["settings", "_context"],     # the frozen settings; what the plugin needs
    "measures": [],                         # pure functions on models and tensors
    "findings": [],                         # what a run or a sweep showed
    "store": [],                            # the one layer that talks to MLflow
    "tracker": [],                          # when and on what to measure
    "adapters": ["lightning", "huggingface", "plugin"],
    "runner": [],                           # one run end to end
    "sweeps": [],                           # Ray Tune
    "entry": ["cli", "__main__", "__init__"],
}
SUBPACKAGES = [c for c, names in CONCEPTS.items() if not names]
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
            # ``from .pkg import mod`` names the module pkg.mod; ``from .mod import f`` mod
            stem = base + (node.module.split(".") if node.module else [])
            targets = [stem + [a.name] for a in node.names]
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
    assert upward_imports(copy) == []
    (copy / "measures" / "bad.py").write_text("def f():\n"
                                              "    from ..tracker.tracking import GrokTracker\n"
                                              "    from ..sweeps import sweep\n")
    assert upward_imports(copy) == ["measures.bad (measures) imports sweeps.sweep (sweeps)",
                                    "measures.bad (measures) imports tracker.tracking (tracker)"]


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


def test_the_top_holds_the_entry_points_and_a_folder_per_concept():
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert top == sorted(n for names in CONCEPTS.values() for n in names)
    assert len(top) <= 8 and folders == sorted(SUBPACKAGES)


def test_the_documented_and_the_earlier_paths_import(monkeypatch):
    """What the README documents, and every flat module path of earlier versions: the same
    module object as its new home (a model pickled under ``grok_mlflow.models`` loads)."""
    import importlib
    import pickle

    import grok_mlflow
    from grok_mlflow.deformation import deformation
    from grok_mlflow.huggingface import GrokTrainerCallback
    from grok_mlflow.lightning import GrokCallback
    from grok_mlflow.phases import settled
    from grok_mlflow.settings import settings_table

    assert all(callable(f) for f in (deformation, GrokTrainerCallback, GrokCallback, settled,
                                     settings_table))
    for name in grok_mlflow.__all__:
        assert getattr(grok_mlflow, name) is not None
    for old, new in grok_mlflow._MOVED.items():
        moved = importlib.import_module(f"grok_mlflow.{new}")
        assert importlib.import_module(f"grok_mlflow.{old}") is moved, old
        assert moved.__name__ == moved.__spec__.name == f"grok_mlflow.{new}"
    from grok_mlflow.runner.models import Normalize

    monkeypatch.setattr(Normalize, "__module__", "grok_mlflow.models")   # as an old run pickled it
    old = pickle.dumps(Normalize((0.5,), (0.25,)))
    monkeypatch.undo()
    assert b"grok_mlflow.models" in old and b"runner" not in old
    assert type(pickle.loads(old)) is Normalize


def test_tests_mirror_the_package():
    modules = {p.stem for p in PACKAGE.rglob("*.py")} - UNTESTED_APART
    missing = sorted(m for m in modules if not (REPO / "tests" / f"test_{m}.py").exists())
    assert missing == []


def test_the_tracker_is_a_facade_of_at_most_250_lines():
    """``GrokTracker`` delegates to its parts (preparing, opening, measure, run_log, settle);
    counted as functions are, without its docstring."""
    path = PACKAGE / "tracker" / "tracking.py"
    cls = next(n for n in ast.parse(path.read_text()).body
               if isinstance(n, ast.ClassDef) and n.name == "GrokTracker")
    assert _code_lines(cls) <= 250
