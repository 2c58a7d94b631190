"""A run's record (``tracker.run_log``): steps already in the store are not logged twice, the
checkpoint follows the metrics, a diverged model never overwrites it, and the close writes the
phases and the report, or on a failure only the tag that says why."""

from __future__ import annotations

import threading
from pathlib import Path

import mlflow
import PIL.Image
import pytest
import torch
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient
from torch import nn

from grok_mlflow.store.reading import load_checkpoint
from grok_mlflow.store.recorder import Recorder
from grok_mlflow.tracker import run_log
from grok_mlflow.tracker.run_log import DivergenceError, RunLog


def _log(checkpoint=None):
    recorder = Recorder("logged")
    recorder.start()
    return RunLog(recorder, main=True, run_name="logged", checkpoint=checkpoint,
                  artifact_every_s=1e9)


def test_steps_the_store_holds_go_to_the_history_only(tracking_uri):
    log = _log()
    log.logged = {"lc/train": 5}
    assert log.record({"lc/train": torch.tensor(2.5), "acc/train": 0.5}, 5) == {
        "lc/train": 2.5, "acc/train": 0.5}
    log.record({"lc/train": 3.0}, 6)
    log.close("KILLED", step=None, model=nn.Linear(2, 2), retry_s=0, lc_key="lc/train")
    client = MlflowClient()
    assert [(m.step, m.value) for m in client.get_metric_history(log.recorder.run_id,
                                                                 "lc/train")] == [(6, 3.0)]
    assert log.history == {5: {"lc/train": 2.5, "acc/train": 0.5}, 6: {"lc/train": 3.0}}
    run = client.get_run(log.recorder.run_id)
    assert run.info.status == "KILLED" and "mlflow.note.content" not in run.data.tags


def test_the_checkpoint_follows_the_metrics_and_never_a_diverged_model(tracking_uri):
    model = nn.Linear(2, 2)
    log = _log(checkpoint=lambda: {"model": model.state_dict()})
    log.record({"lc/train": 1.0}, 3)
    log.flush(3, model)
    saved = load_checkpoint(log.recorder.run_id, torch.device("cpu"))
    assert saved["step"] == 3 and saved["tracker"]["history"] == {3: {"lc/train": 1.0}}
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(DivergenceError, match="parameters are not finite at step 4"):
        log.flush(4, model)
    log.fail(DivergenceError("training loss is nan at step 4"), 4)
    log.close("FAILED", step=None, model=model, retry_s=0, lc_key="lc/train")
    assert load_checkpoint(log.recorder.run_id, torch.device("cpu"))["step"] == 3
    tags = MlflowClient().get_run(log.recorder.run_id).data.tags
    assert tags["grok_mlflow.failure"] == "diverged: training loss is nan at step 4"
    assert tags["grok_mlflow.failure_step"] == "4"


def test_a_clean_close_writes_the_report_and_the_history(tracking_uri):
    log = _log()
    for step, acc in [(0, 0.1), (10, 0.6), (100, 1.0)]:
        log.record({"acc/train": acc, "acc/test": acc, "lc/train": 2.0}, step)
    log.fail(KeyboardInterrupt(), 100)                      # a Ctrl-C is not a failure
    log.close("FINISHED", step=None, model=nn.Linear(2, 2), retry_s=0, lc_key="lc/train",
              stop_note="Stopped at step 100 of 200 (until: settled): settled.")
    client = MlflowClient()
    run = client.get_run(log.recorder.run_id)
    assert run.info.status == "FINISHED" and "grok_mlflow.failure" not in run.data.tags
    assert run.data.tags["mlflow.note.content"].count("Stopped at step 100 of 200") == 1
    names = {f.path for f in client.list_artifacts(log.recorder.run_id)}
    assert {"history.csv", "report.md", "figures"} <= names


class _ThreadWitness(Artist):
    """An artist that notes the thread each draw of its figure runs in."""

    def __init__(self, threads):
        super().__init__()
        self.threads = threads

    def draw(self, renderer):
        self.threads.append(threading.current_thread())


def test_figures_are_drawn_in_the_training_thread_and_only_their_bytes_written_behind(
        tracking_uri):
    """Matplotlib is not thread-safe: a figure drawn on a writer thread while the training
    thread lays out the next member's figure broke its mathtext parser mid-sweep (a stacked
    weight-decay sweep lost all 16 trials at step ~7,400). write_behind draws each figure in
    the caller's thread and only uploads the PNG."""
    threads: list[threading.Thread] = []
    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    fig.add_artist(_ThreadWitness(threads))
    recorder = Recorder("drawn")
    recorder.start()
    assert recorder.write_behind(None, {"note.txt": "x"}, {"figures/f.png": fig})
    recorder._writer.join()
    assert threads == [threading.main_thread()]
    local = Path(mlflow.artifacts.download_artifacts(run_id=recorder.run_id,
                                                     artifact_path="figures/f.png"))
    assert local.read_bytes().startswith(b"\x89PNG") and PIL.Image.open(local).size == (640, 480)


def test_a_figure_that_fails_to_draw_warns_and_training_goes_on(tracking_uri, monkeypatch,
                                                               capfd):
    log = _log()
    log.artifact_every_s = 0.0

    def broken(*args, **kwargs):
        raise ValueError("\n$\\mathdefault{0}$\n^\nParseException: Expected end of text")

    monkeypatch.setattr(run_log, "grokking_figure", broken)
    log.record({"lc/train": 1.0}, 3)
    log.after_measure(3, nn.Linear(2, 2))          # no exception reaches the loop
    log.recorder._writer.join()
    assert ("history.csv and the figure not refreshed at step 3 (ValueError: "
            "$\\mathdefault{0}$)") in capfd.readouterr().err
    client = MlflowClient()
    assert [m.value for m in client.get_metric_history(log.recorder.run_id, "lc/train")] == [1.0]
