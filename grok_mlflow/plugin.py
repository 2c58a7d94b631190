"""The MLflow plugin: a run-context provider registered under the ``mlflow.run_context_provider``
entry point (see pyproject.toml). MLflow loads it while importing itself, so this module imports
nothing of grok_mlflow and nothing heavy.

It tags only the runs grok_mlflow starts (``managed_run`` marks them while MLflow creates them):
every other MLflow run in the same environment is left alone. It never asks CUDA anything (the
tracker tags the device from the model it measures).
"""

from __future__ import annotations

import platform
import threading
from contextlib import contextmanager
from importlib import metadata
from typing import Iterator

from mlflow.tracking.context.abstract_context import RunContextProvider

__all__ = ["GrokContextProvider", "managed_run", "package_version", "version_tags"]

_state = threading.local()


def package_version() -> str:
    """The installed grok_mlflow version (``unknown`` when run from a source tree)."""
    try:
        return metadata.version("grok_mlflow")
    except metadata.PackageNotFoundError:
        return "unknown"


def version_tags() -> dict[str, str]:
    """grok_mlflow, Python and torch versions, from package metadata (no import of torch)."""
    tags = {"grok_mlflow.version": package_version(),
            "grok_mlflow.python": platform.python_version()}
    try:
        tags["grok_mlflow.torch"] = metadata.version("torch")
    except metadata.PackageNotFoundError:
        pass
    return tags


@contextmanager
def managed_run() -> Iterator[None]:
    """Inside the block, runs that MLflow creates (in this thread) are grok_mlflow's."""
    depth = getattr(_state, "depth", 0)
    _state.depth = depth + 1
    try:
        yield
    finally:
        _state.depth = depth


class GrokContextProvider(RunContextProvider):
    """Tags the runs grok_mlflow starts with ``version_tags()``; no other run."""

    def in_context(self) -> bool:
        return getattr(_state, "depth", 0) > 0

    def tags(self) -> dict[str, str]:
        return version_tags()
