"""A real `mlflow server` on 127.0.0.1 that goes away mid-run: no metric point is lost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from grok_mlflow.tracker.schedule import log_schedule

from conftest import subprocess_env


class Server:
    """`mlflow server` on loopback, in its own process group (stopped as a whole)."""

    def __init__(self, tmp_path, workers: int = 1):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.tmp_path, self.proc, self.workers = tmp_path, None, workers
        self.uri = f"http://127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
             str(self.port), "--backend-store-uri", f"sqlite:///{self.tmp_path}/server.db",
             "--artifacts-destination", str(self.tmp_path / "artifacts"),
             "--workers", str(self.workers)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            # no background job runner (GenAI scoring): it costs ~10 s of start-up on 2 cores
            env=subprocess_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.uri}/health", timeout=1).read()
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("mlflow server did not start")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


@pytest.fixture
def server(tmp_path, monkeypatch):
    srv = Server(tmp_path)
    srv.start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.uri)
    import mlflow
    mlflow.set_tracking_uri(srv.uri)
    yield srv
    srv.stop()


def train_args(**settings):
    args = [sys.executable, "-m", "grok_mlflow", "train", "--no-progress"]
    values = dict(steps=3000, eval_points=300, width=32, depth=2, lc_samples=30,
                  lc_directions=4, adv_points=0, checkpoint_every_s=0.2, partition_every=0)
    for k, v in {**values, **settings}.items():
        args += [f"--{k}", str(v)]
    return args


def child_env(uri):
    # let grok_mlflow's retries do the work: MLflow's own HTTP retries would hide the outage
    return subprocess_env(MLFLOW_TRACKING_URI=uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                          MLFLOW_HTTP_REQUEST_TIMEOUT="3")


def wait_for_points(client, minimum):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
        if runs and len(client.get_metric_history(runs[0].info.run_id, "lc/train")) >= minimum:
            return runs[0].info.run_id
        time.sleep(0.2)
    raise AssertionError("the run never logged")


def test_a_server_outage_under_mlflows_default_retries_neither_stalls_nor_loses(server,
                                                                                tmp_path):
    """MLflow's default HTTP settings, as users have them (up to 7 retries with exponential
    back-off: one call can wait minutes for a server that is down): the server goes away for
    ~30 s mid-run. Training never waits for it (the writes run behind it): no two consecutive
    measured steps are more than a few seconds apart, and no point is lost."""
    steps, points = 3000, 300          # 202 measurements, ~1 min of measuring alone
    proc = subprocess.Popen(train_args(steps=steps, eval_points=points, tracking_retry_s=300),
                            cwd=tmp_path, env=subprocess_env(MLFLOW_TRACKING_URI=server.uri),
                            stderr=subprocess.PIPE, text=True)
    try:
        run_id = wait_for_points(MlflowClient(), 20)
        server.stop()
        time.sleep(30)                 # ~30 s: the run goes on measuring without its server
        server.start()
        _, err = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    client = MlflowClient()
    assert client.get_run(run_id).info.status == "FINISHED"
    for key in ("lc/train", "acc/test"):
        history = client.get_metric_history(run_id, key)
        assert sorted(m.step for m in history) == log_schedule(steps, points), key
    # the metrics' timestamps are taken when measured: a stall would leave a ~30 s gap
    stamps = sorted(m.timestamp for m in client.get_metric_history(run_id, "lc/train"))
    gaps = [(b - a) / 1000 for a, b in zip(stamps, stamps[1:])]
    assert max(gaps) < 8.0, f"training waited {max(gaps):.1f} s between measurements"


def test_a_server_that_never_returns_leaves_a_file_to_import(server, tmp_path):
    from grok_mlflow.cli import main

    proc = subprocess.Popen(train_args(tracking_retry_s=2), cwd=tmp_path,
                            env=child_env(server.uri), stderr=subprocess.PIPE, text=True)
    run_id = wait_for_points(MlflowClient(), 20)
    server.stop()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    path = tmp_path / f"unsent_metrics_{run_id}.jsonl"
    assert f"saved to {path}. When it is back: grok-mlflow import {path}" in err
    server.start()
    assert main(["import", str(path)]) == 0
    client = MlflowClient()
    for key in ("lc/train", "acc/test"):
        assert [m.step for m in client.get_metric_history(run_id, key)] == \
            log_schedule(3000, 300), key
    assert main(["import", str(path)]) == 0           # importing twice adds nothing
    assert len(client.get_metric_history(run_id, "lc/train")) == len(log_schedule(3000, 300))
