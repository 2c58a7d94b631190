"""A sweep's runs in MLflow: its parent run, one child run per trial, and the MLflow UI's saved
comparison view of them (``publish_sweep_view``).

One of the three modules that talk to MLflow (``recorder`` writes a run, ``reading`` reads runs
back). ``grok_mlflow.sweeps`` decides what a sweep runs; this module only records it.
"""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import mlflow
from mlflow.entities import Param
from mlflow.tracking import MlflowClient

from ..run_tags import managed_run
from .tracking_store import tracking_uri, use_experiment

__all__ = ["SweepInterrupted", "child_run", "child_runs", "end_interrupted_children", "get_run",
           "publish_sweep_view", "run_statuses", "sweep_parent_run", "sweep_view_url",
           "trial_run_id", "ui_base_url", "unfinished_sweeps"]


class SweepInterrupted(Exception):
    """Raised inside ``sweep_parent_run`` when a signal stopped the sweep: the parent ends
    KILLED (not FAILED) and the exception goes on to the caller."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


@contextmanager
def sweep_parent_run(name: str, params: Mapping[str, str], tags: Mapping[str, str],
                     spec_file: str = "", experiment: str | None = None,
                     resume: str | None = None) -> Iterator[tuple[str, str]]:
    """A sweep's parent run, with its spec as params (and file), in ``experiment`` (created if
    new, marked as model training): yields (run id, experiment id) and ends the run (FAILED on
    an exception, KILLED on ``SweepInterrupted``). ``resume``: that parent run again (its
    params and spec stay as they are; ``tags`` are set anew)."""
    if resume:      # start_run refuses a run of another experiment than the active one
        mlflow.set_experiment(experiment_id=MlflowClient().get_run(resume).info.experiment_id)
    elif experiment:
        use_experiment(experiment)
    start: dict[str, Any] = dict(run_id=resume) if resume else dict(run_name=name)
    with managed_run(), mlflow.start_run(**start) as parent:
        run_id = parent.info.run_id
        client = MlflowClient()
        if not resume:
            client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                             synchronous=True)
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        if spec_file and not resume:
            client.log_artifact(run_id, spec_file, "spec")
        try:
            yield run_id, parent.info.experiment_id
        except SweepInterrupted as stop:
            client.set_tag(run_id, "grok_mlflow.interrupted", str(stop))
            mlflow.end_run("KILLED")
            raise


def unfinished_sweeps(experiment: str | None, sweep: str) -> list:
    """The parent runs of ``sweep`` in ``experiment`` (by name; None: ``mlflow run``'s, from
    ``$MLFLOW_EXPERIMENT_ID``) that did not finish (RUNNING: a driver killed hard; KILLED:
    interrupted; FAILED), newest first; [] where the experiment does not exist."""
    client = MlflowClient()
    if experiment is None:
        experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID", "0")
    else:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return []
        experiment_id = found.experiment_id
    runs = client.search_runs(
        [experiment_id], f"tags.`grok_mlflow.sweep` = '{sweep}' and "
                               "attributes.status != 'FINISHED'", max_results=1000,
        order_by=["attributes.start_time DESC"])
    return [r for r in runs if "mlflow.parentRunId" not in r.data.tags]


def get_run(run_id: str):
    """The run ``run_id`` (``mlflow.entities.Run``); ``SettingsError``-friendly: raises
    ``LookupError`` with one line where there is none."""
    try:
        return MlflowClient().get_run(run_id)
    except Exception as err:
        raise LookupError(f"no run {run_id} in {tracking_uri()}") from err


def end_interrupted_children(parent_id: str, why: str) -> list[tuple[str, int | None]]:
    """Every child run of ``parent_id`` that did not end FINISHED or FAILED is tagged
    ``grok_mlflow.interrupted`` with ``why`` and the last step it logged, and one still RUNNING
    ends KILLED (a trial that Ray Tune stopped at a report ended its run KILLED itself, with a
    checkpoint); returns (trial, step) for each."""
    client = MlflowClient()
    ended = []
    for run in child_runs(parent_id):
        if run.info.status in ("FINISHED", "FAILED"):
            continue
        key = next((k for k in ("acc/test", "loss/test", "loss/train") if k in run.data.metrics),
                   None)
        history = client.get_metric_history(run.info.run_id, key) if key else []
        step = max((m.step for m in history), default=None)
        client.set_tag(run.info.run_id, "grok_mlflow.interrupted",
                       f"{why}; last logged step {step}" if step is not None else why)
        if run.info.status == "RUNNING":
            client.set_terminated(run.info.run_id, "KILLED")
        ended.append((run.data.tags.get("grok_mlflow.trial", run.info.run_id), step))
    return ended


def trial_run_id(experiment_id: str, parent_id: str, trial: str) -> str | None:
    """The child run of ``parent_id`` that ``trial`` already started (a restarted trial), if
    any."""
    runs = MlflowClient().search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{parent_id}' and "
                         f"tags.`grok_mlflow.trial` = '{trial}'")
    return runs[0].info.run_id if runs else None


@contextmanager
def child_run(name: str, experiment_id: str, tags: Mapping[str, str]) -> Iterator[str]:
    """A new child run (``tags`` holds ``mlflow.parentRunId``), active inside the block; it
    ends KILLED on ``KeyboardInterrupt`` (a stopped sweep: resumable), FAILED on an error."""
    with managed_run(), mlflow.start_run(run_name=name, experiment_id=experiment_id,
                                         tags=dict(tags)) as run:
        try:
            yield run.info.run_id
        except KeyboardInterrupt:
            mlflow.end_run("KILLED")
            raise


def run_statuses(run_ids: list[str]) -> list[str]:
    """Each run's status (RUNNING, FINISHED, FAILED, KILLED)."""
    client = MlflowClient()
    return [client.get_run(r).info.status for r in run_ids]


def child_runs(parent_id: str) -> list:
    """The parent's child runs (``mlflow.entities.Run``), oldest first."""
    client = MlflowClient()
    parent = client.get_run(parent_id)
    return list(reversed(client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'",
        max_results=10_000)))



# --- the MLflow UI's view of a sweep --------------------------------------------------------
# Read from MLflow 3.17's UI bundle (checked in a real browser, benchmarks/ui_screenshots.py):
# runs whose parent is collapsed are not charted, but a search filter (or a sort other than by
# start time) lists nested runs flat; `workflowType=machine_learning` opens the "Model training"
# side of the UI (its default is GenAI, whatever the experiment's kind); an experiment tag
# `mlflow.sharedViewState.<key>` holds a view (filter, sort, columns) that `viewStateShareKey=<key>`
# opens. The experiment's description (its `mlflow.note.content` tag) is shown above its runs.
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."


SWEEP_LINE_PREFIX = "**Sweep "


SWEEP_CHARTS = ["acc/train", "acc/test"]      # after lc/{train,test,random} (every radius)


SWEEP_COLUMNS = ["acc/test", "acc/train", "lc/train", "grok/interpolation_step",
                 "grok/generalization_step"]


def sweep_view_link(experiment_id: str, key: str, chart: bool = True) -> str:
    """The UI route (``#/experiments/...``, relative to the server) of a shared view."""
    mode = "CHART" if chart else "TABLE"
    return (f"#/experiments/{experiment_id}/runs?workflowType=machine_learning"
            f"&compareRunsMode={mode}&viewStateShareKey={key}")


def publish_sweep_view(parent_id: str, sweep: str, swept: list[str], trials: int,
                       keep: int = 10) -> str:
    """Save a comparison view of ``parent_id``'s trials in its experiment and link it from the
    experiment's and the parent's descriptions; returns the view's UI route.

    The view lists the trials flat (filtered by parent), sorted by the first swept setting
    (MLflow compares params as strings: 20, 200, 50), with the swept settings and final
    metrics as columns; the link opens it in the chart view, whose first section overlays every
    trial's LC, accuracy and adversarial-accuracy curves on a log-step axis.
    The experiment's description keeps one line per sweep, newest first, at most ``keep``.
    """
    client = MlflowClient()
    parent = client.get_run(parent_id)
    experiment_id = parent.info.experiment_id
    logged = {k for run in child_runs(parent_id) for k in run.data.metrics}
    lc_keys = sorted((k for k in logged if re.fullmatch(r"lc(_r[^/]+)?/(train|test|random)", k)),
                     key=lambda k: (k.split("/")[0], ("train", "test", "random").index(
                         k.split("/")[1])))
    first = lc_keys + [k for k in SWEEP_CHARTS if k in logged] + sorted(
        k for k in logged if k.startswith("adv/acc/"))
    state = {"searchFilter": f"tags.mlflow.parentRunId = '{parent_id}'",
             "orderByKey": f"params.`{swept[0]}`" if swept else "attributes.run_name",
             "orderByAsc": True, "runsHiddenMode": "SHOW_ALL",
             "selectedColumns": [*(f"params.`{k}`" for k in swept),
                                 *(f"metrics.`{k}`" for k in SWEEP_COLUMNS)],
             # one section first with the curves the paper compares; the UI adds the rest
             "isAccordionReordered": True,
             "compareRunSections": [{"uuid": "grok", "name": "LC and accuracy", "display": True,
                                     "isReordered": False, "deleted": False,
                                     "isGenerated": True}],
             # the paper's log-step axis (MLflow's line charts take a log scale on the step
             # axis only: xAxisKey "step"; plotly leaves out step 0 there)
             "compareRunCharts": [{"type": "LINE", "uuid": f"grok-{i}", "metricSectionId": "grok",
                                   "isGenerated": True, "deleted": False, "metricKey": k,
                                   "selectedMetricKeys": [k], "xAxisKey": "step",
                                   "xAxisScaleType": "log", "scaleType": "linear"}
                                  for i, k in enumerate(first)]}
    client.set_experiment_tag(experiment_id, SHARED_VIEW_PREFIX + parent_id, json.dumps(state))
    link = sweep_view_link(experiment_id, parent_id)
    line = (f"{SWEEP_LINE_PREFIX}{sweep}** ({trials} trials over {', '.join(swept) or '-'}, "
            f"run `{parent_id[:8]}`): [compare the trials]({link}) · "
            f"[as a table]({sweep_view_link(experiment_id, parent_id, chart=False)})")
    old = client.get_experiment(experiment_id).tags.get("mlflow.note.content", "")
    ours = [x for x in old.splitlines() if x.startswith(SWEEP_LINE_PREFIX) and parent_id[:8] not in x]
    others = [x for x in old.splitlines() if x.strip() and not x.startswith(SWEEP_LINE_PREFIX)]
    lines = [line, *ours[:keep - 1]]
    client.set_experiment_tag(experiment_id, "mlflow.note.content",
                              "\n\n".join([*others, *lines]))
    note = parent.data.tags.get("mlflow.note.content", "")
    if not note.startswith("[Compare the trials]"):
        client.set_tag(parent_id, "mlflow.note.content",
                       f"[Compare the trials]({link})" + (f"\n\n{note}" if note else ""))
    return link


def sweep_view_url(parent_id: str) -> str:
    """The full address of a sweep's comparison view (``publish_sweep_view``)."""
    experiment_id = MlflowClient().get_run(parent_id).info.experiment_id
    return ui_base_url() + sweep_view_link(experiment_id, parent_id)


def ui_base_url(default: str = "http://127.0.0.1:5000/") -> str:
    """Where the UI of the current tracking store is: the server itself for an http(s) URI,
    else ``mlflow ui``'s default address."""
    uri = tracking_uri()
    return uri.rstrip("/") + "/" if uri.startswith(("http://", "https://")) else default
