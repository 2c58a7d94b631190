"""Ray Tune sweeps: spec validation, and a real 4-trial sweep into a real MLflow store."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from grok_mlflow.cli import main
from grok_mlflow.settings import SettingsError
from grok_mlflow.store.recorder import absolute_tracking_uri
from grok_mlflow.sweeps.sweep import load_spec, trial_name

from conftest import REPO


def write(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_shipped_specs_are_valid():
    specs = sorted((REPO / "projects" / "sweeps").glob("*.yaml"))
    names = {p.stem for p in specs}
    assert {"width", "depth", "weight_decay", "train_size", "batch_norm", "random_labels"} <= names
    assert any(n.startswith("digits_") for n in names)
    for path in specs:
        assert load_spec(str(path)).trials()


def test_spec_grid_is_the_full_product_in_spec_order(tmp_path):
    spec = load_spec(write(tmp_path, "base: {steps: 10}\ngrid: {width: [8, 16], seed: [0, 1, 2]}\n"))
    assert len(spec.trials()) == 6 and spec.trials()[1] == {"width": 8, "seed": 1}
    assert spec.base.steps == 10 and spec.name == "spec"
    assert trial_name({"width": 200, "depth": 4}) == "width=200,depth=4"
    assert trial_name({"lr": 0.001, "batchnorm": True}) == "lr=0.001,batchnorm=true"


def test_trials_that_keep_every_shape_are_stacked_in_groups(tmp_path):
    """width changes shapes (two groups); seed and weight decay do not; max_members cuts a
    group; ensemble: off (YAML's bare off) runs every trial alone."""
    spec = load_spec(write(tmp_path, "base: {steps: 10}\ngrid: {width: [8, 16], seed: [0, 1, 2],"
                                     " weight_decay: [0.0, 0.1]}\nmax_members: 4\n"))
    groups = [[trial_name(t) for t in g] for g in spec.stack_groups()]
    assert [len(g) for g in groups] == [3, 3, 3, 3]               # 6 per width, at most 4: 3 + 3
    assert groups[0] == ["width=8,seed=0,weight_decay=0", "width=8,seed=0,weight_decay=0.1",
                         "width=8,seed=1,weight_decay=0"]
    assert all(t.startswith("width=16") for g in groups[2:] for t in g)
    # a machine that runs N trials at once gets at least N groups: the largest are cut again
    assert [len(g) for g in spec.stack_groups(slots=4)] == [3, 3, 3, 3]
    assert [len(g) for g in spec.stack_groups(slots=7)] == [2, 2, 1, 1, 2, 2, 2]
    assert [len(g) for g in spec.stack_groups(slots=20)] == [1] * 12
    assert sum(spec.stack_groups(slots=7), []) == spec.trials()   # every trial once, in order
    one_shape = load_spec(write(tmp_path, "grid: {seed: [0, 1, 2, 3, 4, 5, 6, 7]}\n", "one.yaml"))
    assert [len(g) for g in one_shape.stack_groups(slots=2)] == [4, 4]
    off = load_spec(write(tmp_path, "grid: {seed: [0, 1]}\nensemble: off\n", "off.yaml"))
    assert off.ensemble == "off" and [len(g) for g in off.stack_groups()] == [1, 1]
    # full batch: different training-set sizes are different shapes
    full = load_spec(write(tmp_path, "base: {batch_size: 0}\ngrid: {train_size: [500, 1000],"
                                     " seed: [0, 1]}\n", "full.yaml"))
    assert [len(g) for g in full.stack_groups()] == [2, 2]


def test_a_cpu_sweep_runs_as_many_groups_at_once_as_it_would_run_trials(tmp_path):
    from grok_mlflow.sweeps.sweep import TrialGroup, _resources, _slots

    spec = load_spec(write(tmp_path, "grid: {seed: [0, 1, 2, 3, 4, 5, 6, 7]}\n"
                                     "resources: {cpu: 1}\nmax_concurrent: 2\n"))
    assert _slots(spec, {"CPU": 2.0}) == 2 and _slots(spec, {"CPU": 8.0}) == 2
    assert _slots(dataclasses.replace(spec, max_concurrent=0), {"CPU": 3.0}) == 3
    assert _slots(dataclasses.replace(spec, max_concurrent=0), {"CPU": 0.5}) == 1
    gpu = dataclasses.replace(spec, resources={"cpu": 1.0, "gpu": 0.25})
    assert _slots(gpu, {"CPU": 16.0, "GPU": 1.0}) == 1          # GPU groups stay whole
    group = {"trial": TrialGroup("stack 1/1 (4 runs)", [None] * 4)}
    assert _resources(spec, group, cpus=2.0, slots=2).bundles == [{"CPU": 1.0}]
    assert _resources(spec, group, cpus=2.0, slots=1).bundles == [{"CPU": 2.0}]
    assert _resources(spec, {"trial": None}, cpus=2.0, slots=2).bundles == [{"CPU": 1.0}]


@pytest.mark.parametrize("text, message", [
    ("base: {steps: 10}\n", "needs a 'grid:' mapping"),
    ("grid: {colour: [1]}\n", "unknown setting(s) colour"),
    ("grid: {width: [8, -1]}\n", "width: must be >= 1"),
    ("grid: {width: 8}\n", "grid.width: must be a non-empty list"),
    ("grid: {width: [8]}\nworkers: 3\n", "unknown key(s) workers"),
    ("grid: {width: [8]}\nresources: {tpu: 1}\n", "resources must be"),
    ("grid: {width: [8]}\nensemble: maybe\n", "ensemble must be auto or off, got 'maybe'"),
    ("grid: {width: [8]}\nmax_members: 0\n", "max_members must be an integer >= 1"),
])
def test_bad_specs_fail_with_one_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load_spec(path)
    assert message in str(info.value) and str(info.value).startswith(f"spec {path}")


def test_cli_refuses_a_missing_spec_before_starting_ray(capsys):
    assert main(["sweep", "no/such/spec.yaml"]) == 2
    assert capsys.readouterr().err.strip() == (
        "grok-mlflow: error: spec: cannot read 'no/such/spec.yaml': No such file or directory")


def test_relative_sqlite_uri_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri("sqlite:///rel.db")
    assert absolute_tracking_uri() == f"sqlite:///{tmp_path}/rel.db"


def test_a_four_trial_digits_sweep_leaves_a_parent_and_four_children(tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.chdir(tmp_path)
    spec = write(tmp_path, """name: tiny
base: {steps: 200, depth: 2, lc_samples: 50, lc_directions: 5, adv_samples: 50, eval_points: 8,
       adv_points: 3}
grid:
  width: [16, 64]
  seed: [0, 1]
resources: {cpu: 1}
max_concurrent: 2
claims:
  - {text: "Width changes the final train LC", figure: "5", quantity: lc/train, trend: present}
""")
    assert main(["sweep", spec]) == 0
    client = MlflowClient()
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.params["grid.width"] == "16,64"
    experiment = client.get_experiment(parent.info.experiment_id)   # one experiment per sweep
    assert experiment.name == "tiny" and {c.info.experiment_id for c in children} == {
        experiment.experiment_id}
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert {c.data.tags["mlflow.runName"] for c in children} == {
        "width=16,seed=0", "width=16,seed=1", "width=64,seed=0", "width=64,seed=1"}
    # ensemble: auto (the default): the two seeds of each width train as one stacked model
    assert parent.data.params["ensemble"] == "auto" and parent.data.params["stacked_groups"] == "2"
    assert {c.data.tags["mlflow.runName"]: c.data.tags["grok_mlflow.stack"] for c in children} \
        == {"width=16,seed=0": "stack 1/2 (2 runs)", "width=16,seed=1": "stack 1/2 (2 runs)",
            "width=64,seed=0": "stack 2/2 (2 runs)", "width=64,seed=1": "stack 2/2 (2 runs)"}
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert {"acc/test", "lc/train", "adv/acc/eps_0.1"} <= set(child.data.metrics)
        assert any(k.startswith("grok/") for k in child.data.metrics)
        assert child.data.params["width"] in ("16", "64") and child.data.params["steps"] == "200"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"phases.csv", "figures", "spec"} <= artifacts
    figures = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert figures == {"figures/lc.png", "figures/accuracy.png", "figures/phases.png",
                       "figures/claims.png"}
    table = list(csv.DictReader(io.StringIO(mlflow.artifacts.load_text(
        f"runs:/{parent.info.run_id}/phases.csv"))))
    assert len(table) == 4 and {r["status"] for r in table} == {"FINISHED"}
    report = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/report.md")
    pid, eid = parent.info.run_id, experiment.experiment_id
    link = (f"#/experiments/{eid}/runs?workflowType=machine_learning&compareRunsMode=CHART"
            f"&viewStateShareKey={pid}")
    # the claim's verdict: first in the description (after the link), in claims.md and its
    # figure, on the terminal's last line and in `grok-mlflow report PARENT`
    claims = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/claims.md")
    verdict = ("- **SUPPORTED**: Width changes the final train LC (fig. 5): r = 0.05: "
               "lc/train present in 100% of trials [95% interval 40%, 100%] (4 of 4; Clopper-Pearson; 0 of 4 "
               "censored).")
    assert claims.splitlines()[2] == verdict
    assert parent.data.tags["mlflow.note.content"] == \
        f"[Compare the trials]({link})\n\n{claims}\n{report}"
    assert "figures/claims.png" in {a.path for a in client.list_artifacts(pid, "figures")}
    err = capsys.readouterr().err.splitlines()
    assert err[-2:] == ["The paper's claims:", verdict[2:].replace("**", "")]
    assert main(["report", pid]) == 0
    assert capsys.readouterr().out == f"{claims}\n{report}"
    # the comparison view: the experiment's description links it; its filter lists the trials
    assert experiment.tags["mlflow.note.content"].startswith(
        f"**Sweep tiny** (4 trials over width, seed, run `{pid[:8]}`): [compare the trials]({link})")
    view = json.loads(experiment.tags[f"mlflow.sharedViewState.{pid}"])
    assert view["orderByKey"] == "params.`width`" and view["selectedColumns"][:2] == [
        "params.`width`", "params.`seed`"]
    assert [c["metricKey"] for c in view["compareRunCharts"]] == [
        "lc/train", "lc/test", "lc/random", "acc/train", "acc/test", "adv/acc/eps_0.05",
        "adv/acc/eps_0.1", "adv/acc/eps_0.2"]
    assert sorted(r.info.run_id for r in client.search_runs([eid], view["searchFilter"])) == \
        sorted(c.info.run_id for c in children)
    assert err[-4:-2] == [f"  mlflow ui --backend-store-uri {absolute_tracking_uri()}",
                          f"  then open http://127.0.0.1:5000/{link}"]
    rows = [line.split(" | ")[0][2:] for line in report.splitlines()
            if line.startswith("| width=")]
    assert rows == ["width=16,seed=0", "width=16,seed=1", "width=64,seed=0", "width=64,seed=1"]


def _stop_group(proc, timeout=15):
    """Stop the Ray head started by this test: its whole process group, nothing else."""
    import os
    import signal
    import subprocess

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # Ray's agents outlive SIGTERM to the head
    except ProcessLookupError:
        pass
    proc.wait(timeout)


def test_a_sweep_against_an_existing_ray_cluster(tmp_path, monkeypatch):
    import os
    import socket
    import subprocess
    import time

    with socket.socket() as s:                # a free port on loopback
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp_dir = f"/tmp/gm_ray_{os.getpid()}"   # short: Ray's unix socket paths are length-capped
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    head = subprocess.Popen(
        ["ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={temp_dir}"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not (os.path.isdir(temp_dir) and any(
                name.startswith("session_") for name in os.listdir(temp_dir))):
            assert head.poll() is None and time.monotonic() < deadline, "ray head did not start"
            time.sleep(0.5)
        monkeypatch.chdir(tmp_path)
        spec = write(tmp_path, "base: {steps: 50, depth: 2, width: 16, lc_samples: 20, "
                               "lc_directions: 4, adv_points: 0, eval_points: 4}\n"
                               "grid: {seed: [0, 1]}\n")
        assert main(["sweep", spec, "--ray-address", f"127.0.0.1:{port}"]) == 0
        client = MlflowClient()
        runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
        assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3
        assert sum("mlflow.parentRunId" in r.data.tags for r in runs) == 2
    finally:
        _stop_group(head)
        import shutil
        shutil.rmtree(temp_dir, ignore_errors=True)


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

    from grok_mlflow.tracker.schedule import log_schedule
    from grok_mlflow.settings import Settings
    from grok_mlflow.runner.training import train_stacked

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


def test_stop_settled_trains_every_trial_until_settled_and_bad_stops_are_one_line(tmp_path):
    spec = load_spec(write(tmp_path, "base: {steps: 1000}\ngrid: {seed: [0, 1]}\n"
                                     "stop: {rule: settled, min_steps: 500}\n"))
    assert (spec.base.until, spec.base.min_steps) == ("settled", 500)
    assert spec.stack_groups() == [[{"seed": 0}, {"seed": 1}]]   # stacked: members leave
    for stop, message in (("asha", "stop must be settled or {rule: settled, min_steps: N}; "
                                   "got 'asha'"),
                          ("{rule: settled, min_steps: 5000}",
                           "steps: must be >= min_steps (5000) with until: settled, got '1000'")):
        with pytest.raises(SettingsError) as info:
            load_spec(write(tmp_path, f"base: {{steps: 1000}}\ngrid: {{seed: [0]}}\n"
                                      f"stop: {stop}\n", "bad.yaml"))
        assert str(info.value) == f"spec {tmp_path / 'bad.yaml'}: {message}"


def test_a_parent_note_too_long_for_mlflow_keeps_the_verdicts_whole():
    from grok_mlflow.sweeps.sweep import NOTE_LIMIT, _parent_note

    claims = "### Sweep s: the paper's claims\n\n- **SUPPORTED**: x.\n\nHow the verdicts " + \
        "r" * 3000
    short = _parent_note(claims, "### each trial\n")
    assert short == claims + "\n### each trial\n"
    long = _parent_note(claims, "| row |\n" * 2000)
    assert len(long) <= NOTE_LIMIT and long.startswith("### Sweep s: the paper's claims\n\n"
                                                       "- **SUPPORTED**: x.\n\nThe verdicts'")


def test_on_an_autoscaling_cluster_a_trial_pending_too_long_ends_the_sweep(tmp_path, capsys):
    """Issue 43: with pending_timeout_s (an autoscaling cluster) resources no node has now are
    a warning; a trial still PENDING after the timeout ends the sweep in one line, exit 2, the
    parent FAILED (the local Ray here has no autoscaler: the timeout is what ends it)."""
    import time

    from grok_mlflow.cli import main

    from conftest import only_run

    spec = write(tmp_path, "base: {steps: 20}\ngrid: {width: [8]}\nresources: {cpu: 64}\n"
                           "pending_timeout_s: 3\n")
    start = time.monotonic()
    assert main(["sweep", spec]) == 2
    assert time.monotonic() - start < 120
    err = capsys.readouterr().err.strip().splitlines()
    assert any(line.startswith("grok-mlflow: warning: resources: a trial asks for 64 CPU(s) "
                               "and 0 GPU(s), but the largest Ray node has ") and
               line.endswith("waiting up to 3 s (pending_timeout_s) for the autoscaler")
               for line in err), err
    assert err[-1].startswith("grok-mlflow: error: resources: trial width=8 waited PENDING "
                              "for ") and err[-1].endswith(
        "s (pending_timeout_s 3): no Ray node gave it 64 CPU(s) and 0 GPU(s)"), err[-1]
    assert only_run().info.status == "FAILED"


@pytest.mark.parametrize("resources, asked", [("{cpu: 64}", "64 CPU(s) and 0 GPU(s)"),
                                              ("{cpu: 1, gpu: 1}", "1 CPU(s) and 1 GPU(s)")])
def test_resources_no_node_can_give_are_refused_before_any_run(tmp_path, capsys, resources,
                                                               asked):
    """Issue 43: a spec copied from a bigger machine left every trial PENDING for ever."""
    from grok_mlflow.cli import main

    if resources.endswith("gpu: 1}") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    spec = write(tmp_path, f"base: {{steps: 20}}\ngrid: {{width: [8, 16]}}\n"
                           f"resources: {resources}\n")
    assert main(["sweep", spec]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"grok-mlflow: error: resources: a trial asks for {asked}, but "
                              "the largest Ray node has ")
    client = MlflowClient()
    assert not [r for e in client.search_experiments() for r in client.search_runs(
        [e.experiment_id])]
