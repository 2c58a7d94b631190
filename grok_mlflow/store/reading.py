"""Reading recorded runs back from MLflow: a run's text artifacts, ``config.json``, name, last
checkpoint and partition snapshot weights.

One of the three modules that talk to MLflow (``recorder`` writes runs, ``sweep_runs`` keeps a
sweep's parent and child runs and its UI view). What a recorded run is rebuilt into (settings,
data, model at a step) is ``grok_mlflow.runner.recorded``'s job.

Example:
    config = run_config(run_id, "report")          # dict; SettingsError for an unknown run
    weights = load_snapshot_weights(run_id, snapshot_steps(run_id)[-1])
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from typing import Iterator

import mlflow
import torch
from mlflow.tracking import MlflowClient
from torch import Tensor

from ..console import logger
from ..settings import SettingsError

__all__ = ["load_checkpoint", "load_snapshot_weights", "run_artifact_text", "run_config",
           "run_name", "snapshot_steps"]


# -------------------------------------------------------------------- reading runs back
@contextmanager
def quiet_downloads() -> Iterator[None]:
    """No per-file download progress bars from MLflow inside the block (restored afterwards)."""
    saved = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = saved


def run_artifact_text(run_id: str, path: str) -> str:
    """The text of a run's artifact (raises MLflow's error when there is none)."""
    with quiet_downloads():
        return mlflow.artifacts.load_text(f"runs:/{run_id}/{path}")


def run_config(run_id: str, what: str) -> dict:
    """A grok_mlflow run's ``config.json``; ``SettingsError`` (naming ``what``) if there is none."""
    try:
        return json.loads(run_artifact_text(run_id, "config.json"))
    except Exception as err:  # noqa: BLE001 - any lookup failure means: not a usable run id
        raise SettingsError(f"{what}: no grok_mlflow run {run_id!r} in "
                            f"{mlflow.get_tracking_uri()} ({type(err).__name__})") from None


def run_name(run_id: str) -> str:
    """The run's name (its id when it has none)."""
    return run_tags(run_id).get("mlflow.runName", run_id)


def run_tags(run_id: str) -> dict[str, str]:
    """The run's tags."""
    return dict(MlflowClient().get_run(run_id).data.tags)


def load_checkpoint(run_id: str, device: torch.device) -> dict | None:
    """The run's last checkpoint, or None when it has none (it then restarts from step 0).

    A checkpoint that does not load is treated as none, with a warning: a kill while the
    artifact store was copying it into place leaves it torn (the local store's copy is not
    atomic). The run then trains again from step 0 and logs only the steps it has not logged;
    nothing it logged is lost.
    """
    with tempfile.TemporaryDirectory() as tmp, quiet_downloads():
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="checkpoints/last.pt", dst_path=tmp)
        except Exception:  # noqa: BLE001 - no checkpoint yet
            return None
        try:
            return torch.load(path, map_location=device, weights_only=False)
        except Exception as err:  # noqa: BLE001 - torn: zip, pickle or EOF errors
            logger.warning(f"grok-mlflow: warning: run {run_id}'s checkpoints/last.pt does not load "
                           f"({type(err).__name__}; a kill while it was written?): it is taken as no "
                           "checkpoint")
            return None


def snapshot_steps(run_id: str) -> list[int]:
    """Steps of the run's stored partition weights (``partition/weights/step_*.pt``)."""
    try:
        stored = MlflowClient().list_artifacts(run_id, "partition/weights")
    except Exception:  # noqa: BLE001 - no such folder
        stored = []
    return sorted(int(os.path.basename(a.path)[5:-3]) for a in stored if a.path.endswith(".pt"))


def load_snapshot_weights(run_id: str, step: int) -> dict[str, Tensor]:
    """The state dict stored with the partition snapshot at ``step`` (on the CPU)."""
    with tempfile.TemporaryDirectory() as tmp, quiet_downloads():
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=f"partition/weights/step_{step:08d}.pt", dst_path=tmp)
        return torch.load(path, map_location="cpu", weights_only=True)


def load_recorded_points(run_id: str) -> dict[str, Tensor]:
    """The points a tracked run recorded for its analysis (``analysis/points.pt``)."""
    with tempfile.TemporaryDirectory() as tmp, quiet_downloads():
        path = mlflow.artifacts.download_artifacts(run_id=run_id,
                                                   artifact_path="analysis/points.pt",
                                                   dst_path=tmp)
        return torch.load(path, map_location="cpu", weights_only=True)


def load_logged_model(run_id: str, device: torch.device) -> torch.nn.Module:
    """The model a tracked run logged (``mlflow.pytorch``), on ``device``."""
    import mlflow.pytorch  # noqa: PLC0415 - mlflow.pytorch imports Lightning (~5 s, see recorder)

    with quiet_downloads():
        return mlflow.pytorch.load_model(f"runs:/{run_id}/model", map_location=device)
