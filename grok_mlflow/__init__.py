"""grok_mlflow: watch deep networks grok (Humayun, Balestriero, Baraniuk 2024, arXiv 2402.15555)
in MLflow: local complexity and adversarial robustness over training, for any PyTorch model.

The public names are imported lazily: MLflow imports ``grok_mlflow.plugin`` while it is itself
being imported, and that must not pull in torch or grok_mlflow's MLflow code.

The package is cut by concept (docs/layout.md): ``measures/`` (pure functions on models and
tensors), ``findings/`` (what a run or a sweep showed), ``store/`` (the one layer that talks to
MLflow), ``tracker/`` (when and on what to measure), ``runner/`` (one run end to end) and
``sweeps/`` (Ray Tune). Of the flat module paths of earlier versions only ``grok_mlflow.models``
remains (models pickled by older runs name it), with a ``FutureWarning``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DivergenceError": "tracker.tracking",
    "GrokTracker": "tracker.tracking",
    "LocalComplexity": "measures.complexity",
    "PartitionSlice": "measures.partition",
    "RunOptions": "tracker.tracking",
    "SettledStopper": "sweeps.stopper",
    "Settings": "settings",
    "SettingsError": "settings",
    "StackedTracker": "tracker.stacked",
    "TrackerSettings": "settings",
    "TrackingUnavailable": "store.recorder",
    "detect_phases": "findings.phases",
    "import_metrics": "store.tracking_store",
    "local_complexity": "measures.complexity",
    "member_views": "runner.stacking",
    "partition_slice": "measures.partition",
    "plot": "runner.recorded",
    "register_nonlinearity": "measures.network",
    "reproduction_report": "findings.report",
    "robust_accuracy": "measures.robustness",
    "train": "runner.training",
    "train_stacked": "runner.training",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'grok_mlflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
