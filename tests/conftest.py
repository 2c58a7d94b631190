"""Shared fixtures: every test gets its own MLflow store and no inherited MLflow environment."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from grok_mlflow.store.tracking_store import create_sqlite_store_once

REPO = Path(__file__).resolve().parents[1]
MNIST_T10K = REPO.parent / "shared" / "data" / "mnist-t10k"


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path, monkeypatch):
    """A fresh SQLite tracking store per test; MLFLOW_RUN_ID etc. from the caller do not leak in.
    The test runs in its temporary directory, so that what MLflow and Ray put relative to the
    working directory (a SQLite store's artifact root ``./mlruns``, ``./ray_results``) lands
    there and not in the checkout; caches (Fashion-MNIST's unpacked files) go there too."""
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
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
    """The environment for a child process: this one, without MLflow run hand-over variables.

    A SQLite store it names is created first (under the package's creation lock): a test that
    opens the store while its child is still creating it would race the child's schema
    migrations (CI saw ``table ... already exists`` from the test's own ``MlflowClient()``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID",)}
    env.update(extra)
    create_sqlite_store_once(env.get("MLFLOW_TRACKING_URI", ""))
    return env


def write_spec(tmp_path, text: str, name: str = "spec.yaml") -> str:
    """``text`` written to ``tmp_path / name`` (a sweep spec, a preset); its path."""
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def only_run(client=None):
    """The one run in the tracking store (asserts there is exactly one)."""
    from mlflow.tracking import MlflowClient

    client = client or MlflowClient()
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1
    return runs[0]


class Scale(nn.Module):
    """A "nonlinearity" that is the identity (registered as one in a test): with orthogonal
    weights the net is a similarity."""

    def forward(self, x):
        return x


class TinyResNet(nn.Module):
    """A network that is not in grok_mlflow's MODELS: a residual MLP block."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.stem = nn.Sequential(nn.Flatten(), nn.Linear(64, width))
        self.block = nn.Sequential(nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        h = self.stem(x)
        return self.head(h + self.block(h))


def digits(n_train=400):
    """The digits as (train, test) TensorDatasets of (1, 8, 8) images in [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]      # (1797, 1, 8, 8)
    y = torch.tensor(d.target)
    return TensorDataset(x[:n_train], y[:n_train]), TensorDataset(x[n_train:], y[n_train:])
