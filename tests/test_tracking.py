"""GrokTracker in a loop: the user's own model, loop and DataLoaders, a loop that fails or stops
early, periodic artifacts, eval_size, phases as metrics (through ``train``: test_training.py)."""

from __future__ import annotations

import dataclasses
import json

import mlflow
from mlflow.tracking import MlflowClient
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from grok_mlflow import GrokTracker, Settings, TrackerSettings, train
from grok_mlflow.phases import PHASE_KEYS, SHAPE_KEYS
from grok_mlflow.schedule import log_schedule

from conftest import TinyResNet, digits, only_run


def user_loop(model, settings, fail_at=None, exc=RuntimeError):
    x, y = torch.rand(100, 1, 8, 8), torch.randint(0, 10, (100,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with GrokTracker(model, train=(x, y), test=(x[:50], y[:50]), settings=settings,
                     progress=False, log_model=False) as tracker:
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
    with GrokTracker(small_net(), (x, y), (x, y), settings, progress=False,
                     log_model=False) as tracker:
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
    assert {"grok/lc_peak_value", "grok/ascent_steps"} <= shape
    history = MlflowClient().get_metric_history(result.run_id, "grok/interpolation_step")
    assert [m.step for m in history] == [1500]


def test_long_runs_refresh_their_figure_and_history_while_running():
    settings = Settings(steps=20, eval_points=5, lc_samples=10, lc_directions=3, adv_points=0,
                        train_size=100, batch_size=50)
    x, y = torch.rand(20, 1, 8, 8), torch.randint(0, 10, (20,))
    client = MlflowClient()
    with GrokTracker(small_net(), (x, y), (x, y), settings, progress=False, log_model=False,
                     artifact_every_s=0.0) as tracker:
        tracker.step(1)
        mid_run = {a.path for a in client.list_artifacts(tracker.run_id)}
        history = mlflow.artifacts.load_text(f"runs:/{tracker.run_id}/history.csv")
    assert {"history.csv", "figures"} <= mid_run
    assert history.splitlines()[0].startswith("step,") and len(history.splitlines()) == 3  # 0, 1


def test_eval_size_measures_accuracy_on_a_fixed_subset_and_leaves_lc_alone():
    from grok_mlflow.evaluation import accuracy_and_loss

    torch.manual_seed(0)
    x, y = torch.rand(50, 1, 8, 8), torch.randint(0, 10, (50,))
    xt, yt = torch.rand(40, 1, 8, 8), torch.randint(0, 10, (40,))
    base = Settings(steps=10, eval_points=2, lc_samples=10, lc_directions=3, adv_points=0,
                    train_size=50, batch_size=10, partition_every=0)
    net = small_net()
    measured = {}
    for eval_size in (0, 20):
        settings = dataclasses.replace(base, eval_size=eval_size)
        with GrokTracker(net, (x, y), (xt, yt), settings, progress=False,
                         log_model=False) as tracker:
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
                     progress=False, log_model=False) as tracker:
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
                    progress=False).__enter__()



def test_inputs_outside_0_1_measure_lc_but_turn_pgd_off_with_one_line(capsys):
    train_set, test_set = digits()
    x, y = train_set.tensors
    with GrokTracker(TinyResNet(), train=(2 * x - 1, y), test=(2 * x[:100] - 1, y[:100]),
                     settings=SMALL, domain=(-1.0, 1.0), progress=False, log_model=False):
        pass
    assert "PGD off" in capsys.readouterr().err
    metrics = only_run().data.metrics
    assert "lc/random" in metrics and not any(k.startswith("adv/") for k in metrics)
