"""The training loop: what a run records, determinism, resume after kill -9, divergence, float64,
and the loop's options (the learning-rate warm-up, the float64 loss) in ``train`` and
``train_stacked``."""

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

from grok_mlflow.runner.training import train, train_stacked, warmup_factor
from grok_mlflow.settings import Settings
from grok_mlflow.tracker.schedule import log_schedule

from conftest import REPO, only_run, subprocess_env


def test_warmup_factor_is_linear_then_one():
    s = Settings(warmup_steps=4)
    assert [warmup_factor(s, k) for k in range(1, 7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(Settings(), 1) == 1.0


TINY = Settings(steps=12, width=16, depth=2, batch_size=100, train_size=400, dtype="float64",
                lr=1e-2, weight_decay=0.1)
# a tracked run, small enough for the suite
RUN = dict(steps=30, depth=2, width=16, eval_points=4, lc_samples=40, lc_directions=5,
           adv_samples=40, adv_points=2, adv_steps=3, train_size=300, batch_size=50,
           partition_every=0)
BASE_KEYS = {"acc/train", "acc/test", "loss/train", "loss/test",
             "lc/train", "lc/test", "lc/random", "lc/train/ci_low", "lc/train/ci_high",
             "lc/train/layer_1", "lc/train/layer_2", "adv/acc/eps_0.05", "adv/acc/eps_0.1",
             "adv/acc/eps_0.2"}


def test_warmup_and_float64_loss_train_the_same_alone_and_stacked():
    """A stacked member with warm-up and the float64 loss equals the same run alone (float64,
    to rounding), and the warm-up changes the weights (it is really applied)."""
    settings = dataclasses.replace(TINY, warmup_steps=5, loss_float64=True)
    alone = train(settings, progress=False, track=False).model
    stacked = train_stacked([settings, dataclasses.replace(settings, seed=1)],
                            progress=False, track=False)[0].model
    no_warmup = train(TINY, progress=False, track=False).model
    for (name, a), b, _c in zip(alone.state_dict().items(), stacked.state_dict().values(),
                               no_warmup.state_dict().values()):
        assert torch.allclose(a, b, rtol=0, atol=1e-12), name
    assert not torch.allclose(alone.state_dict()["hidden1.linear.weight"],
                              no_warmup.state_dict()["hidden1.linear.weight"], atol=1e-6)


def test_train_records_a_finished_run_with_every_metric(tracking_uri):
    result = train(Settings(**RUN), progress=False)
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
    result = train(Settings(**RUN, device="cuda"), progress=False)
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
    a = train(Settings(**RUN), progress=False).metrics
    b = train(Settings(**RUN), progress=False).metrics
    assert a == b and a["acc/train"] > 0.15   # learning (chance is 0.1), reproducibly



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



def test_a_torn_checkpoint_trains_again_from_step_0_and_logs_no_step_twice(tracking_uri, capsys):
    """A kill while the store copied ``checkpoints/last.pt`` into place leaves it torn: resuming
    warns, trains again from step 0 and logs only the steps not logged yet; the run's history
    and weights equal an uninterrupted run's."""
    import pathlib
    import urllib.parse

    settings = Settings(steps=120, eval_points=30, width=16, depth=2, lc_samples=20,
                        lc_directions=4, adv_points=0, checkpoint_every_s=0.01, partition_every=0)

    def stop_at_80(step, latest):
        if step >= 80:
            raise KeyboardInterrupt("stopped")

    with pytest.raises(KeyboardInterrupt):
        train(settings, progress=False, on_progress=stop_at_80)
    run = only_run()
    path = pathlib.Path(urllib.parse.urlparse(run.info.artifact_uri).path, "checkpoints",
                        "last.pt")
    whole = path.read_bytes()
    path.write_bytes(whole[:len(whole) // 2])               # torn mid-copy
    capsys.readouterr()
    resumed = train(settings, progress=False, resume=run.info.run_id)
    assert f"run {run.info.run_id}'s checkpoints/last.pt does not load" in capsys.readouterr().err
    mlflow.set_experiment("reference")
    reference = train(settings, progress=False)
    client = MlflowClient()
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    for key in ("lc/train", "acc/test", "loss/train"):
        got = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in got] == log_schedule(120, 30), key      # none twice
        assert [m.value for m in got] == [
            m.value for m in client.get_metric_history(reference.run_id, key)], key
    for a, b in zip(reference.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


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
    from grok_mlflow.store.reading import load_checkpoint
    state = load_checkpoint(run.info.run_id, torch.device("cpu"))
    assert state["step"] < step
    assert all(torch.isfinite(t).all() for t in state["model"].values())



def test_a_float64_run_trains_measures_and_logs_in_float64(tracking_uri):
    result = train(Settings(**RUN, dtype="float64"), progress=False)
    assert {p.dtype for p in result.model.parameters()} == {torch.float64}
    run = MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.params["dtype"] == "float64"
    assert BASE_KEYS <= set(run.data.metrics)
    single = train(Settings(**RUN), progress=False)
    # same seed, same data: float64 and float32 arithmetic agree closely on a short run
    assert abs(run.data.metrics["acc/train"] - single.metrics["acc/train"]) < 0.02


def test_until_settled_runs_to_the_cap_when_nothing_settles_and_says_why(tracking_uri):
    result = train(Settings(steps=300, until="settled", lr=3e-5, partition_every=0,
                            lc_samples=50, adv_points=0, log_model=False), progress=False)
    run = MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert MlflowClient().get_metric_history(result.run_id, "acc/train")[-1].step == 300
    assert run.data.tags["grok_mlflow.stop_rule"] == "settled"
    assert "grok_mlflow.stop_step" not in run.data.tags
    lines = run.data.tags["mlflow.note.content"].splitlines()
    assert lines[2].startswith("Ran to the cap, step 300 (until: settled), without settling: ")
    from grok_mlflow.cli import main

    assert main(["report", result.run_id]) == 0          # the stored report says it too


@pytest.mark.parametrize("values, message", [
    ({"until": "done"}, "until: unknown value 'done'; valid: '' (empty), settled"),
    ({"until": "settled", "steps": "50"},
     "steps: must be >= min_steps (100) with until: settled, got '50'"),
])
def test_bad_until_is_refused_in_one_line(values, message):
    from grok_mlflow.settings import SettingsError

    with pytest.raises(SettingsError) as info:
        Settings.from_strings(values)
    assert str(info.value) == message


def test_a_member_that_leaves_its_group_stops_and_the_others_train_exactly_as_alone():
    """``_Group.leave``: three float64 members train 6 steps together, member 1 leaves, the
    other two train 6 more in a group of two. Members 0 and 2 end equal to their runs trained
    alone for 12 steps, member 1 to its run of 6 steps (to rounding)."""
    from grok_mlflow.runner.batches import TensorBatches
    from grok_mlflow.runner.build import data_and_model
    from grok_mlflow.runner.training import _Group

    members = [dataclasses.replace(TINY, seed=k) for k in range(3)]
    device = torch.device("cpu")
    built = [data_and_model(s, device) for s in members]
    singles = [TensorBatches(d.x_train, d.y_train, s.batch_size, s.seed, 0)
               for (d, _), s in zip(built, members)]
    group = _Group(members, [m for _, m in built], singles, device)
    group.start()
    models = list(group.stack.members)
    for step in range(1, 7):
        assert torch.isfinite(group.step(step)).all()
    group.leave([1])
    assert group.keep == [0, 2] and len(group.stack.members) == 2
    for step in range(7, 13):
        losses = group.step(step)
        assert torch.isnan(losses[1]) and torch.isfinite(losses[[0, 2]]).all()
    for k, steps in ((0, 12), (1, 6), (2, 12)):
        alone = train(dataclasses.replace(members[k], steps=steps), progress=False,
                      track=False).model
        for (name, a), b in zip(alone.state_dict().items(), models[k].state_dict().values()):
            assert torch.allclose(a, b, rtol=0, atol=1e-12), (k, name)
