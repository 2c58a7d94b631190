"""The training loop: one readable function, data on the device, the tracker doing the rest.

Example:
    >>> result = train(Settings(steps=200, eval_points=5))
    >>> result.metrics["acc/test"]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .data import check_dataset, dataset_spec, load_dataset
from .evaluation import loss_function
from .models import build_model
from .settings import Settings, SettingsError
from .tracking import GrokTracker

__all__ = ["TrainResult", "check_settings", "resolve_device", "train"]

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


@dataclass
class TrainResult:
    """What ``train`` returns: the trained model, its MLflow run, the last measured metrics."""
    model: nn.Module
    run_id: str
    metrics: dict[str, float]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU raises SettingsError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SettingsError("device: cuda requested but no CUDA GPU is available here "
                            "(use device=auto or device=cpu)")
    return torch.device(name)


def check_settings(settings: Settings) -> torch.device:
    """Every check that needs the environment (device, dataset size), before any work starts."""
    device = resolve_device(settings.device)
    check_dataset(settings)
    return device


class _Untracked:
    """Stands in for ``GrokTracker`` when nothing is measured (``train(track=False)``)."""

    run_id = None
    history: dict[int, dict[str, float]] = {}

    def __enter__(self) -> "_Untracked":
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def step(self, step: int, loss=None) -> None:
        return None


def train(settings: Settings, *, experiment: str | None = None, run_name: str | None = None,
          progress: bool = True, track: bool = True) -> TrainResult:
    """Train ``settings.model`` on ``settings.dataset`` and track it in MLflow.

    Adam(W) on minibatches drawn without replacement (a fresh seeded permutation each epoch; the
    last incomplete batch of an epoch is dropped), measured and logged by ``GrokTracker``.
    ``track=False`` runs the same loop with no measurement and no MLflow (for benchmarks).
    """
    device = check_settings(settings)
    data = load_dataset(settings, device)
    torch.manual_seed(settings.seed)                   # initialisation
    model = build_model(settings, data.input_shape, data.num_classes,
                        dataset_spec(settings.dataset).normalization).to(device)
    optimizer = OPTIMIZERS[settings.optimizer](model.parameters(), lr=settings.lr,
                                               weight_decay=settings.weight_decay)
    loss_fn = loss_function(settings.loss)
    batches_gen = torch.Generator(device=device).manual_seed(settings.seed)
    n_train, batch_size = len(data.x_train), settings.batch_size
    per_epoch = n_train // batch_size                  # full batches per epoch

    tracker_context = GrokTracker(
        model, train=(data.x_train, data.y_train), test=(data.x_test, data.y_test),
        settings=settings, domain=data.domain, run_name=run_name, experiment=experiment,
        progress=progress) if track else _Untracked()
    with tracker_context as tracker:
        model.train()
        order = torch.empty(0, dtype=torch.long, device=device)
        for step in range(1, settings.steps + 1):
            k = (step - 1) % per_epoch
            if k == 0:
                order = torch.randperm(n_train, generator=batches_gen, device=device)
            idx = order[k * batch_size:(k + 1) * batch_size]          # (B,) on the device
            loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            tracker.step(step, loss=loss)
        final = tracker.history.get(settings.steps, {})
    return TrainResult(model=model, run_id=tracker.run_id, metrics=final)
