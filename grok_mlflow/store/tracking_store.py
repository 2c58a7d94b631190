"""The tracking store, for the rest of the package: its URI (made absolute for trials that change
directory; a new SQLite store created by one process at a time), the experiment, and runs
created, reopened, ended, tagged and written into through the client (stacked members, a sweep's
parent, figures and text into an existing run, the unsent-metrics import).

One of the modules that talk to MLflow (``recorder`` writes a tracked run, ``reading`` reads runs
back, ``sweep_runs`` keeps a sweep's runs).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import tempfile
from typing import Mapping

import mlflow
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags

from ..run_tags import managed_run

__all__ = ["DEFAULT_EXPERIMENT", "MAX_BATCH", "absolute_tracking_uri", "active_run_id",
           "create_run", "create_sqlite_store_once", "end_runs", "figure_png", "import_metrics",
           "log_run_figure", "log_run_png", "log_run_text", "reopen_runs", "tag_run", "tracking_uri",
           "use_experiment", "use_tracking_uri", "user_experiment_id"]

DEFAULT_EXPERIMENT = "grok_mlflow"
MAX_BATCH = 1000          # MLflow's limit of metrics per log_batch call
# MLflow 3's UI opens an experiment by its kind; without this tag it may guess GenAI (traces)
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"


# ``mlflow.set_experiment`` exports ``$MLFLOW_EXPERIMENT_ID`` (for subprocesses): the id it
# exported for us, so that a later run does not take it for the user's choice (it may not even
# exist in the store the next run writes to).
_exported_experiment_id: str | None = None


def user_experiment_id() -> str | None:
    """``$MLFLOW_EXPERIMENT_ID`` when the user set it (not when ``use_experiment`` did)."""
    value = os.environ.get("MLFLOW_EXPERIMENT_ID")
    return None if value == _exported_experiment_id else value


def use_experiment(name: str) -> str:
    """Make ``name`` the active experiment (created if new) and mark it as model training for
    the MLflow UI, unless it already has a kind; returns its id."""
    global _exported_experiment_id
    experiment = mlflow.set_experiment(name)
    _exported_experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    if KIND_TAG not in (experiment.tags or {}):
        client = MlflowClient()
        try:
            client.set_experiment_tag(experiment.experiment_id, KIND_TAG, KIND)
        except MlflowException:
            # Processes starting together race to insert the same tag (a SQL store answers the
            # loser with a UNIQUE constraint error); the tag being there is all that matters.
            if KIND_TAG not in (client.get_experiment(experiment.experiment_id).tags or {}):
                raise
    return experiment.experiment_id


def active_run_id() -> str | None:
    """The id of this process's active MLflow run (e.g. the one transformers' ``MLflowCallback``
    started), or None."""
    run = mlflow.active_run()
    return run.info.run_id if run is not None else None


def tag_run(run_id: str, tags: Mapping[str, str]) -> None:
    """Set tags on a run of the current tracking store."""
    client = MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def import_metrics(path: str) -> int:
    """Write the points of an ``unsent_metrics_*.jsonl`` file into the current tracking store;
    returns how many. Points already in the store are not written twice."""
    client = MlflowClient()
    by_run: dict[str, list[Metric]] = {}
    with open(path) as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                by_run.setdefault(row["run_id"], []).append(
                    Metric(row["key"], row["value"], row["timestamp"], row["step"]))
    written = 0
    for run_id, metrics in by_run.items():
        stored = {(m.key, m.step) for key in {m.key for m in metrics}
                  for m in client.get_metric_history(run_id, key)}
        fresh = [m for m in metrics if (m.key, m.step) not in stored]
        for start in range(0, len(fresh), MAX_BATCH):
            client.log_batch(run_id, metrics=fresh[start:start + MAX_BATCH], synchronous=True)
        written += len(fresh)
    return written


def create_sqlite_store_once(uri: str) -> None:
    """Let one process at a time create a new SQLite store (its schema migrations race: eight
    processes starting on a fresh file failed in alembic, and a process that opened the file
    while another was still migrating it found columns missing).

    The creator makes ``<file>.lock`` before the file itself, so a file without a lock file is a
    store made elsewhere (opened as it is); with one, the store is opened under the lock, after
    its creator has finished."""
    if not uri.startswith("sqlite:///"):
        return
    path = uri[len("sqlite:///"):]
    if (os.path.exists(path) and os.path.getsize(path) > 0
            and not os.path.exists(path + ".lock")):
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            MlflowClient(uri).search_experiments(max_results=1)   # creates and migrates it
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def tracking_uri() -> str:
    """The tracking URI in use."""
    return mlflow.get_tracking_uri()


def absolute_tracking_uri() -> str:
    """The tracking URI with a relative SQLite/file path made absolute (trials change cwd)."""
    uri = mlflow.get_tracking_uri()
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + os.path.abspath(uri[len(prefix):])
    if "://" not in uri:
        return os.path.abspath(uri)
    if uri.startswith("file:") and not uri.startswith("file:///"):
        return "file://" + os.path.abspath(uri[len("file:"):].lstrip("/"))
    return uri


def use_tracking_uri(uri: str, create: bool = False) -> None:
    """Point MLflow at ``uri`` (``create``: make a new SQLite schema now, in this process)."""
    mlflow.set_tracking_uri(uri)
    if create:
        MlflowClient().search_experiments()


def create_run(name: str, experiment_id: str | None = None,
               tags: Mapping[str, str] | None = None) -> str:
    """A new RUNNING run created through the client (not made active), with the tags the fluent
    API would give it (user, source, git commit, grok_mlflow's versions) plus ``tags``;
    ``experiment_id`` default: ``$MLFLOW_EXPERIMENT_NAME``, else ``grok_mlflow``."""
    create_sqlite_store_once(mlflow.get_tracking_uri())
    if experiment_id is None:
        experiment_id = use_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME")
                                       or DEFAULT_EXPERIMENT)
    with managed_run():                   # the plugin's tags, as for the runs we start
        resolved = resolve_tags(dict(tags or {}))
    return MlflowClient().create_run(experiment_id, tags=resolved, run_name=name).info.run_id


def reopen_runs(run_ids: list[str]) -> None:
    """Mark runs RUNNING again (stacked members continued after a stop)."""
    client = MlflowClient()
    for run_id in run_ids:
        client.update_run(run_id, status="RUNNING")


def end_runs(run_ids: list[str], status: str) -> None:
    """End runs (FINISHED, FAILED, KILLED) through the client."""
    client = MlflowClient()
    for run_id in run_ids:
        client.set_terminated(run_id, status)


def log_run_text(run_id: str, text: str, path: str) -> None:
    MlflowClient().log_text(run_id, text, path)


def log_run_figure(run_id: str, fig, path: str, client: MlflowClient | None = None) -> None:
    """Log a matplotlib figure into a run (a pyplot-free ``Figure``: nothing to close)."""
    (client or MlflowClient()).log_figure(run_id, fig, path)


def figure_png(fig) -> bytes:
    """A matplotlib figure drawn into PNG bytes, in the calling thread. Matplotlib's drawing is
    not thread-safe (two threads laying out tick labels at once break its shared mathtext
    parser), so a figure is drawn in the thread that built it and only its bytes go to a
    writer thread (``log_run_png``)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def log_run_png(run_id: str, data: bytes, path: str, client: MlflowClient | None = None) -> None:
    """Log PNG bytes (``figure_png``) into a run as the artifact ``path``."""
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, os.path.basename(path))
        with open(local, "wb") as f:
            f.write(data)
        (client or MlflowClient()).log_artifact(run_id, local, os.path.dirname(path) or None)
