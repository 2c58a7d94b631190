"""8 training processes logging at once into one SQLite store, and into one `mlflow server`:
every measured point of every run is in the store afterwards (counted against each run's own
``history.csv``, written from what it measured)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from test_outage import Server

from grok_mlflow.tracker.schedule import log_schedule

from conftest import subprocess_env

PROCESSES = 8
# at every eval step: acc and loss on train/test (4) + for each LC set (3) its mean, CI bounds
# and 2 layers (15); PGD, partition and phase points come on top
EXPECTED_MINIMUM = PROCESSES * len(log_schedule(150, 25)) * 19


def run_eight(uri: str, cwd) -> None:
    procs = []
    for seed in range(PROCESSES):
        args = [sys.executable, "-m", "grok_mlflow", "train", "--no-progress", "--seed", str(seed)]
        for k, v in dict(steps=150, eval_points=25, width=16, depth=2, lc_samples=20,
                         lc_directions=4, adv_points=3, adv_samples=20, adv_steps=2,
                         partition_every=4, partition_resolution=32,
                         checkpoint_every_s=0.3, log_model="false").items():
            args += [f"--{k}", str(v)]
        procs.append(subprocess.Popen(args, cwd=cwd, env=subprocess_env(MLFLOW_TRACKING_URI=uri),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]


def assert_every_point_present(uri: str) -> int:
    client = MlflowClient(uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == PROCESSES and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.params["seed"] for r in runs}) == PROCESSES
    total = 0
    for run in runs:
        text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/history.csv")
        measured: dict[str, dict[int, float]] = {}
        for row in csv.DictReader(io.StringIO(text)):
            for key, value in row.items():
                if key != "step" and value != "":
                    measured.setdefault(key, {})[int(row["step"])] = float(value)
        phases = {k for k in run.data.metrics                    # end-of-run summaries
                  if k.startswith(("grok/", "time/"))}
        assert set(measured) == set(run.data.metrics) - phases
        for key in phases:
            assert len(client.get_metric_history(run.info.run_id, key)) == 1, key
        for key, points in measured.items():
            stored = {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
            assert stored == pytest.approx(points, rel=1e-12), (run.info.run_id, key)
            total += len(stored)
    return total


def test_eight_processes_into_one_sqlite_store(tmp_path, tracking_uri):
    run_eight(tracking_uri, tmp_path)
    points = assert_every_point_present(tracking_uri)
    assert points >= EXPECTED_MINIMUM


def test_eight_processes_into_one_mlflow_server(tmp_path):
    server = Server(tmp_path, workers=4)      # MLflow's default: requests race between workers
    server.start()
    try:
        mlflow.set_tracking_uri(server.uri)
        run_eight(server.uri, tmp_path)
        points = assert_every_point_present(server.uri)
        assert points >= EXPECTED_MINIMUM
    finally:
        server.stop()
