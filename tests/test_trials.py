"""A sweep's trials under Ray: a trial whose worker is killed mid-run resumes into its own child
run (alone and as a stacked group)."""

from __future__ import annotations

import os

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import write_spec as write


@pytest.mark.parametrize("ensemble", ["auto", "off"])
def test_a_trial_killed_once_resumes_into_the_same_child_run(tmp_path, monkeypatch, ensemble):
    """kill -9 of the trial's worker mid-run; Ray restarts it, and it continues its child
    run(s) from the last checkpoint. ``auto``: the two seeds are one stacked group (issue #19):
    both members resume together, their histories exactly an uninterrupted group's."""
    import glob
    import pathlib
    import signal
    import subprocess
    import sys
    import time

    from grok_mlflow.runner.training import train_stacked
    from grok_mlflow.settings import Settings
    from grok_mlflow.tracker.schedule import log_schedule

    from conftest import subprocess_env

    steps = 1600    # a trial of a few seconds even on quiet cores: the window the kill must hit
    base = dict(steps=steps, depth=2, width=32, lc_samples=30, lc_directions=4, adv_points=0,
                eval_points=80, checkpoint_every_s=0.2, partition_resolution=64, log_model=False)
    spec = write(tmp_path, f"base: {base}\n".replace("'", "")
                 + f"grid: {{seed: [0, 1]}}\nmax_concurrent: 1\nmax_failures: 2\n"
                   f"ensemble: {ensemble}\n")
    uri = mlflow.get_tracking_uri()
    # one OpenMP thread per trial: a 2-thread trial on cores another test keeps busy runs
    # 10-30x slower (its threads wait for each other at every op); resuming is what is tested
    env = subprocess_env(MLFLOW_TRACKING_URI=uri, RAY_AUTH_MODE="disabled", OMP_NUM_THREADS="1")
    sweep = subprocess.Popen([sys.executable, "-m", "grok_mlflow", "sweep", spec], cwd=tmp_path,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = MlflowClient()
    # No store query while the trial runs: its worker is looked for in /proc and a whole
    # checkpoint of an unfinished run on disk (the test store's artifacts are local files) every
    # 20 ms, a poll costing a few ms, so the kill lands mid-run even where the trial takes ~3 s
    # (polling the store, several queries a poll, missed that window twice on CI's busy cores)
    killed, at, worker = None, None, None
    deadline = time.monotonic() + 400
    while killed is None and time.monotonic() < deadline and sweep.poll() is None:
        if worker is None:
            # this sweep's own trial worker (a descendant of its driver), never another Ray's
            workers = [pid for pid in _descendants(sweep.pid)
                       if _cmdline(str(pid)).startswith("ray::ImplicitFunc")]
            worker = workers[0] if workers else None
        if worker is not None:
            for path in glob.glob(f"{tmp_path}/**/checkpoints/last.pt", recursive=True):
                step = _checkpoint_step(path)
                if step is not None and step < steps:
                    if _signal(worker, signal.SIGKILL):     # the trial's worker dies mid-run
                        killed, at = pathlib.Path(path).parts[-4], step  # <run>/artifacts/...
                    else:
                        worker = None                       # gone: look for the current one
                    break
        time.sleep(0.02)
    _, err = sweep.communicate(timeout=600)    # busy cores: the resumed trials are slow too
    assert killed is not None, (f"no running trial was found to kill (sweep exit "
                                f"{sweep.returncode}, worker {worker}): {err[-1500:]}")
    assert sweep.returncode == 0, err[-2000:]
    children = [r for e in client.search_experiments() for r in client.search_runs(
        [e.experiment_id], "tags.`grok_mlflow.trial` != ''")]
    assert sorted(c.data.tags["grok_mlflow.trial"] for c in children) == ["seed=0", "seed=1"]
    assert killed in {c.info.run_id for c in children}, (killed, at)   # killed at step `at`
    schedule = log_schedule(steps, 80)
    for child in children:
        assert child.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "lc/train")]
        assert steps == schedule       # no duplicated and no missing step, killed trial included
    if ensemble == "auto":
        assert {c.data.tags["grok_mlflow.stack"] for c in children} == {"stack 1/1 (2 runs)"}
        mlflow.set_experiment("reference")
        reference = train_stacked([Settings(**base, seed=k) for k in (0, 1)], progress=False)
        for child, uninterrupted in zip(sorted(children, key=lambda c: c.data.params["seed"]),
                                        reference):
            for key in ("lc/train", "acc/test", "loss/train"):
                assert [m.value for m in client.get_metric_history(child.info.run_id, key)] == \
                    [m.value for m in client.get_metric_history(uninterrupted.run_id, key)], key


def _signal(pid: int, sig: int) -> bool:
    """Send ``sig`` to ``pid``; False where the process is gone."""
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def _checkpoint_step(path: str) -> int | None:
    """The step of the checkpoint at ``path``; None where there is none yet or it is still being
    copied into place (a kill then would leave it torn, which is not what the test is about)."""
    try:
        return int(torch.load(path, weights_only=False)["step"])
    except Exception:  # noqa: BLE001 - absent, or half written
        return None


def _descendants(root: int) -> list[int]:
    """The processes below ``root`` in the process tree (from /proc's parent pids)."""
    parent = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as handle:
                    parent[int(pid)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, todo = [], [root]
    while todo:
        here = todo.pop()
        children = [pid for pid, ppid in parent.items() if ppid == here]
        found += children
        todo += children
    return found


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
