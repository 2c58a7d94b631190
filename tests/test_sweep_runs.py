"""A sweep's runs in MLflow and its saved UI view."""

from __future__ import annotations

import json

import mlflow
from mlflow.tracking import MlflowClient


def test_sweep_views_keep_the_users_description_and_one_line_per_sweep():
    """Two sweeps into one experiment with a description of the user's own: the user's text
    stays first, then one line per sweep, newest first; publishing again replaces, not adds."""
    from grok_mlflow.store.sweep_runs import child_run, publish_sweep_view, sweep_parent_run

    experiment = mlflow.set_experiment("shared")
    client = MlflowClient()
    client.set_experiment_tag(experiment.experiment_id, "mlflow.note.content", "My notes.")
    parents = []
    for sweep in ("a", "b"):
        with sweep_parent_run(f"sweep:{sweep}", {}, {}, experiment="shared") as (pid, eid):
            pass
        for width in (8, 16):         # (a sweep's trials run in other processes)
            with child_run(f"width={width}", eid, {"mlflow.parentRunId": pid}):
                mlflow.log_param("width", width)
                mlflow.log_metric("lc/train", 1.0, step=0)
                mlflow.log_metric("adv/acc/eps_0.1", 0.5, step=0)
                if sweep == "b":     # two radii: lc_r{radius}/{set}
                    for key in ("lc_r0.5/test", "lc_r0.05/train", "lc_r0.05/train/layer_1"):
                        mlflow.log_metric(key, 1.0, step=0)
        parents.append(pid)
        publish_sweep_view(pid, sweep, ["width"], 2)
    publish_sweep_view(parents[1], "b", ["width"], 2)
    lines = client.get_experiment(eid).tags["mlflow.note.content"].split("\n\n")
    assert lines[0] == "My notes." and len(lines) == 3
    assert lines[1].startswith("**Sweep b** (2 trials over width, run `" + parents[1][:8])
    assert lines[2].startswith("**Sweep a** (2 trials over width, run `" + parents[0][:8])
    note = client.get_run(parents[1]).data.tags["mlflow.note.content"]
    assert note.count("[Compare the trials]") == 1
    view = json.loads(client.get_experiment(eid).tags[f"mlflow.sharedViewState.{parents[0]}"])
    assert [c["metricKey"] for c in view["compareRunCharts"]] == ["lc/train", "adv/acc/eps_0.1"]
    assert {(c["xAxisKey"], c["xAxisScaleType"]) for c in view["compareRunCharts"]} == {
        ("step", "log")}                                 # the paper's log-step axis
    assert len(client.search_runs([eid], view["searchFilter"])) == 2
    view = json.loads(client.get_experiment(eid).tags[f"mlflow.sharedViewState.{parents[1]}"])
    assert [c["metricKey"] for c in view["compareRunCharts"]] == [
        "lc/train", "lc_r0.05/train", "lc_r0.5/test", "adv/acc/eps_0.1"]
