"""Reading a run back: its config, text artifacts, checkpoint and snapshots, from a real store."""

from __future__ import annotations

import pytest
import torch

from grok_mlflow.settings import SettingsError
from grok_mlflow.store.reading import (
    load_checkpoint,
    load_snapshot_weights,
    run_artifact_text,
    run_config,
    run_name,
    snapshot_steps,
)
from grok_mlflow.store.recorder import Recorder


def test_a_run_written_by_the_recorder_reads_back(tracking_uri):
    import matplotlib.pyplot as plt

    recorder = Recorder("reader", experiment="stored")
    run_id = recorder.start()
    recorder.log_dict({"settings": {"width": 16}}, "config.json")
    recorder.log_text("step,acc/test\n0,0.1\n", "history.csv")
    weights = {"w": torch.arange(4.0)}
    recorder.log_snapshot("step_00000012", plt.figure(), weights)
    recorder.save_checkpoint({"step": 12, "model": weights})
    recorder.end("FINISHED")
    assert run_config(run_id, "report") == {"settings": {"width": 16}}
    assert run_artifact_text(run_id, "history.csv").startswith("step,acc/test")
    assert run_name(run_id) == "reader"
    assert snapshot_steps(run_id) == [12]
    assert torch.equal(load_snapshot_weights(run_id, 12)["w"], weights["w"])
    assert load_checkpoint(run_id, torch.device("cpu"))["step"] == 12


def test_an_unknown_run_is_one_line_naming_the_command(tracking_uri):
    with pytest.raises(SettingsError, match="^partition: no grok_mlflow run 'nope' in "):
        run_config("nope", "partition")
