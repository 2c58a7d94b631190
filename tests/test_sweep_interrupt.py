"""A sweep stopped by a signal ends truthfully and ``grok-mlflow sweep SPEC --resume`` finishes
it: the same parent and child runs, every scheduled step logged once, the histories of an
uninterrupted run (issue #43). Real Ray, real signals, a real MLflow store."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from grok_mlflow.settings import Settings
from grok_mlflow.sweeps.spec import load_spec
from grok_mlflow.sweeps.sweep import resumable_parent
from grok_mlflow.tracker.schedule import log_schedule

from conftest import subprocess_env

STEPS = 1600
BASE = dict(steps=STEPS, depth=2, width=32, lc_samples=30, lc_directions=4, adv_points=0,
            eval_points=80, checkpoint_every_s=0.2, partition_resolution=64, log_model=False)


def _spec(tmp_path, ensemble: str, name: str = "spec.yaml", **change) -> str:
    base = {**BASE, **change}
    path = tmp_path / name
    path.write_text(f"name: intr\nbase: {base}\n".replace("'", "")
                    + f"grid: {{seed: [0, 1]}}\nmax_concurrent: 1\nensemble: {ensemble}\n")
    return str(path)


def _sweep(tmp_path, spec: str, *extra: str) -> subprocess.Popen:
    env = subprocess_env(MLFLOW_TRACKING_URI=mlflow.get_tracking_uri(), RAY_AUTH_MODE="disabled",
                         OMP_NUM_THREADS="1")
    # its own session: a signal to its process group is what a terminal's Ctrl-C sends
    return subprocess.Popen([sys.executable, "-m", "grok_mlflow", "sweep", spec, *extra],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _stop_mid_run(tmp_path, sweep: subprocess.Popen, sig: int, group: bool = True) -> str:
    """Send ``sig`` to the sweep's process group (``group``: Ray's processes too, as a
    terminal's Ctrl-C or a lost machine) or to its driver alone (``kill PID``) as soon as a
    trial's run has a checkpoint before its last step (a trial mid-run: the deterministic
    point); the sweep's stderr."""
    deadline = time.monotonic() + 400
    sent = False
    while not sent and time.monotonic() < deadline and sweep.poll() is None:
        for path in glob.glob(f"{tmp_path}/**/checkpoints/last.pt", recursive=True):
            step = _checkpoint_step(path)
            if step is not None and step < STEPS:
                (os.killpg if group else os.kill)(sweep.pid, sig)
                sent = True
                break
        time.sleep(0.02)
    _, err = sweep.communicate(timeout=600)
    assert sent, f"no trial was caught mid-run (exit {sweep.returncode}): {err[-1500:]}"
    return err


def _checkpoint_step(path: str) -> int | None:
    try:
        return int(torch.load(path, weights_only=False)["step"])
    except Exception:  # noqa: BLE001 - absent, or half written
        return None


def _runs(client):
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = sorted((r for r in runs if "mlflow.parentRunId" in r.data.tags),
                      key=lambda r: r.data.tags["grok_mlflow.trial"])
    return parents, children


@pytest.mark.parametrize("sig, ensemble", [(signal.SIGINT, "off"), (signal.SIGTERM, "auto")])
def test_a_signal_ends_the_sweep_killed_and_resume_finishes_it(tmp_path, sig, ensemble):
    """Ctrl-C to the process group (one process per trial) and SIGTERM to the driver (the two
    seeds one stacked group; to the whole group it would end Ray's own processes at once): exit
    128 + signal, parent and the running trial's child KILLED and tagged with the signal and its
    step, the continuing command on the last line; a changed spec is refused; ``--resume``
    finishes the same runs with exactly an uninterrupted run's histories."""
    client = MlflowClient()
    spec = _spec(tmp_path, ensemble)
    err = _stop_mid_run(tmp_path, _sweep(tmp_path, spec), sig, group=sig == signal.SIGINT)
    name = signal.Signals(sig).name
    lines = err.strip().splitlines()
    assert lines[-1].strip() == f"grok-mlflow sweep {spec} --resume", err[-1500:]
    assert f"Sweep intr interrupted by {name}" in err and "Traceback" not in err, err[-1500:]
    assert "Tuner.restore" not in err and "logging.cc" not in err, err[-1500:]
    (parent,), children = _runs(client)
    assert parent.info.status == "KILLED"
    assert parent.data.tags["grok_mlflow.interrupted"].startswith(f"Sweep intr interrupted by {name}")
    stopped = [c for c in children if c.info.status == "KILLED"]
    assert stopped and all(c.info.status in ("KILLED", "FINISHED") for c in children)
    for child in stopped:
        why = child.data.tags["grok_mlflow.interrupted"]
        assert why.startswith(f"sweep interrupted by {name}; continue with `grok-mlflow sweep "
                              f"{spec} --resume`; last logged step "), child.data.tags
        # it stopped at its next step with a checkpoint of that step (not its last periodic one)
        (path,) = glob.glob(f"{tmp_path}/**/{child.info.run_id}/artifacts/checkpoints/last.pt",
                            recursive=True)
        assert _checkpoint_step(path) >= int(why.rsplit(" ", 1)[1]) > 0
    # a spec changed since: one line, before Ray or any run
    changed = _spec(tmp_path, ensemble, "changed.yaml", steps=1200)
    os.replace(changed, spec)
    refused = _sweep(tmp_path, spec, "--resume")
    _, err = refused.communicate(timeout=120)
    assert refused.returncode == 2
    assert err.strip() == (f"grok-mlflow: error: resume: the spec changed since sweep run "
                           f"{parent.info.run_id}: base.steps (1600 -> 1200); put it back, or "
                           "run it as a new sweep without --resume"), err
    os.replace(_spec(tmp_path, ensemble, "back.yaml"), spec)

    resumed = _sweep(tmp_path, spec, "--resume")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    (again,), children = _runs(client)
    assert again.info.run_id == parent.info.run_id and again.info.status == "FINISHED"
    assert again.data.tags["grok_mlflow.resumed"] == "1"
    assert [c.data.tags["grok_mlflow.trial"] for c in children] == ["seed=0", "seed=1"]
    assert {c.info.run_id for c in stopped} <= {c.info.run_id for c in children}
    schedule = log_schedule(STEPS, 80)
    for child in children:
        assert child.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "lc/train")]
        assert steps == schedule            # each scheduled step exactly once, resumed included
    assert "phases.csv" in {f.path for f in client.list_artifacts(parent.info.run_id)}
    if ensemble == "off":                   # the stopped trial's history: an uninterrupted one's
        from grok_mlflow.runner.training import train

        mlflow.set_experiment("reference")
        child = stopped[0]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)            # as the trial ran (OMP_NUM_THREADS=1): same sums
        try:
            reference = train(Settings(**BASE, seed=int(child.data.params["seed"])),
                              progress=False)
        finally:
            torch.set_num_threads(threads)
        for key in ("lc/train", "acc/test", "loss/train"):
            assert [m.value for m in client.get_metric_history(child.info.run_id, key)] == \
                [m.value for m in client.get_metric_history(reference.run_id, key)], key


def test_a_driver_killed_hard_leaves_runs_that_resume_finishes(tmp_path):
    """kill -9 of the whole sweep (a lost node): parent and child stay RUNNING, without a
    process; ``--resume`` (latest) recognises them as interrupted and finishes them."""
    client = MlflowClient()
    spec = _spec(tmp_path, "off")
    _stop_mid_run(tmp_path, _sweep(tmp_path, spec), signal.SIGKILL)
    (parent,), children = _runs(client)
    assert parent.info.status == "RUNNING" and any(c.info.status == "RUNNING" for c in children)
    assert resumable_parent(load_spec(spec), "latest").info.run_id == parent.info.run_id
    resumed = _sweep(tmp_path, spec, "--resume")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    (again,), children = _runs(client)
    assert again.info.run_id == parent.info.run_id and again.info.status == "FINISHED"
    schedule = log_schedule(STEPS, 80)
    assert [c.info.status for c in children] == ["FINISHED", "FINISHED"]
    for child in children:
        assert [m.step for m in client.get_metric_history(child.info.run_id, "lc/train")] == \
            schedule
    # nothing left to continue: one line
    finished = _sweep(tmp_path, spec, "--resume")
    _, err = finished.communicate(timeout=120)
    assert finished.returncode == 2
    assert err.strip() == ("grok-mlflow: error: resume: no unfinished sweep 'intr' in "
                           "experiment 'intr'; run it without --resume")
