"""What the MLflow plugin needs, without MLflow: the version tags and the mark of runs that
grok_mlflow starts. Kept apart from ``plugin`` so that grok_mlflow's own modules never import the
plugin: MLflow imports it from its entry point while MLflow itself is being imported, and a
plugin module that grok_mlflow had started importing first would be half-initialised then.
"""

from __future__ import annotations

import platform
import threading
from contextlib import contextmanager
from importlib import metadata
from typing import Iterator

__all__ = ["is_managed", "managed_run", "package_version", "version_tags"]

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


def is_managed() -> bool:
    """Whether a run created now (in this thread) is grok_mlflow's."""
    return getattr(_state, "depth", 0) > 0
