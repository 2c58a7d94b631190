"""Starting a tracked run (``tracker.starting``): the checks before any run exists (the choices,
the measured task and model, LC's input dimension and P, token inputs, the user's loss as
measured), then what the run records when it opens (params with stale values kept as tags,
``config.json``, the analysis points and their cap)."""

from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from grok_mlflow.settings import TrackerSettings
from grok_mlflow.store.recorder import Recorder
from grok_mlflow.tracker.schedule import MeasureSchedule
from grok_mlflow.tracker.starting import (
    _same_value,
    analysis_points,
    check_choices,
    measured_loss,
    open_run,
    prepare,
    run_config_json,
    settings_params,
)

SETTINGS = TrackerSettings(steps=20, eval_points=4, lc_samples=10, adv_points=2, adv_samples=10,
                           partition_every=0)


def _prepared(model, x, y, settings=SETTINGS, **kwargs):
    return prepare(model, (x, y), (x, y), settings, MeasureSchedule.from_settings(settings),
                   **kwargs)


def test_a_classifier_on_images_in_the_unit_box():
    torch.manual_seed(0)
    x, y = torch.rand(40, 1, 4, 4), torch.randint(0, 3, (40,))
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    ready = _prepared(net, x, y)
    assert (ready.task, ready.measured_task, ready.tokens) == ("multiclass", "multiclass", False)
    assert ready.domain == (0.0, 1.0) and ready.adv_eps == (0.05, 0.1, 0.2)
    assert ready.settings.lc_directions == 16          # min(25, the input dimension 16)
    assert len(ready.lc_layers) == 1 and ready.loss_fn is None and ready.output_note == ""


def test_p_beyond_the_input_dimension_is_one_line():
    x, y = torch.rand(20, 5), torch.randint(0, 2, (20,))
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    settings = TrackerSettings(steps=20, eval_points=4, lc_samples=10, lc_directions=6,
                               adv_points=0, partition_every=0)
    with pytest.raises(ValueError, match=r"^lc_directions: must be <= the input dimension 5 "):
        _prepared(net, x, y, settings)


def test_token_inputs_need_lc_input_and_drop_pgd():
    x, y = torch.randint(0, 10, (30, 2)), torch.randint(0, 10, (30,))
    net = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(8, 6), nn.ReLU(),
                        nn.Linear(6, 10))
    with pytest.raises(ValueError, match="set lc_input to the module"):
        _prepared(net, x, y)
    settings = TrackerSettings(steps=20, eval_points=4, lc_samples=10, adv_points=2,
                               partition_every=0, lc_input="0")
    ready = _prepared(net, x, y, settings)
    assert ready.tokens and ready.adv_eps == () and not ready.schedule.adv_steps
    assert ready.settings.lc_directions == 8                 # the embedding's 2 x 4 values


def test_the_choices_are_checked_first():
    with pytest.raises(ValueError, match=r"^task: unknown value 'ordinal'; valid: "):
        check_choices("ordinal", None)
    with pytest.raises(ValueError, match=r"^output: must be a key \(str\), an index \(int\) or "):
        check_choices(None, 1.5)
    check_choices("binary", "logits")


def test_a_binary_models_loss_is_given_its_one_logit_back():
    seen = []
    loss = measured_loss(lambda z, t: seen.append((z, t)) or z.sum(), "binary")
    two = torch.tensor([[0.0, 2.0], [0.0, -1.0]])
    assert float(loss(two, torch.tensor([1, 0]))) == 1.0
    assert seen[0][0].tolist() == [2.0, -1.0] and seen[0][1].dtype == torch.float32
    mine = lambda z, t: z.sum()  # noqa: E731
    assert measured_loss(mine, "multiclass") is mine and measured_loss(None, "binary") is None


def test_the_partition_resolution_is_sized_to_the_model_unless_given(capsys):
    """partition_resolution 0: chosen from a timed forward (a multiple of 32 in [64, 512]),
    said once, the same for a second tracker of the same model (stacked members compare);
    a given resolution wins. The choice itself is ``partition.resolution_for`` (a doctest)."""
    torch.manual_seed(0)
    x, y = torch.rand(40, 3, 16, 16), torch.randint(0, 3, (40,))
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 14 * 14, 3))
    auto = TrackerSettings(steps=20, eval_points=4, lc_samples=10, adv_points=0,
                           partition_every=1)
    first = _prepared(net, x, y, auto).settings.partition_resolution
    assert first % 32 == 0 and 64 <= first <= 512
    again = _prepared(net, x, y, auto).settings.partition_resolution
    said = capsys.readouterr().err
    assert again == first and said.count("grok-mlflow: partition snapshots at") == 1
    assert f"at {first}x{first} (a forward costs " in said
    given = TrackerSettings(steps=20, eval_points=4, lc_samples=10, adv_points=0,
                            partition_every=1, partition_resolution=48)
    assert _prepared(net, x, y, given).settings.partition_resolution == 48
    off = TrackerSettings(steps=20, eval_points=4, lc_samples=10, adv_points=0, partition_every=0)
    assert _prepared(net, x, y, off).settings.partition_resolution == 0      # no snapshots


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
