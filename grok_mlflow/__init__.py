"""grok_mlflow: watch deep networks grok (Humayun, Balestriero, Baraniuk 2024, arXiv 2402.15555)
in MLflow: local complexity and adversarial robustness over training, for any PyTorch model.

The public names are imported lazily: MLflow imports ``grok_mlflow.plugin`` while it is itself
being imported, and that must not pull in torch or grok_mlflow's MLflow code.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DivergenceError": "tracking",
    "GrokTracker": "tracking",
    "LocalComplexity": "complexity",
    "PartitionSlice": "partition",
    "SettledStopper": "stopper",
    "Settings": "settings",
    "SettingsError": "settings",
    "StackedTracker": "ensemble",
    "TrackerSettings": "settings",
    "TrackingUnavailable": "recorder",
    "detect_phases": "phases",
    "import_metrics": "recorder",
    "local_complexity": "complexity",
    "member_views": "stacking",
    "partition_slice": "partition",
    "register_nonlinearity": "network",
    "reproduction_report": "report",
    "robust_accuracy": "robustness",
    "train": "training",
    "train_stacked": "training",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'grok_mlflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
