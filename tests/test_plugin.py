"""The MLflow run-context plugin: it tags only the runs grok_mlflow starts."""

from __future__ import annotations

import mlflow
import torch
from mlflow.tracking import MlflowClient

from grok_mlflow import Settings, train

TINY = dict(steps=30, depth=2, width=16, eval_points=4, lc_samples=40, lc_directions=5,
            adv_samples=40, adv_points=2, adv_steps=3, train_size=300, batch_size=50,
            partition_every=0)


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
