"""Ray Tune sweeps driven end to end: a real 4-trial sweep into a real MLflow store, an existing
Ray cluster, an autoscaler's pending trials, resources no node has, how many groups run at once."""

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
from grok_mlflow.store.tracking_store import absolute_tracking_uri
from grok_mlflow.sweeps.spec import load_spec

from conftest import write_spec as write


def test_a_cpu_sweep_runs_as_many_groups_at_once_as_it_would_run_trials(tmp_path):
    from grok_mlflow.sweeps.sweep import _resources, _slots
    from grok_mlflow.sweeps.trials import TrialGroup

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


def test_cli_refuses_a_missing_spec_before_starting_ray(capsys):
    assert main(["sweep", "no/such/spec.yaml"]) == 2
    assert capsys.readouterr().err.strip() == (
        "grok-mlflow: error: spec: cannot read 'no/such/spec.yaml': No such file or directory")


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
