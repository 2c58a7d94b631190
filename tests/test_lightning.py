"""The Lightning callback: a real PyTorch Lightning Trainer with GrokCallback and Lightning's
MLFlowLogger (one run), and resume from a Lightning checkpoint."""

from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn
from torch.utils.data import DataLoader

from grok_mlflow import TrackerSettings
from grok_mlflow.tracker.schedule import log_schedule

from conftest import TinyResNet, digits, only_run

lightning = pytest.importorskip("lightning.pytorch")


class LitNet(lightning.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = TinyResNet()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-2)


def lit_trainer(tmp_path, max_steps, logger, callback, **kw):
    return lightning.Trainer(max_steps=max_steps, logger=logger, callbacks=[callback],
                             accelerator="cpu", devices=1, enable_progress_bar=False,
                             enable_model_summary=False, log_every_n_steps=10,
                             default_root_dir=str(tmp_path), **kw)


def test_lightning_trainer_with_mlflow_logger_writes_one_run(tmp_path, tracking_uri):
    from lightning.pytorch.loggers import MLFlowLogger

    from grok_mlflow.lightning import GrokCallback

    torch.manual_seed(0)
    train_set, test_set = digits()
    settings = TrackerSettings(eval_points=8, lc_samples=50, lc_directions=5, adv_samples=50,
                               adv_points=3, adv_steps=3, partition_every=4,
                               partition_resolution=16)
    logger = MLFlowLogger(experiment_name="lit", tracking_uri=tracking_uri)
    callback = GrokCallback(train=train_set, test=test_set, settings=settings)
    trainer = lit_trainer(tmp_path, 200, logger, callback, enable_checkpointing=False)
    trainer.fit(LitNet(), DataLoader(train_set, batch_size=50, shuffle=True))
    run = only_run()                                        # Lightning's run, no second one
    assert run.info.run_id == logger.run_id and run.info.status == "FINISHED"
    client = MlflowClient()
    assert "train_loss" in run.data.metrics                 # Lightning's own metrics
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "lc/train")]
    assert steps == log_schedule(200, 8)                    # grok_mlflow's, on its schedule
    assert {"acc/test", "adv/acc/eps_0.1"} <= set(run.data.metrics)
    assert run.data.tags["mlflow.note.content"].startswith("### What this run showed")
    assert run.data.params["grok.lc_samples"] == "50" and "lc_samples" not in run.data.params
    assert not run.data.tags["mlflow.runName"].startswith("LitNet")   # the logger's name kept
    # analysed after the fact (issue 42): from the logged module, snapshots and recorded points
    from grok_mlflow.cli import main

    run_id = run.info.run_id
    assert main(["partition", run_id, "--resolution", "16"]) == 0
    assert main(["radius", run_id, "--points", "10", "--radii", "0.01,0.1",
                 "--directions", "2"]) == 0
    assert main(["compare-regions", run_id, "--points", "4", "--resolution", "8"]) == 0
    artifacts = {a.path for d in ("partition", "radius", "regions")
                 for a in client.list_artifacts(run_id, d)}
    assert {"radius/radius.png", "regions/compare.png"} <= artifacts
    assert any(p.startswith("partition/redrawn_step_") for p in artifacts)


def test_lightning_resume_from_a_checkpoint_continues_without_duplicates(tmp_path,
                                                                          tracking_uri):
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import MLFlowLogger

    from grok_mlflow.lightning import GrokCallback

    torch.manual_seed(0)
    train_set, test_set = digits()
    settings = TrackerSettings(steps=200, eval_points=10, lc_samples=40, lc_directions=4,
                               adv_points=0, partition_every=0)
    loader = DataLoader(train_set, batch_size=50, shuffle=True)
    logger = MLFlowLogger(experiment_name="lit", tracking_uri=tracking_uri)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    first = lightning.Trainer(max_steps=80, logger=logger, accelerator="cpu", devices=1,
                              callbacks=[GrokCallback(train_set, test_set, settings), ckpt],
                              enable_progress_bar=False, enable_model_summary=False,
                              default_root_dir=str(tmp_path))
    first.fit(LitNet(), loader)
    again = MLFlowLogger(experiment_name="lit", tracking_uri=tracking_uri, run_id=logger.run_id)
    second = lightning.Trainer(max_steps=200, logger=again, accelerator="cpu", devices=1,
                               callbacks=[GrokCallback(train_set, test_set, settings)],
                               enable_progress_bar=False, enable_model_summary=False,
                               default_root_dir=str(tmp_path))
    second.fit(LitNet(), loader, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    run = only_run()
    steps = [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "lc/train")]
    # every scheduled step once, plus step 80, where the first fit stopped (measured there)
    assert steps == sorted(set(log_schedule(200, 10)) | {80})


DDP_SCRIPT = '''
import sys
import lightning as L
import torch
from lightning.pytorch.loggers import MLFlowLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from grok_mlflow import TrackerSettings
from grok_mlflow.lightning import GrokCallback


class Net(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        loss = nn.functional.cross_entropy(self(batch[0]), batch[1])
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-2)


if __name__ == "__main__":
    torch.manual_seed(0)
    x, y = torch.rand(400, 1, 8, 8), torch.randint(0, 10, (400,))
    data = TensorDataset(x, y)
    callback = GrokCallback(train=(x, y), test=(x, y), settings=TrackerSettings(
        eval_points=5, lc_samples=41, lc_directions=5, adv_points=2, adv_samples=30, adv_steps=2,
        partition_every=0))
    logger = MLFlowLogger(experiment_name="lit_ddp", tracking_uri=sys.argv[1])
    trainer = L.Trainer(max_steps=20, strategy="ddp", devices=2, accelerator="cpu",
                        logger=logger, callbacks=[callback], enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False,
                        log_every_n_steps=5)
    trainer.fit(Net(), DataLoader(data, batch_size=50))
'''


def test_lightning_ddp_on_two_cpu_processes_writes_one_run(tmp_path, tracking_uri):
    import subprocess
    import sys

    from conftest import subprocess_env

    script = tmp_path / "lit_ddp.py"
    script.write_text(DDP_SCRIPT)
    done = subprocess.run([sys.executable, str(script), tracking_uri], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env=subprocess_env(OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    run = only_run()                                   # the logger's run; no second one
    assert run.info.status == "FINISHED" and "train_loss" in run.data.metrics
    steps = [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "lc/train")]
    assert steps == log_schedule(20, 5)                # on the schedule, each step once
    assert run.data.params["grok.lc_samples"] == "41"
