"""grok_mlflow: watch deep networks grok (Humayun, Balestriero, Baraniuk 2024, arXiv 2402.15555)
in MLflow: local complexity and adversarial robustness over training, for any PyTorch model.

The public names are imported lazily: MLflow imports ``grok_mlflow.plugin`` while it is itself
being imported, and that must not pull in torch or grok_mlflow's MLflow code.

The package is cut by concept (docs/layout.md): ``measures/`` (pure functions on models and
tensors), ``findings/`` (what a run or a sweep showed), ``store/`` (the one layer that talks to
MLflow), ``tracker/`` (when and on what to measure), ``runner/`` (one run end to end) and
``sweeps/`` (Ray Tune). The flat module paths of earlier versions (``grok_mlflow.deformation``,
``grok_mlflow.models``: models pickled by older runs name it) still import, as the same module.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

# {earlier flat module: where it lives now}, each imported under both names as one module
_MOVED: dict[str, str] = {
    "stopper": "sweeps.stopper",
    "progress": "sweeps.progress",
    "sweep": "sweeps.sweep",
    "run_parts": "runner.run_parts",
    "runs": "runner.runs",
    "training": "runner.training",
    "stacking": "runner.stacking",
    "models": "runner.models",
    "batches": "runner.batches",
    "data": "runner.data",
    "settle": "tracker.settle",
    "terminal": "tracker.terminal",
    "distributed": "tracker.distributed",
    "schedule": "tracker.schedule",
    "measure": "tracker.measure",
    "probes": "tracker.probes",
    "ensemble": "tracker.stacked",
    "tracking": "tracker.tracking",
    "sweep_runs": "store.sweep_runs",
    "stored": "store.stored",
    "recorder": "store.recorder",
    "history": "findings.history",
    "plots": "findings.plots",
    "claims": "findings.claims",
    "report": "findings.report",
    "phases": "findings.phases",
    "_modes": "measures._modes",
    "tasks": "measures.tasks",
    "evaluation": "measures.evaluation",
    "robustness": "measures.robustness",
    "regions": "measures.regions",
    "radius": "measures.radius",
    "deformation": "measures.deformation",
    "partition": "measures.partition",
    "complexity": "measures.complexity",
    "network": "measures.network",
}

_EXPORTS = {
    "DivergenceError": "tracker.tracking",
    "GrokTracker": "tracker.tracking",
    "LocalComplexity": "measures.complexity",
    "PartitionSlice": "measures.partition",
    "SettledStopper": "sweeps.stopper",
    "Settings": "settings",
    "SettingsError": "settings",
    "StackedTracker": "tracker.stacked",
    "TrackerSettings": "settings",
    "TrackingUnavailable": "store.recorder",
    "detect_phases": "findings.phases",
    "import_metrics": "store.recorder",
    "local_complexity": "measures.complexity",
    "member_views": "runner.stacking",
    "partition_slice": "measures.partition",
    "plot": "runner.runs",
    "register_nonlinearity": "measures.network",
    "reproduction_report": "findings.report",
    "robust_accuracy": "measures.robustness",
    "train": "runner.training",
    "train_stacked": "runner.training",
}
__all__ = sorted(_EXPORTS)


class _EarlierPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import grok_mlflow.<earlier flat name>`` gives the moved module itself (one object:
    its classes, its state and a patch on either name are shared)."""

    specs: dict[str, Any] = {}

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package == __name__ and name in _MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module(f"{__name__}.{_MOVED[spec.name.rpartition('.')[2]]}")
        self.specs[spec.name] = module.__spec__  # importlib sets the alias's spec on it next
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = self.specs[module.__spec__.name]


if not any(isinstance(f, _EarlierPaths) for f in sys.meta_path):
    sys.meta_path.append(_EarlierPaths())


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    if name in _MOVED:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'grok_mlflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
