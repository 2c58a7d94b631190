"""A Lightning run with ``GrokCallback`` ÷ the same run without it (wall time, one process).

The default digits network (MLP 4x200, AdamW, batch 200, 1,000 training images as a
TensorDataset in a DataLoader) trained by a real ``lightning.Trainer`` on the CPU for ``--steps``
steps with Lightning's ``MLFlowLogger`` into a temporary SQLite store, once without and once with
the callback at the default measure settings (60 log-spaced evaluations, 20 PGD, 7 partition
snapshots over the run).

    python benchmarks/bench_lightning.py --steps 5000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
from torch import nn

from common import stable_allocator


def main() -> None:
    stable_allocator()
    import lightning
    from lightning.pytorch.loggers import MLFlowLogger
    from torch.utils.data import DataLoader, TensorDataset

    from grok_mlflow.lightning import GrokCallback
    from grok_mlflow.runner.data import load_dataset
    from grok_mlflow.runner.models import build_model
    from grok_mlflow.settings import Settings, TrackerSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    args = parser.parse_args()
    settings = Settings()
    data = load_dataset(settings, torch.device("cpu"))
    train_set = TensorDataset(data.x_train, data.y_train)
    test = (data.x_test, data.y_test)

    class Lit(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = build_model(settings, data.input_shape, data.num_classes)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            return nn.functional.cross_entropy(self(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=0.01)

    def fit(callbacks, tmp) -> float:
        logger = MLFlowLogger(experiment_name="bench", tracking_uri=f"sqlite:///{tmp}/mlflow.db")
        trainer = lightning.Trainer(max_steps=args.steps, logger=logger, callbacks=callbacks,
                                    accelerator="cpu", devices=1, enable_progress_bar=False,
                                    enable_model_summary=False, enable_checkpointing=False,
                                    default_root_dir=tmp, log_every_n_steps=50)
        loader = DataLoader(train_set, batch_size=200, shuffle=True, drop_last=True)
        start = time.perf_counter()
        trainer.fit(Lit(), loader)
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        fit([], tmp)                                               # warm-up: imports, the store
        plain = fit([], tmp)
        tracked = fit([GrokCallback(train_set, test, TrackerSettings(steps=args.steps))], tmp)
    print(f"Lightning, digits MLP 4x200, {args.steps} steps on the CPU: without the callback "
          f"{plain:.1f} s, with it {tracked:.1f} s, with/without = {tracked / plain:.2f}")


if __name__ == "__main__":
    main()
