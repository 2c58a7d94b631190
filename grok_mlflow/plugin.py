"""The MLflow plugin: a run-context provider registered under the ``mlflow.run_context_provider``
entry point (see pyproject.toml). MLflow loads it while importing itself, so this module imports
nothing of grok_mlflow and nothing heavy.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata

from mlflow.tracking.context.abstract_context import RunContextProvider

__all__ = ["GrokContextProvider", "package_version"]


def package_version() -> str:
    """The installed grok_mlflow version (``unknown`` when run from a source tree)."""
    try:
        return metadata.version("grok_mlflow")
    except metadata.PackageNotFoundError:
        return "unknown"


class GrokContextProvider(RunContextProvider):
    """Tags every MLflow run created while grok_mlflow is installed with the package version,
    Python and torch versions, and the device (``grok_mlflow.device``: GPU name or cpu).

    Versions come from package metadata; CUDA is only asked about when torch is already imported
    (this runs in every MLflow process, the UI server included).
    """

    def in_context(self) -> bool:
        return True

    def tags(self) -> dict[str, str]:
        tags = {"grok_mlflow.version": package_version(),
                "grok_mlflow.python": platform.python_version()}
        try:
            tags["grok_mlflow.torch"] = metadata.version("torch")
        except metadata.PackageNotFoundError:
            pass
        torch = sys.modules.get("torch")
        if torch is not None:
            cuda = torch.cuda.is_available()
            tags["grok_mlflow.cuda"] = torch.version.cuda or "none"
            tags["grok_mlflow.device"] = (torch.cuda.get_device_name(0) if cuda
                                          else f"cpu ({platform.machine()})")
        return tags
