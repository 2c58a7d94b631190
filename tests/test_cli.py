"""The grok-mlflow command and the MLproject entry points (every setting's bad values:
test_bad_input.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from grok_mlflow.cli import main
from grok_mlflow.tracker.schedule import log_schedule

from conftest import REPO, only_run, subprocess_env

TINY = dict(steps=30, depth=2, width=16, eval_points=4, lc_samples=40, lc_directions=5,
            adv_samples=40, adv_points=2, adv_steps=3, train_size=300, batch_size=50,
            partition_every=0)


def test_cli_bad_input_is_one_line_exit_2_and_no_run(capsys):
    assert main(["train", "--width", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "grok-mlflow: error: width: must be >= 1, got '0'"
    assert main(["train", "--model", "vit"]) == 2
    assert "model: unknown value 'vit'; valid: mlp" in capsys.readouterr().err
    # every command takes the same devices, with train's default (auto)
    for command in ("partition", "radius", "compare-regions", "boundary-regions"):
        with pytest.raises(SystemExit) as exit_:
            main([command, "RUN", "--device", "tpu"])
        assert exit_.value.code == 2
        assert "invalid choice: 'tpu' (choose from 'auto', 'cpu', 'cuda')" in \
            capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["partition", "--help"])
    assert "(default auto, as train's)" in " ".join(capsys.readouterr().out.split())
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
    from grok_mlflow.store.reading import load_checkpoint
    assert load_checkpoint(run.info.run_id, torch.device("cpu"))["step"] >= measured[-1]


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


def test_resume_of_an_unknown_run_is_one_line(capsys):
    assert main(["train", "--resume", "0123456789abcdef"]) == 2
    assert "grok-mlflow: error: resume: no grok_mlflow run '0123456789abcdef'" in \
        capsys.readouterr().err
