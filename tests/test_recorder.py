"""Writing a run: batched metrics (the store's outages: test_outage.py; many writers:
test_concurrency.py)."""

from __future__ import annotations

from mlflow.tracking import MlflowClient
import pytest
import torch

from grok_mlflow.store.recorder import MetricBuffer


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


def test_runs_in_two_stores_one_after_another_each_land_in_their_own(tmp_path, monkeypatch):
    """``mlflow.set_experiment`` exports $MLFLOW_EXPERIMENT_ID; the next run, in another store,
    must not take that id for the user's choice (it does not exist there)."""
    import mlflow

    from grok_mlflow.store.recorder import Recorder

    run_ids = []
    for name in ("first", "second"):
        uri = f"sqlite:///{tmp_path / name}.db"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        recorder = Recorder(name)
        run_ids.append(recorder.start())
        recorder.end("FINISHED")
        run = MlflowClient(uri).get_run(run_ids[-1])
        assert MlflowClient(uri).get_experiment(run.info.experiment_id).name == "grok_mlflow"


def test_logging_a_model_leaves_the_process_cuda_check_as_it_was(tmp_path, tracking_uri):
    """``mlflow.pytorch`` imports Lightning, which sets $PYTORCH_NVML_BASED_CUDA_CHECK for the
    whole process: every later Adam step then looks for NVML (13-15% of a digits step without
    it). After a run that logged its model, the variable is as before: unset, or the user's."""
    import subprocess
    import sys

    from conftest import subprocess_env

    script = ("import os, sys\n"
              "from grok_mlflow.settings import Settings\n"
              "from grok_mlflow.training import train\n"
              "train(Settings(steps=5, eval_points=2, lc_samples=10, adv_points=0, width=8,"
              " depth=1, partition_every=0), progress=False)\n"
              "print(os.environ.get('PYTORCH_NVML_BASED_CUDA_CHECK'),"
              " 'lightning_fabric' in sys.modules)\n")
    for before, after in ((None, "None"), ("0", "0")):
        env = subprocess_env(MLFLOW_TRACKING_URI=tracking_uri)
        env.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
        if before is not None:
            env["PYTORCH_NVML_BASED_CUDA_CHECK"] = before
        done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        # Lightning was imported (the model was logged), and the variable is as it was
        assert done.stdout.split()[-2:] == [after, "True"]
