"""The tracking store as the package uses it: a relative SQLite URI made absolute, a new store
created by one process at a time, unsent metrics imported once, the experiment marked for the UI."""

from __future__ import annotations

import json

import mlflow
from mlflow.tracking import MlflowClient

from grok_mlflow.store.tracking_store import (
    KIND,
    KIND_TAG,
    absolute_tracking_uri,
    create_run,
    create_sqlite_store_once,
    end_runs,
    import_metrics,
    use_experiment,
)


def test_relative_sqlite_uri_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri("sqlite:///rel.db")
    assert absolute_tracking_uri() == f"sqlite:///{tmp_path}/rel.db"


def test_a_store_being_created_is_opened_only_after_its_creator_is_done(tmp_path):
    """A process opening a SQLite store that another one is still creating (its file already
    non-empty, the lock held) waits for the lock instead of reading a half-migrated schema."""
    import fcntl
    import sqlite3
    import threading
    import time

    path = tmp_path / "m.db"
    with open(f"{path}.lock", "a") as lock:          # the creator: lock first, then the file
        fcntl.flock(lock, fcntl.LOCK_EX)
        sqlite3.connect(path).execute("CREATE TABLE half_made (x)").connection.close()
        opener = threading.Thread(target=create_sqlite_store_once, args=(f"sqlite:///{path}",))
        opener.start()
        time.sleep(1.0)
        assert opener.is_alive()                     # waiting for the creator
        fcntl.flock(lock, fcntl.LOCK_UN)
    opener.join(60)
    assert not opener.is_alive()
    assert MlflowClient(f"sqlite:///{path}").search_experiments()[0].name == "Default"

def test_unsent_metrics_are_imported_once_and_points_already_stored_are_kept(tmp_path,
                                                                            tracking_uri):
    """An ``unsent_metrics_*.jsonl`` file (what a run leaves when its server never came back):
    every point lands once; importing it again writes nothing; a point the store already had is
    not doubled."""
    experiment = use_experiment("imports")
    assert MlflowClient().get_experiment(experiment).tags[KIND_TAG] == KIND
    run_id = create_run("unsent", experiment)
    client = MlflowClient()
    client.log_metric(run_id, "lc/train", 7.0, timestamp=1000, step=0)      # already stored
    rows = [{"run_id": run_id, "key": "lc/train", "value": 7.0, "timestamp": 1000, "step": 0},
            {"run_id": run_id, "key": "lc/train", "value": 6.5, "timestamp": 2000, "step": 10},
            {"run_id": run_id, "key": "acc/test", "value": 0.25, "timestamp": 2000, "step": 10}]
    path = tmp_path / f"unsent_metrics_{run_id}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert import_metrics(str(path)) == 2
    assert import_metrics(str(path)) == 0
    history = client.get_metric_history(run_id, "lc/train")
    assert sorted((m.step, m.value) for m in history) == [(0, 7.0), (10, 6.5)]
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "acc/test")] == \
        [(10, 0.25)]
    end_runs([run_id], "FINISHED")
    assert client.get_run(run_id).info.status == "FINISHED"
