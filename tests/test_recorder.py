"""Writing a run: batched metrics (the store's outages: test_outage.py; many writers:
test_concurrency.py)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

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
              "from grok_mlflow.runner.training import train\n"
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


def test_a_logged_model_loads_in_a_fresh_process_and_says_once_why_it_is_pickled(
        tracking_uri, capfd):
    """The default run logs its model pickled (the analysis commands need the module back):
    one line says so instead of MLflow's pickle warning; the model carries grok_mlflow's code
    and its requirements name torch and mlflow; a new process loads it from its URI."""
    import subprocess
    import sys

    from grok_mlflow.runner.training import train
    from grok_mlflow.settings import Settings

    from conftest import subprocess_env

    result = train(Settings(steps=5, eval_points=2, lc_samples=10, adv_points=0,
                            partition_every=0), progress=False)
    err = capfd.readouterr().err
    assert "Pickle or CloudPickle" not in err
    assert err.count("grok-mlflow: the model is logged pickled") == 1
    uri = f"runs:/{result.run_id}/model"
    done = subprocess.run(
        [sys.executable, "-c", "import mlflow.pytorch, torch; "
         f"m = mlflow.pytorch.load_model({uri!r}); "
         "print(type(m).__module__, tuple(m(torch.rand(2, 1, 8, 8)).shape))"],
        env=subprocess_env(MLFLOW_TRACKING_URI=tracking_uri), capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["(2,", "10)"]         # the module back, and it runs
    local = Path(mlflow.artifacts.download_artifacts(uri))
    requirements = (local / "requirements.txt").read_text()
    assert "torch==" in requirements and "mlflow==" in requirements
    assert (local / "code" / "grok_mlflow" / "runner" / "models.py").is_file()


def test_partition_snapshots_are_stepped_images_for_the_ui_slider(tracking_uri):
    """Each snapshot also goes in as MLflow's stepped image (key "partition"), which the run
    page shows with its image slider; the PNG files stay where they were."""
    from grok_mlflow.runner.training import train
    from grok_mlflow.settings import Settings

    result = train(Settings(steps=10, eval_points=3, lc_samples=10, adv_points=0,
                            partition_every=1, partition_resolution=32, log_model=False),
                   progress=False)
    client = MlflowClient()
    images = [a.path for a in client.list_artifacts(result.run_id, "images")]
    snapshots = [a.path for a in client.list_artifacts(result.run_id, "partition")
                 if a.path.endswith(".png")]
    # MLflow names a stepped image images/<key>+step+<N>+timestamp+...(+compressed.webp, a
    # thumbnail beside the image itself)
    steps = sorted({int(p.split("+step+")[1].split("+")[0]) for p in images
                    if p.startswith("images/partition+step+")})
    assert len(snapshots) >= 3 and len(steps) == len(snapshots), (images, snapshots)
    assert steps == sorted(int(p.rsplit("_", 1)[1][:-4]) for p in snapshots)
    assert steps[0] == 0 and steps[-1] == 10
