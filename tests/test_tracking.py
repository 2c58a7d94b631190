"""The tracker and the entry points, against a real MLflow store."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from grok_mlflow import GrokTracker, Settings, train
from grok_mlflow.cli import main
from grok_mlflow.phases import PHASE_KEYS, SHAPE_KEYS
from grok_mlflow.schedule import log_schedule
from grok_mlflow.recorder import MetricBuffer

from conftest import REPO, subprocess_env

TINY = dict(steps=30, depth=2, width=16, eval_points=4, lc_samples=40, lc_directions=5,
            adv_samples=40, adv_points=2, adv_steps=3, train_size=300, batch_size=50,
            partition_every=0)
BASE_KEYS = {"acc/train", "acc/test", "loss/train", "loss/test",
             "lc/train", "lc/test", "lc/random", "lc/train/ci_low", "lc/train/ci_high",
             "lc/train/layer_1", "lc/train/layer_2", "adv/acc/eps_0.05", "adv/acc/eps_0.1",
             "adv/acc/eps_0.2"}


def only_run(client: MlflowClient):
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1
    return runs[0]


def test_schedule_is_log_spaced_with_init_interval_and_last_step():
    steps = log_schedule(10_000, points=20, every=2500)
    assert steps[0] == 0 and steps[-1] == 10_000
    assert {2500, 5000, 7500} <= set(steps)
    gaps = [b - a for a, b in zip(steps[1:], steps[2:])]
    assert gaps[0] < gaps[-2]                     # dense early, sparse late
    assert log_schedule(7, points=100) == list(range(8))


def test_train_records_a_finished_run_with_every_metric(tracking_uri):
    result = train(Settings(**TINY), progress=False)
    client = MlflowClient()
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert BASE_KEYS <= set(run.data.metrics)
    assert run.data.params["width"] == "16" and run.data.params["lc_radius"] == "0.05"
    assert run.data.tags["mlflow.runName"] == (     # what differs from the defaults
        "digits_mlp:train_size=300,depth=2,width=16,batch_size=50,steps=30,eval_points=4,"
        "lc_directions=5,lc_samples=40,adv_steps=3,adv_samples=40,adv_points=2,partition_every=0")
    assert run.data.tags["grok_mlflow.version"]            # the run-context plugin
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "grok_mlflow"                 # training runs, for MLflow 3's UI
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    schedule = log_schedule(30, 4)
    history = client.get_metric_history(result.run_id, "lc/train")
    assert [m.step for m in history] == schedule            # every scheduled point, once
    adv_steps = [m.step for m in client.get_metric_history(result.run_id, "adv/acc/eps_0.1")]
    assert adv_steps == [0, 1, 30]   # its own, sparser cadence, on measured steps
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.json", "history.csv", "figures"} <= artifacts
    assert [a.path for a in client.list_artifacts(result.run_id, "figures")] == [
        "figures/grokking.png"]
    config = json.loads(open(mlflow.artifacts.download_artifacts(
        run_id=result.run_id, artifact_path="config.json")).read())
    assert config["lc_layers"] == {"layer_1": "hidden1.act", "layer_2": "hidden2.act"}
    models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                         filter_string=f"source_run_id='{result.run_id}'",
                                         output_format="list")
    assert len(models) == 1
    loaded = mlflow.pytorch.load_model(models[0].model_uri)
    x = torch.rand(3, 1, 8, 8)
    assert torch.allclose(loaded(x), result.model.cpu()(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cuda_run_logs_a_model_that_loads_on_the_cpu(tracking_uri):
    result = train(Settings(**TINY, device="cuda"), progress=False)
    run = MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert next(result.model.parameters()).device.type == "cuda"   # training model untouched
    models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                         filter_string=f"source_run_id='{result.run_id}'",
                                         output_format="list")
    loaded = mlflow.pytorch.load_model(models[0].model_uri)
    x = torch.rand(3, 1, 8, 8)
    assert torch.allclose(loaded(x), result.model.cpu()(x), atol=1e-5)


def test_same_seed_same_numbers(tracking_uri):
    a = train(Settings(**TINY), progress=False).metrics
    b = train(Settings(**TINY), progress=False).metrics
    assert a == b and a["acc/train"] > 0.15   # learning (chance is 0.1), reproducibly


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


def test_metric_buffer_writes_more_than_one_batch_and_refuses_non_numbers():
    client = MlflowClient()
    run = client.create_run(client.create_experiment("buffer"))
    buffer = MetricBuffer(client, run.info.run_id)
    for step in range(5):
        buffer.add({f"m/{i}": torch.tensor(float(i * step)) for i in range(500)}, step)
    with pytest.raises(TypeError, match="metric 'bad' must be a number"):
        buffer.add({"bad": "high"}, 0)
    buffer.flush()
    assert buffer.written == 2500
    assert [m.value for m in client.get_metric_history(run.info.run_id, "m/7")] == \
        [0.0, 7.0, 14.0, 21.0, 28.0]


def test_cli_bad_input_is_one_line_exit_2_and_no_run(capsys):
    assert main(["train", "--width", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "grok-mlflow: error: width: must be >= 1, got '0'"
    assert main(["train", "--model", "vit"]) == 2
    assert "model: unknown value 'vit'; valid: mlp" in capsys.readouterr().err
    client = MlflowClient()
    assert not [r for e in client.search_experiments()
                for r in client.search_runs([e.experiment_id])]


def mlflow_run(tmp_path, tracking_uri, *params: str, entry_point: str = "main"):
    args = [sys.executable, "-m", "mlflow", "run", str(REPO), "--env-manager", "local",
            "-e", entry_point]
    for p in params:
        args += ["-P", p]
    return subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=subprocess_env(MLFLOW_TRACKING_URI=tracking_uri))


def test_mlflow_run_main_entry_point(tmp_path, tracking_uri):
    params = [f"{k}={v}" for k, v in TINY.items()] + ["lc_radius=0.02,0.1"]
    done = mlflow_run(tmp_path, tracking_uri, *params)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"mlflow ui --backend-store-uri {tracking_uri}" in done.stderr
    run = only_run(MlflowClient())
    assert run.info.status == "FINISHED"
    keys = set(run.data.metrics)
    assert {"acc/train", "acc/test", "loss/train", "loss/test", "lc_r0.02/train",
            "lc_r0.1/random", "lc_r0.1/test/layer_2", "adv/acc/eps_0.1"} <= keys
    assert run.data.params["steps"] == "30" and run.data.params["optimizer"] == "adamw"
    models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                         filter_string=f"source_run_id='{run.info.run_id}'",
                                         output_format="list")
    assert len(models) == 1


def test_mlflow_run_with_bad_input_fails_with_one_clear_line(tmp_path, tracking_uri):
    done = mlflow_run(tmp_path, tracking_uri, "activation=swish")
    assert done.returncode != 0
    assert ("grok-mlflow: error: activation: unknown value 'swish'; valid: relu, gelu, leaky_relu"
            in done.stderr)
    assert "Traceback" not in done.stderr.split("grok-mlflow: error")[0][-2000:]
    assert only_run(MlflowClient()).info.status == "FAILED"


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


def test_pgd_cadence_is_a_sparser_subset_of_the_eval_steps():
    x, y = torch.rand(20, 1, 8, 8), torch.randint(0, 10, (20,))
    tracker = GrokTracker(small_net(), (x, y), (x, y), Settings(steps=100_000, eval_points=60,
                                                              adv_points=20), progress=False)
    assert tracker.schedule.adv_steps <= set(tracker.schedule.eval_steps)
    assert 12 <= len(tracker.schedule.adv_steps) <= 20 + 1 < len(tracker.schedule.eval_steps)  # + step 0
    assert {0, 100_000} <= tracker.schedule.adv_steps


def test_ctrl_c_on_the_cli_marks_the_run_killed_and_keeps_every_measured_point(tmp_path,
                                                                             tracking_uri):
    import signal
    import time

    args = [sys.executable, "-m", "grok_mlflow", "train", "--steps", "1000000", "--no-progress",
            "--eval_points", "400", "--lc_samples", "50", "--lc_directions", "5",
            "--adv_points", "0", "--width", "32", "--depth", "2"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=subprocess_env(MLFLOW_TRACKING_URI=tracking_uri),
                            stderr=subprocess.PIPE, text=True)
    client = MlflowClient()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:       # wait until the run exists and has its params
        runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
        if runs and "width" in runs[0].data.params:
            break
        time.sleep(0.5)
    time.sleep(4)                             # let it train and measure a while
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted; the run is marked KILLED" in err and "checkpoint written" in err
    run = only_run(client)
    assert run.info.status == "KILLED"
    measured = [m.step for m in client.get_metric_history(run.info.run_id, "lc/train")]
    schedule = log_schedule(1_000_000, 400)
    assert len(measured) > 5 and measured == schedule[:len(measured)]
    assert {"history.csv", "checkpoints"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    from grok_mlflow.stored import load_checkpoint
    assert load_checkpoint(run.info.run_id, torch.device("cpu"))["step"] >= measured[-1]


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


@pytest.mark.parametrize("entry_point", ["preset", "main"])
def test_mlflow_run_with_a_preset_and_an_override(tmp_path, tracking_uri, entry_point):
    done = mlflow_run(tmp_path, tracking_uri, "preset=projects/digits_gelu.yaml", "steps=20",
                      "eval_points=3", "lc_samples=30", "adv_points=2", "adv_samples=30",
                      "width=16", entry_point=entry_point)
    assert done.returncode == 0, done.stderr[-3000:]
    run = only_run(MlflowClient())
    params, tags = run.data.params, run.data.tags
    assert params["preset"] == "projects/digits_gelu.yaml"
    assert params["steps"] == "20" and params["width"] == "16"
    if entry_point == "preset":   # exact params
        assert params["activation"] == "gelu" and "grok_mlflow.stale_params" not in tags
    else:                         # MLflow logged the default first: the truth is in the tags
        assert params["activation"] == "relu"
        assert tags["grok_mlflow.stale_params"] == "activation"   # optimizer: adamw is the default
        assert tags["setting.activation"] == "gelu"
        assert "-e preset" in done.stderr
    config = json.loads(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config.json"))
    assert config["settings"]["activation"] == "gelu"


def test_log_model_false_logs_no_model_and_never_imports_mlflow_pytorch(tmp_path, tracking_uri):
    """``mlflow.pytorch`` imports Lightning when it is installed (seconds per process): a run
    that logs no model never imports it."""
    code = ("import sys; from grok_mlflow import Settings, train; "
            "r = train(Settings(steps=5, eval_points=2, width=8, depth=1, lc_samples=5, "
            "lc_directions=2, adv_points=0, partition_every=0, log_model=False), progress=False); "
            "print(r.run_id, 'mlflow.pytorch' in sys.modules, 'lightning' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=subprocess_env(MLFLOW_TRACKING_URI=tracking_uri))
    assert done.returncode == 0, done.stderr[-2000:]
    run_id, imported_flavor, imported_lightning = done.stdout.split()
    assert (imported_flavor, imported_lightning) == ("False", "False")
    run = MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["log_model"] == "false"
    assert mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                       filter_string=f"source_run_id='{run_id}'",
                                       output_format="list") == []


def test_kill_9_twice_then_resume_equals_an_uninterrupted_run(tmp_path, tracking_uri):
    """One run killed twice: started by ``grok-mlflow train``, kill -9, resumed by
    ``mlflow run . -P resume=ID`` (its launcher run and child process killed together), kill -9
    again, resumed by ``grok-mlflow train --resume ID`` to the end. Every history is the schedule
    (no step twice, none missing) and the weights equal an uninterrupted run's."""
    import signal
    import time

    settings = dict(steps=1500, eval_points=150, width=32, depth=2, lc_samples=30,
                    lc_directions=4, adv_points=0, checkpoint_every_s=0.2, partition_every=0)
    env = subprocess_env(MLFLOW_TRACKING_URI=tracking_uri)
    client = MlflowClient()

    def kill_past(proc, step, run_id=None):
        """kill -9 (the whole process group) once ``lc/train`` is past ``step`` and a
        checkpoint exists; returns the run's id."""
        deadline, killed = time.monotonic() + 180, False
        while time.monotonic() < deadline and proc.poll() is None:
            if run_id is None:
                runs = [r for e in client.search_experiments()
                        for r in client.search_runs([e.experiment_id])]
                if runs and any(a.path == "checkpoints"
                                for a in client.list_artifacts(runs[0].info.run_id)):
                    run_id = runs[0].info.run_id
            history = client.get_metric_history(run_id, "lc/train") if run_id else []
            if history and max(m.step for m in history) >= step:
                killed = True
                break
            time.sleep(0.2)
        assert killed and proc.poll() is None, "the run ended before it was killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert client.get_run(run_id).info.status == "RUNNING"       # a crash leaves it open
        return run_id

    train_cmd = [sys.executable, "-m", "grok_mlflow", "train", "--no-progress"]
    first = subprocess.Popen(train_cmd + [a for k, v in settings.items() for a in (f"--{k}", str(v))],
                             cwd=tmp_path, env=env, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    run_id = kill_past(first, 200)
    # mlflow run opens a run of its own first; training continues in run_id
    second = subprocess.Popen([sys.executable, "-m", "mlflow", "run", str(REPO), "--env-manager",
                               "local", "-P", f"resume={run_id}"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    kill_past(second, 700, run_id)
    launcher = [r for e in client.search_experiments()
                for r in client.search_runs([e.experiment_id]) if r.info.run_id != run_id]
    assert len(launcher) == 1 and launcher[0].data.tags["grok_mlflow.resumed_run"] == run_id
    assert not launcher[0].data.metrics
    done = subprocess.run(train_cmd + ["--resume", run_id], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    schedule = log_schedule(1500, 150)
    for key in ("lc/train", "acc/test", "loss/train"):
        assert [m.step for m in client.get_metric_history(run_id, key)] == schedule, key
    # the same settings, uninterrupted, in this process: identical weights
    reference = train(Settings(**settings), progress=False)
    resumed = mlflow.pytorch.load_model(mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id='{run_id}'",
        output_format="list")[0].model_uri)
    for (name, a), (_, b) in zip(reference.model.state_dict().items(),
                                 resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert reference.metrics["acc/test"] == run.data.metrics["acc/test"]


def test_resume_of_an_unknown_run_is_one_line(capsys):
    assert main(["train", "--resume", "0123456789abcdef"]) == 2
    assert "grok-mlflow: error: resume: no grok_mlflow run '0123456789abcdef'" in \
        capsys.readouterr().err


def test_divergence_stops_cleanly_and_keeps_the_last_good_checkpoint(tmp_path, tracking_uri):
    args = [sys.executable, "-m", "grok_mlflow", "train", "--no-progress", "--init_scale", "8",
            "--lr", "1e36", "--steps", "300", "--eval_points", "100", "--width", "32",
            "--depth", "2", "--lc_samples", "20", "--adv_points", "0",
            "--checkpoint_every_s", "0.01"]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=subprocess_env(MLFLOW_TRACKING_URI=tracking_uri))
    assert done.returncode == 1
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("grok-mlflow: error: diverged: training loss is nan at step ")
    run = only_run(MlflowClient())
    assert run.info.status == "FAILED"
    step = int(run.data.tags["grok_mlflow.failure_step"])
    assert run.data.tags["grok_mlflow.failure"] == f"diverged: training loss is nan at step {step}"
    measured = [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "acc/train")]
    assert measured == [s for s in log_schedule(300, 100) if s < step]   # all flushed
    from grok_mlflow.stored import load_checkpoint
    state = load_checkpoint(run.info.run_id, torch.device("cpu"))
    assert state["step"] < step
    assert all(torch.isfinite(t).all() for t in state["model"].values())


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


def test_a_float64_run_trains_measures_and_logs_in_float64(tracking_uri):
    result = train(Settings(**TINY, dtype="float64"), progress=False)
    assert {p.dtype for p in result.model.parameters()} == {torch.float64}
    run = MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.params["dtype"] == "float64"
    assert BASE_KEYS <= set(run.data.metrics)
    single = train(Settings(**TINY), progress=False)
    # same seed, same data: float64 and float32 arithmetic agree closely on a short run
    assert abs(run.data.metrics["acc/train"] - single.metrics["acc/train"]) < 0.02


def test_the_plugin_tags_only_the_runs_grok_mlflow_starts(tracking_uri):
    import platform

    from grok_mlflow.plugin import GrokContextProvider, managed_run

    with mlflow.start_run() as other:       # somebody else's run, in the same environment
        pass
    tags = MlflowClient().get_run(other.info.run_id).data.tags
    assert not any(k.startswith("grok_mlflow.") for k in tags)
    provider = GrokContextProvider()
    assert not provider.in_context()
    with managed_run():
        assert provider.in_context() and set(provider.tags()) == {
            "grok_mlflow.version", "grok_mlflow.python", "grok_mlflow.torch"}
    ours = MlflowClient().get_run(train(Settings(**TINY), progress=False).run_id).data.tags
    assert ours["grok_mlflow.torch"] == torch.__version__.split("+")[0]
    assert ours["grok_mlflow.device"] == f"cpu ({platform.machine()})"


def test_runs_of_different_presets_get_different_names():
    from grok_mlflow.settings import load_preset
    from grok_mlflow.run_parts import run_name_for

    presets = ["fig1_mnist_mlp", "fig3_mlp_init8", "fig25_gelu_mlp"]   # same dataset and MLP
    loaded = [load_preset(str(REPO / "projects" / f"{p}.yaml")) for p in presets]
    assert [run_name_for(s) for s in loaded] == presets
    changed = dataclasses.replace(loaded[0], steps=20000, seed=1, device="cpu",
                                  data_root="/elsewhere")
    assert run_name_for(changed) == "fig1_mnist_mlp:steps=20000,seed=1"   # where it ran: not
    assert run_name_for(Settings()) == "digits_mlp"
    assert run_name_for(Settings(width=16, lr=3e-4)) == "digits_mlp:width=16,lr=0.0003"
