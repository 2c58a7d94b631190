"""The layout (README "Layout", docs/layout.md), checked: modules are placed in concepts (``CONCEPTS``: a
subpackage's folder, or a top-level module's name) that import only downwards (a deliberate bad
import in a scratch copy is caught); every MLflow call lives in the MLflow layer (``store``:
``recorder`` writes a tracked run, ``tracking_store`` the store's URI, experiment and runs
through the client, ``reading`` reads them back, ``sweep_runs`` keeps sweeps; ``plugin``
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
    "ground": ["settings", "run_tags", "console"],   # the frozen settings; what the plugin
                                                     # needs; the logger
    "measures": [],                         # pure functions on models and tensors
    "findings": [],                         # what a run or a sweep showed
    "store": [],                            # the one layer that talks to MLflow
    "tracker": [],                          # when and on what to measure
    "adapters": ["lightning", "huggingface", "plugin"],
    "runner": [],                           # one run end to end
    "sweeps": [],                           # Ray Tune
    "entry": ["cli", "__main__", "__init__", "models"],   # models: a deprecated path
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
            "import grok_mlflow.tracker.tracking, grok_mlflow.lightning, grok_mlflow.runner.training;"
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
    assert {d.split(".")[-1] for d in graph[settings]} <= {"run_tags"}   # the bottom


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


def _parameters(fn: ast.FunctionDef) -> int:
    """Named parameters a caller can pass (``self`` and a ``**`` catch-all not counted)."""
    a = fn.args
    return len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) - (a.args[:1] != []
                                                                   and a.args[0].arg == "self")


def test_no_public_constructor_takes_more_than_10_parameters():
    """Options come in typed groups (``TrackerSettings``, ``RunOptions``), not long lists."""
    wide = [f"{path.name}:{cls.name} ({_parameters(fn)})"
            for path in PACKAGE.rglob("*.py")
            for cls in ast.walk(ast.parse(path.read_text()))
            if isinstance(cls, ast.ClassDef) and not cls.name.startswith("_")
            for fn in cls.body
            if isinstance(fn, ast.FunctionDef) and fn.name == "__init__" and _parameters(fn) > 10]
    assert wide == []


def test_the_parameter_count_sees_a_wide_constructor():
    code = "class Wide:\n    def __init__(self, a, b, c, d, e, f, g, h, i, j, *, k, **rest): ..."
    fn = ast.parse(code).body[0].body[0]
    assert _parameters(fn) == 11


# modules without behaviour of their own to test apart: entry points, context managers tested
# through the measures, drawing (every figure is drawn by a run in the suite), the progress bar
UNTESTED_APART = {"__init__", "__main__", "run_tags", "flags", "plots", "progress_bar"}


def test_the_top_holds_the_entry_points_and_a_folder_per_concept():
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert top == sorted(n for names in CONCEPTS.values() for n in names)
    assert len(top) <= 10 and folders == sorted(SUBPACKAGES)


def test_the_documented_paths_import_and_the_earlier_flat_ones_are_gone():
    """What the README documents imports; the flat module paths of earlier versions do not (no
    finder on ``sys.meta_path``), except the deprecated ``grok_mlflow.models``."""
    import importlib
    import sys

    import pytest

    import grok_mlflow
    from grok_mlflow.findings.phases import settled
    from grok_mlflow.huggingface import GrokTrainerCallback
    from grok_mlflow.lightning import GrokCallback
    from grok_mlflow.measures.deformation import deformation
    from grok_mlflow.settings import settings_table

    assert all(callable(f) for f in (deformation, GrokTrainerCallback, GrokCallback, settled,
                                     settings_table))
    for name in grok_mlflow.__all__:
        assert getattr(grok_mlflow, name) is not None
    for old in ("deformation", "phases", "tracking", "sweep", "runs"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"grok_mlflow.{old}")
    assert not any("grok_mlflow" in type(f).__module__ for f in sys.meta_path)


def test_a_model_pickled_by_an_earlier_version_loads_with_a_future_warning(tmp_path):
    """Earlier versions pickled models naming ``grok_mlflow.models.<Class>``: such a pickle
    loads in a fresh process (as ``mlflow.pytorch.load_model`` would), with a FutureWarning
    that names the new home."""
    import pickle
    import subprocess
    import sys

    import torch

    from grok_mlflow.runner.models import Normalize

    path = tmp_path / "old.pkl"
    model = torch.nn.Sequential(Normalize((0.5,), (0.25,)), torch.nn.Linear(3, 2))
    Normalize.__module__ = "grok_mlflow.models"                  # as an earlier run pickled it
    try:
        path.write_bytes(pickle.dumps(model))
    finally:
        Normalize.__module__ = "grok_mlflow.runner.models"
    assert b"grok_mlflow.models" in path.read_bytes() and b"runner" not in path.read_bytes()
    code = ("import pickle, sys, warnings, torch\n"
            "with warnings.catch_warnings(record=True) as seen:\n"
            "    warnings.simplefilter('always')\n"
            f"    model = pickle.loads(open({str(path)!r}, 'rb').read())\n"
            "print(type(model[0]).__module__, model(torch.ones(1, 3)).shape[-1])\n"
            "print([str(w.message) for w in seen if w.category is FutureWarning])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    first, warned = done.stdout.splitlines()
    assert first == "grok_mlflow.runner.models 2"
    assert "grok_mlflow.runner.models" in warned and "deprecated" in warned


# the flat module names of earlier versions: no code, message or page may name them
EARLIER_FLAT = ("stopper|progress|sweep|run_parts|runs|training|stacking|models|batches|data|"
                "settle|terminal|distributed|schedule|measure|probes|ensemble|tracking|"
                "sweep_runs|stored|recorder|history|plots|claims|report|phases|_modes|tasks|"
                "evaluation|robustness|regions|radius|deformation|partition|complexity|network")
# module paths inside the concept folders that were renamed for what they hold
RENAMED = (r"runner\.run_parts|runner\.runs|measures\._modes|_context|tracker\.settle|"
           r"tracker\.terminal|store\.stored|tracker\.measure|tracker\.preparing|"
           r"tracker\.opening")


def test_no_file_names_a_module_path_of_earlier_versions():
    """``grok_mlflow.phases``, ``grok_mlflow/sweep.py``, ``from grok_mlflow import training``:
    each names a path that no longer imports. Tag keys (``"grok_mlflow.sweep"``) are not
    paths; the deprecated ``grok_mlflow.models`` is named only where it is explained."""
    import subprocess

    dotted = re.compile(rf"(?<![\"\w])(?<!tags\.`)grok_mlflow\.({EARLIER_FLAT}|{RENAMED})\b(?![\"])")
    slashed = re.compile(rf"grok_mlflow/({EARLIER_FLAT}|{RENAMED.replace(chr(92) + '.', '/')})\.py")
    imported = re.compile(rf"from grok_mlflow import .*\b({EARLIER_FLAT})\b")
    explained = {"grok_mlflow/models.py", "grok_mlflow/__init__.py", "docs/layout.md",
                 "tests/test_layout.py"}
    files = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=REPO,
                           check=True).stdout.split()
    stale = []
    for name in files:
        path = REPO / name
        if name in explained or path.suffix not in {".py", ".md", ".yaml", ".toml", ".ipynb",
                                                    ".sh", ""} or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if dotted.search(line) or slashed.search(line) or imported.search(line):
                stale.append(f"{name}:{number}: {line.strip()[:100]}")
    assert stale == []


def test_no_module_is_longer_than_600_lines():
    """A room per concept, none too big to read: every module of the package at most 600
    lines."""
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}


def test_tests_mirror_the_package():
    modules = {p.stem for p in PACKAGE.rglob("*.py")} - UNTESTED_APART
    missing = sorted(m for m in modules if not (REPO / "tests" / f"test_{m}.py").exists())
    assert missing == []


def test_the_tracker_is_a_facade_of_at_most_250_lines():
    """``GrokTracker`` delegates to its parts (starting, step, run_log, stopping);
    counted as functions are, without its docstring."""
    path = PACKAGE / "tracker" / "tracking.py"
    cls = next(n for n in ast.parse(path.read_text()).body
               if isinstance(n, ast.ClassDef) and n.name == "GrokTracker")
    assert _code_lines(cls) <= 250
