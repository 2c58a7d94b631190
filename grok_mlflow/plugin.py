"""The MLflow plugin: a run-context provider registered under the ``mlflow.run_context_provider``
entry point (see pyproject.toml). MLflow loads it while importing itself, so this module imports
nothing of grok_mlflow but ``run_tags`` (no MLflow, nothing heavy), and nothing of grok_mlflow
imports it.

It tags only the runs grok_mlflow starts (``managed_run`` marks them while MLflow creates them):
every other MLflow run in the same environment is left alone. It never asks CUDA anything (the
tracker tags the device from the model it measures).
"""

from __future__ import annotations

from mlflow.tracking.context.abstract_context import RunContextProvider

from .run_tags import is_managed, managed_run, package_version, version_tags

__all__ = ["GrokContextProvider", "managed_run", "package_version", "version_tags"]


class GrokContextProvider(RunContextProvider):
    """Tags the runs grok_mlflow starts with ``version_tags()``; no other run."""

    def in_context(self) -> bool:
        return is_managed()

    def tags(self) -> dict[str, str]:
        return version_tags()
