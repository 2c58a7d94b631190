"""The tracker in other people's training: their own model and loop with DataLoaders, and a real
PyTorch Lightning Trainer with the callback and Lightning's MLFlowLogger."""

from __future__ import annotations

import json

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from grok_mlflow import GrokTracker, TrackerSettings
from grok_mlflow.schedule import log_schedule


class TinyResNet(nn.Module):
    """A network that is not in grok_mlflow's MODELS: a residual MLP block."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.stem = nn.Sequential(nn.Flatten(), nn.Linear(64, width))
        self.block = nn.Sequential(nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        h = self.stem(x)
        return self.head(h + self.block(h))


def digits(n_train=400):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]      # (1797, 1, 8, 8)
    y = torch.tensor(d.target)
    return TensorDataset(x[:n_train], y[:n_train]), TensorDataset(x[n_train:], y[n_train:])


def only_run():
    client = MlflowClient()
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1
    return runs[0]


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
    assert config["model"] == {"class": "test_integrations.TinyResNet", "parameters": n_params,
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
                               adv_points=3, adv_steps=3, partition_every=0)
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
