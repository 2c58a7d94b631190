"""Shared fixtures: every test gets its own MLflow store and no inherited MLflow environment."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
MNIST_T10K = REPO.parent / "shared" / "data" / "mnist-t10k"


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path, monkeypatch):
    """A fresh SQLite tracking store per test; MLFLOW_RUN_ID etc. from the caller do not leak in."""
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.tracking.fluent._active_experiment_id = None  # fluent API caches it across stores
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture
def tracking_uri(_isolated_mlflow) -> str:
    return _isolated_mlflow


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: this one, without MLflow run hand-over variables."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID",)}
    env.update(extra)
    return env
