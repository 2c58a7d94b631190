"""A real two-node Ray cluster on this machine (``ray start --head`` and ``ray start --address``,
one CPU each), an ``mlflow server`` on 127.0.0.1 as the store, and a sweep with --ray-address:
trials run on both nodes, and when the second node is stopped mid-sweep its trial restarts on
the head and continues its own child run from its checkpoint."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from mlflow.tracking import MlflowClient

from grok_mlflow.findings.history import read_history_csv
from grok_mlflow.tracker.schedule import log_schedule

from conftest import subprocess_env

STEPS, POINTS = 10000, 12      # ~20 s a trial: both still run when the poll (0.5 s) looks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], env: dict, log) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    try:
        os.killpg(proc.pid, sig)
        proc.wait(15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


def test_a_sweep_on_two_ray_nodes_survives_losing_one(tmp_path):
    ray_port, mlflow_port = free_port(), free_port()
    uri = f"http://127.0.0.1:{mlflow_port}"
    temp = f"/tmp/gm_rc_{os.getpid()}"          # Ray's socket paths are length-capped
    env = subprocess_env(RAY_AUTH_MODE="disabled", MLFLOW_TRACKING_URI=uri,
                         RAY_health_check_period_ms="1000",
                         RAY_health_check_failure_threshold="3", OMP_NUM_THREADS="1")
    log = open(tmp_path / "cluster.log", "w")
    procs = []
    try:
        procs.append(start([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
                            "--port", str(mlflow_port), "--workers", "1",
                            "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
                            "--artifacts-destination", str(tmp_path / "artifacts")], env, log))
        procs.append(start(["ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1",
                            f"--port={ray_port}", "--num-cpus=1", "--include-dashboard=false",
                            "--disable-usage-stats", f"--temp-dir={temp}"], env, log))
        wait_for(lambda: healthy(f"{uri}/health"), 120, "the mlflow server")
        wait_for(lambda: os.path.isdir(temp) and any(n.startswith("session_")
                                                     for n in os.listdir(temp)), 120, "the head")
        second = start(["ray", "start", "--block", f"--address=127.0.0.1:{ray_port}",
                        "--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"],
                       env, log)
        procs.append(second)
        spec = tmp_path / "spec.yaml"
        spec.write_text(f"name: two_nodes\nensemble: off\nmax_failures: 2\nresources: {{cpu: 1}}\n"
                        f"base: {{steps: {STEPS}, depth: 2, width: 64, eval_points: {POINTS}, "
                        "lc_samples: 30, lc_directions: 4, adv_points: 0, partition_every: 0, "
                        "checkpoint_every_s: 1, log_model: false}\ngrid: {seed: [0, 1]}\n")
        time.sleep(5)                            # the second node registers with the head
        sweep = subprocess.Popen([sys.executable, "-m", "grok_mlflow", "sweep", str(spec),
                                  "--ray-address", f"127.0.0.1:{ray_port}",
                                  "--progress-every", "5"], cwd=tmp_path, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        client = MlflowClient(uri)

        def children():
            return [r for e in client.search_experiments()
                    for r in client.search_runs([e.experiment_id])
                    if "mlflow.parentRunId" in r.data.tags]

        def checkpointed():            # both trials running on two nodes, both checkpointed
            runs = children()
            return (len({r.data.tags.get("grok_mlflow.ray_node") for r in runs}) == 2
                    and all(client.list_artifacts(r.info.run_id, "checkpoints") for r in runs))

        wait_for(checkpointed, 300, "two trials on two nodes")
        stop(second, signal.SIGKILL)                # the second node is lost mid-sweep
        out, _ = sweep.communicate(timeout=600)
        assert sweep.returncode == 0, out[-3000:]
        runs = children()
        assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
        assert len({r.data.tags["grok_mlflow.ray_node"] for r in runs}) == 2
        resumed = [r for r in runs if "grok_mlflow.ray_node_resumed" in r.data.tags]
        assert len(resumed) == 1, out[-3000:]       # the lost node's trial, continued...
        (other,) = [r for r in runs if r is not resumed[0]]
        tags = resumed[0].data.tags                 # ... on the head, where the other one ran
        assert tags["grok_mlflow.ray_node_resumed"] == other.data.tags["grok_mlflow.ray_node"]
        assert tags["grok_mlflow.ray_node_resumed"] != tags["grok_mlflow.ray_node"]
        for run in runs:                            # every point once, on the schedule
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "lc/train")]
            assert steps == log_schedule(STEPS, POINTS)
            text = client.download_artifacts(run.info.run_id, "history.csv", str(tmp_path))
            assert sorted(read_history_csv(open(text).read())) == log_schedule(STEPS, POINTS)
    finally:
        for proc in reversed(procs):
            stop(proc)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
