"""What a run records when it opens (``tracker.opening``): params with stale values kept as
tags, ``config.json``, the analysis points and their cap."""

from __future__ import annotations

import torch
from mlflow.tracking import MlflowClient
from torch import nn

from grok_mlflow.settings import TrackerSettings
from grok_mlflow.store.recorder import Recorder
from grok_mlflow.tracker.opening import (_same_value, analysis_points, open_run,
                                         run_config_json, settings_params)
from grok_mlflow.tracker.preparing import prepare
from grok_mlflow.tracker.schedule import MeasureSchedule


def test_values_mlflow_holds_are_compared_as_text_or_numbers():
    assert _same_value("1e-3", "0.001") and _same_value("'0.05, 0.1'", "0.05,0.1")
    assert _same_value("True", "true") and _same_value("''", "")
    assert not _same_value("0.01", "0.001") and not _same_value("relu", "gelu")


def test_a_run_opens_with_its_params_tags_config_and_points(tracking_uri, capsys):
    torch.manual_seed(0)
    s = TrackerSettings(steps=10, eval_points=3, lc_samples=8, adv_points=0, partition_every=0)
    x, y = torch.randn(30, 6) * 3, torch.randint(0, 3, (30,))        # standardized: own box
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    ready = prepare(net, (x, y), (x, y), s, MeasureSchedule.from_settings(s))
    recorder = Recorder("opened")
    recorder.start()
    params = settings_params(s)
    recorder.log_params({"lr": "1e-3"})
    open_run(recorder, net, ready, params={**params, "lr": "0.01"}, run_name="opened",
             extra_config={"mine": 1}, output=None)
    recorder.end("FINISHED")
    run = MlflowClient().get_run(recorder.run_id)
    assert run.data.tags["grok_mlflow.stale_params"] == "lr"
    assert run.data.tags["setting.lr"] == "0.01" and run.data.params["lr"] == "1e-3"
    assert run.data.params["lc_samples"] == "8" and run.data.tags["mlflow.runName"] == "opened"
    assert "MLflow logged lr before the preset was applied" in capsys.readouterr().err
    config = run_config_json(net, ready.settings, ready.probes, ready.schedule,
                             layers=ready.lc_layers, adv_eps=ready.adv_eps, task=ready.task,
                             output="the model's tensor", extra={"mine": 1})
    assert config["model"]["parameters"] == 6 * 5 + 5 + 5 * 3 + 3
    assert config["domain"] == [float(x.min()), float(x.max())] and config["mine"] == 1
    assert config["n_train"] == 30 and config["task"] == "multiclass"
    points = analysis_points(ready.probes)
    assert points["train_x"].shape[1:] == (6,) and len(points["partition_x"]) == 3
