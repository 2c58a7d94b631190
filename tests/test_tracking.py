"""GrokTracker in a loop: the user's own model, loop and DataLoaders, a loop that fails or stops
early, periodic artifacts, eval_size, phases as metrics (through ``train``: test_training.py)."""

from __future__ import annotations

import dataclasses
import json
import time

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn
from torch.utils.data import DataLoader

from grok_mlflow import GrokTracker, RunOptions, Settings, StackedTracker, TrackerSettings, train
from grok_mlflow.findings.phases import PHASE_KEYS, SHAPE_KEYS
from grok_mlflow.tracker.schedule import log_schedule

from conftest import TinyResNet, digits, only_run


def user_loop(model, settings, fail_at=None, exc=RuntimeError):
    x, y = torch.rand(100, 1, 8, 8), torch.randint(0, 10, (100,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with GrokTracker(model, train=(x, y), test=(x[:50], y[:50]), settings=settings,
                     run=RunOptions(progress=False, log_model=False)) as tracker:
        for step in range(1, settings.steps + 1):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step == fail_at:
                raise exc("boom")
            tracker.step(step, loss=loss)
    return tracker


def small_net():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


@pytest.mark.parametrize("exc, status", [(RuntimeError, "FAILED"), (KeyboardInterrupt, "KILLED")])
def test_an_exception_in_the_loop_ends_the_run_and_keeps_every_measured_point(exc, status):
    settings = Settings(steps=100, eval_points=10, lc_samples=20, lc_directions=4, adv_points=0,
                        train_size=100, batch_size=50)
    with pytest.raises(exc):
        user_loop(small_net(), settings, fail_at=60, exc=exc)
    run = only_run(MlflowClient())
    assert run.info.status == status
    measured = [s for s in log_schedule(100, 10) if s < 60]
    history = MlflowClient().get_metric_history(run.info.run_id, "lc/train")
    assert [m.step for m in history] == measured


def test_a_loop_inside_the_users_own_run_leaves_that_run_open():
    settings = Settings(steps=5, eval_points=2, lc_samples=10, lc_directions=3, adv_points=0,
                        train_size=100, batch_size=50)
    with mlflow.start_run() as run:
        tracker = user_loop(small_net(), settings)
        assert tracker.run_id == run.info.run_id
        assert mlflow.active_run().info.run_id == run.info.run_id
    assert MlflowClient().get_run(run.info.run_id).info.status == "FINISHED"


def test_a_loop_that_stops_early_still_measures_its_last_step():
    settings = Settings(steps=1000, eval_points=3, lc_samples=10, lc_directions=3, adv_points=0,
                        train_size=100, batch_size=50)
    x, y = torch.rand(20, 1, 8, 8), torch.randint(0, 10, (20,))
    with GrokTracker(small_net(), (x, y), (x, y), settings,
                     run=RunOptions(progress=False, log_model=False)) as tracker:
        for step in range(1, 38):
            tracker.step(step)
    assert max(tracker.history) == 37


def test_a_real_short_run_logs_its_phases_as_metrics_and_tags():
    settings = Settings(steps=1500, eval_points=30, lc_samples=200, lc_directions=10,
                        adv_points=0)
    result = train(settings, progress=False)
    run = MlflowClient().get_run(result.run_id)
    phases = {k: int(v) for k, v in run.data.metrics.items() if k in PHASE_KEYS}
    # digits: the MLP fits the training set within 1,500 steps, and train LC first falls
    # from its initial value, then rises (the first two phases of the paper)
    assert {"grok/interpolation_step", "grok/lc_first_min_step",
            "grok/generalization_step"} <= set(phases)
    assert phases["grok/lc_first_min_step"] < phases.get("grok/lc_peak_step", 10**9)
    assert all(run.data.tags[k] == str(v) for k, v in phases.items())
    shape = {k for k in run.data.metrics if k in SHAPE_KEYS}          # values, not steps
    if "grok/lc_peak_step" in phases:
        assert {"grok/lc_peak_value", "grok/ascent_steps"} <= shape
    else:       # the ascent still rising at the last points: its peak is censored, no shape
        assert run.data.metrics["grok/lc_peak_censored"] == 1.0 and not shape
    history = MlflowClient().get_metric_history(result.run_id, "grok/interpolation_step")
    assert [m.step for m in history] == [1500]


def test_long_runs_refresh_their_figure_and_history_while_running():
    settings = Settings(steps=20, eval_points=5, lc_samples=10, lc_directions=3, adv_points=0,
                        train_size=100, batch_size=50)
    x, y = torch.rand(20, 1, 8, 8), torch.randint(0, 10, (20,))
    client = MlflowClient()
    with GrokTracker(small_net(), (x, y), (x, y), settings,
                     run=RunOptions(progress=False, log_model=False, artifact_every_s=0.0)) as tracker:
        tracker.step(1)
        # written behind training (Recorder.write_behind): there within moments, while running
        deadline = time.monotonic() + 60
        while True:
            mid_run = {a.path for a in client.list_artifacts(tracker.run_id)}
            if {"history.csv", "figures"} <= mid_run or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        history = mlflow.artifacts.load_text(f"runs:/{tracker.run_id}/history.csv")
        assert client.get_run(tracker.run_id).info.status == "RUNNING"
    assert {"history.csv", "figures"} <= mid_run
    # steps 0 and 1, or only 0 when step 1's refresh found step 0's write still in flight (one
    # write at a time: it is refreshed later)
    lines = history.splitlines()
    assert lines[0].startswith("step,") and lines[1].startswith("0,") and len(lines) in (2, 3)


def test_eval_size_measures_accuracy_on_a_fixed_subset_and_leaves_lc_alone():
    from grok_mlflow.measures.evaluation import accuracy_and_loss

    torch.manual_seed(0)
    x, y = torch.rand(50, 1, 8, 8), torch.randint(0, 10, (50,))
    xt, yt = torch.rand(40, 1, 8, 8), torch.randint(0, 10, (40,))
    base = Settings(steps=10, eval_points=2, lc_samples=10, lc_directions=3, adv_points=0,
                    train_size=50, batch_size=10, partition_every=0)
    net = small_net()
    measured = {}
    for eval_size in (0, 20):
        settings = dataclasses.replace(base, eval_size=eval_size)
        with GrokTracker(net, (x, y), (xt, yt), settings,
                         run=RunOptions(progress=False, log_model=False)) as tracker:
            measured[eval_size] = tracker.history[0]
            run_id = tracker.run_id
    config = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/config.json"))
    assert config["n_accuracy"] == {"train": 20, "test": 20}
    # the subset: a seeded permutation (seed + 3) of each split, first train then test
    gen = torch.Generator().manual_seed(base.seed + 3)
    for split, (xs, ys) in (("train", (x, y)), ("test", (xt, yt))):
        idx = torch.randperm(len(xs), generator=gen)[:20].sort().values
        acc, loss = accuracy_and_loss(net, xs[idx], ys[idx])
        assert measured[20][f"acc/{split}"] == float(acc)
        assert measured[20][f"loss/{split}"] == float(loss)
        full_acc, _ = accuracy_and_loss(net, xs, ys)
        assert measured[0][f"acc/{split}"] == float(full_acc)
    assert measured[20]["lc/train"] == measured[0]["lc/train"]        # same LC points
    assert measured[20]["lc/random"] == measured[0]["lc/random"]


SMALL = TrackerSettings(steps=60, eval_points=6, lc_samples=50, lc_directions=5, adv_samples=50,
                        adv_points=3, adv_steps=3, partition_every=0)



def test_a_users_own_model_loop_and_dataloaders_with_default_measures():
    torch.manual_seed(0)
    train_set, test_set = digits()
    loader = DataLoader(train_set, batch_size=50, shuffle=True)
    model = TinyResNet()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    settings = TrackerSettings(steps=200)   # how long the loop trains; every measure at default
    with GrokTracker(model, train=loader, test=test_set, settings=settings,
                     run=RunOptions(progress=False, log_model=False)) as tracker:
        step = 0
        while step < settings.steps:
            for x, y in loader:
                loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                tracker.step(step, loss=loss)
                tracker.log_metrics({"my/grad_norm": torch.tensor(1.5), "my/lr": 0.01}, step)
                if step == settings.steps:
                    break
    run = only_run()
    n_params = sum(p.numel() for p in model.parameters())
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.runName"] == f"TinyResNet_{n_params / 1e3:.3g}k"
    metrics = set(run.data.metrics)
    assert {"acc/train", "acc/test", "lc/train", "lc/random", "adv/acc/eps_0.1",
            "my/grad_norm", "my/lr"} <= metrics
    assert any(k.startswith("grok/") for k in metrics)
    client = MlflowClient()
    assert [m.step for m in client.get_metric_history(run.info.run_id, "lc/train")] == \
        log_schedule(settings.steps, settings.eval_points)
    assert len(client.get_metric_history(run.info.run_id, "my/lr")) == settings.steps
    assert "partition/regions" in metrics                    # the default partition snapshots
    config = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config.json"))
    assert config["model"] == {"class": "conftest.TinyResNet", "parameters": n_params,
                               "measured_layers": ["block.0", "block.2"]}
    assert config["input_shape"] == [1, 8, 8] and config["n_train"] == 400
    assert config["n_test"] == 1397 and config["adv_eps"] == [0.05, 0.1, 0.2]
    assert "settings" not in config           # nothing of grok_mlflow's own datasets or models
    assert run.data.params["lc_radius"] == "0.05" and "dataset" not in run.data.params
    assert run.data.tags["mlflow.note.content"].startswith("### What this run showed: TinyResNet")



def test_data_that_is_not_pairs_is_a_clear_error():
    with pytest.raises(TypeError, match="must be"):
        GrokTracker(TinyResNet(), train=[1, 2, 3], test=digits()[1], settings=SMALL,
                    run=RunOptions(progress=False)).__enter__()



def test_standardized_inputs_get_their_own_box_for_pgd_and_random_points(capsys):
    """Issue 37: inputs outside [0, 1] (here 2x - 1 and standardized features) are never
    clamped: the tracker takes the data's box, draws LC's random points in it, runs PGD inside
    it with budgets 0.05, 0.1, 0.2 of its width, and records it in config.json."""
    train_set, test_set = digits()
    x, y = train_set.tensors
    with GrokTracker(TinyResNet(), train=(2 * x - 1, y), test=(2 * x[:100] - 1, y[:100]),
                     settings=SMALL, run=RunOptions(progress=False, log_model=False)) as tracker:
        random = tracker.probes.lc["random"]
    assert tracker.domain == (-1.0, 1.0)
    assert float(random.min()) >= -1.0 and float(random.max()) <= 1.0
    assert float(random.min()) < -0.9 and float(random.max()) > 0.9      # the whole box
    assert "use their box (-1.0, 1.0) (budgets 0.1, 0.2, 0.4 in input units)" in \
        capsys.readouterr().err
    run = only_run()
    assert {"adv/acc/eps_0.1", "adv/acc/eps_0.2", "adv/acc/eps_0.4"} <= set(run.data.metrics)
    config = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config.json"))
    assert config["domain"] == [-1.0, 1.0] and config["adv_eps"] == [0.1, 0.2, 0.4]


def test_a_given_box_the_data_leaves_is_one_line_before_any_run(tracking_uri):
    x = torch.randn(200, 64)
    y = torch.randint(0, 10, (200,))
    with pytest.raises(ValueError) as info:
        GrokTracker(TinyResNet(), train=(x, y), test=(x, y), settings=SMALL, domain=(0.0, 1.0),
                    run=RunOptions(progress=False)).__enter__()
    assert str(info.value).startswith("the training and test inputs lie outside domain (0, 1): "
                                      "min -")
    assert "\n" not in str(info.value)
    assert not [r for e in MlflowClient().search_experiments()
                for r in MlflowClient().search_runs([e.experiment_id])]
    x[3, 5] = float("nan")
    with pytest.raises(ValueError, match="the training inputs hold 1 NaN or infinite value"):
        GrokTracker(TinyResNet(), train=(x, y), test=(x, y), settings=SMALL,
                    run=RunOptions(progress=False)).__enter__()


def test_run_options_name_the_run_its_experiment_and_its_tags(tracking_uri):
    x, y = torch.rand(60, 1, 8, 8), torch.randint(0, 10, (60,))
    options = RunOptions(name="named", experiment="grouped", tags={"team": "vision", "seed": "9"},
                         progress=False, log_model=False)
    with GrokTracker(small_net(), (x, y), (x, y), SMALL, run=options) as tracker:
        tracker.step(SMALL.steps)
    run = MlflowClient().get_run(tracker.run_id)
    assert run.info.run_name == "named"
    assert MlflowClient().get_experiment(run.info.experiment_id).name == "grouped"
    assert run.data.tags["team"] == "vision"
    assert run.data.tags["seed"] == str(SMALL.seed)      # the package's own tag wins


@pytest.mark.parametrize("owner, kwargs, message", [
    ("GrokTracker", {"progress": False},
     "GrokTracker: progress= is now a run option: run=RunOptions(progress=...)"),
    ("GrokTracker", {"run_name": "a"},
     "GrokTracker: run_name= is now a run option: run=RunOptions(name=...)"),
    ("StackedTracker", {"run_names": ["a"]},
     "StackedTracker: run_names= is now a run option: runs=[RunOptions(name=...) for each "
     "member]"),
    ("GrokTracker", {"colour": "red"},
     "GrokTracker.__init__() got an unexpected keyword argument 'colour'"),
])
def test_an_earlier_versions_keyword_says_where_it_went_before_any_run(owner, kwargs, message,
                                                                        tracking_uri):
    x, y = torch.rand(20, 1, 8, 8), torch.randint(0, 10, (20,))
    with pytest.raises(TypeError) as info:
        if owner == "GrokTracker":
            GrokTracker(small_net(), (x, y), (x, y), SMALL, **kwargs)
        else:
            StackedTracker([small_net()], (x, y), (x, y), SMALL, runs=[RunOptions(name="a")],
                           **kwargs)
    assert str(info.value) == message
    assert not [r for e in MlflowClient().search_experiments()
                for r in MlflowClient().search_runs([e.experiment_id])]


def _four_class_net():
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))


@pytest.mark.parametrize("train, test, message", [
    (lambda x, y: (x, y % 4), lambda x, y: (x, 3 + y % 4),
     "test labels: found 3..6, but the model has 4 outputs (classes 0..3)"),
    (lambda x, y: (x, y % 4), lambda x, y: (x[:0], y[:0]),
     "the test set is empty: it needs at least one (input, label)"),
    (lambda x, y: (x[:0], y[:0]), lambda x, y: (x, y % 4),
     "the training set is empty: it needs at least one (input, label)"),
])
def test_bad_evaluation_data_is_one_line_before_any_run(train, test, message, tracking_uri):
    torch.manual_seed(0)
    x, y = torch.rand(100, 12), torch.randint(0, 10, (100,))
    with pytest.raises(ValueError) as info:
        GrokTracker(_four_class_net(), train=train(x, y), test=test(x, y), settings=SMALL,
                    run=RunOptions(progress=False)).__enter__()
    assert str(info.value) == message
    assert not [r for e in MlflowClient().search_experiments()
                for r in MlflowClient().search_runs([e.experiment_id])]


def test_float64_data_into_a_float32_model_is_cast_with_a_note(capsys):
    torch.manual_seed(0)
    x, y = torch.rand(100, 12, dtype=torch.float64), torch.randint(0, 4, (100,))
    with GrokTracker(_four_class_net(), train=(x, y), test=(x, y), settings=SMALL,
                     run=RunOptions(progress=False, log_model=False)) as tracker:
        pass
    assert "the inputs are torch.float64 and the model torch.float32: the measured points are " \
           "cast to torch.float32" in capsys.readouterr().err
    assert tracker.probes.lc["train"].dtype == torch.float32
    assert only_run().info.status == "FINISHED"


def test_multi_output_regression_targets_are_measured_without_classes():
    """Issue 37: (N, k) float targets crashed while choosing the partition points
    (int(label)); regression takes any shape of targets."""
    torch.manual_seed(0)
    x = torch.rand(120, 12)
    y = torch.stack([x.sum(1), x[:, 0] - x[:, 1], x[:, 2] ** 2], dim=1)       # (N, 3)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
    with GrokTracker(model, train=(x, y), test=(x, y), settings=SMALL,
                     run=RunOptions(progress=False, log_model=False)) as tracker:
        pass
    assert tracker.task == "regression" and len(tracker.probes.partition_index) == 3
    metrics = only_run().data.metrics
    assert "loss/test" in metrics and "lc/train" in metrics and "acc/test" not in metrics
    assert only_run().data.params["loss"] == "mse"       # not the default cross_entropy


def test_a_multi_label_model_is_measured_with_exact_match_and_per_label_accuracy():
    """Issue 37: 12 inputs, 5 independent logits, BCEWithLogitsLoss, (N, 5) float 0/1 labels
    (it crashed choosing the partition points). The task is inferred as multilabel: acc/* is
    exact match, acc_label/* per label, PGD attacks the summed binary cross-entropy."""
    torch.manual_seed(0)
    x = torch.rand(200, 12)
    y = (x[:, :5] > 0.5).float()                                   # label j: feature j > 0.5
    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 5))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with GrokTracker(model, train=(x, y), test=(x, y), settings=SMALL,
                     run=RunOptions(progress=False, log_model=False)) as tracker:
        for step in range(1, SMALL.steps + 1):
            loss = nn.functional.binary_cross_entropy_with_logits(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tracker.step(step, loss=loss)
    assert tracker.task == "multilabel"
    last = tracker.history[SMALL.steps]
    exact = float(((model(x) > 0) == (y > 0.5)).all(1).double().mean())
    per_label = float(((model(x) > 0) == (y > 0.5)).double().mean())
    assert last["acc/train"] == pytest.approx(exact) and last["acc_label/train"] == \
        pytest.approx(per_label)
    assert per_label >= exact and per_label > 0.8
    assert 0 <= last["adv/acc/eps_0.2"] <= last["acc/test"]
    run = only_run()
    assert run.data.params["loss"] == "bce" and "adv/acc/eps_0.05" in run.data.metrics
