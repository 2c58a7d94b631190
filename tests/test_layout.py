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
