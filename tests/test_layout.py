"""The README's layout sentence, checked: every MLflow call lives in ``grok_mlflow.recorder``
(``plugin`` implements MLflow's own provider interface and makes no call)."""

from __future__ import annotations

import re

from conftest import REPO


def test_only_the_recorder_imports_mlflow():
    importers = sorted(p.name for p in (REPO / "grok_mlflow").glob("*.py")
                       if re.search(r"^\s*(import mlflow|from mlflow)", p.read_text(), re.M))
    assert importers == ["plugin.py", "recorder.py"]
    plugin = (REPO / "grok_mlflow" / "plugin.py").read_text()
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
