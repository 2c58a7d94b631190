"""Datasets as tensors on the training device (airbench style: no DataLoader in the hot loop).

Every loader returns a ``DataSplits`` with inputs in [0, 1] pixel units, shape (N, C, H, W);
normalisation, where a dataset wants it, is the model's first module, so LC and PGD see pixels.
``DATASETS`` maps a name to its ``DatasetSpec``; an unknown name lists the valid ones.

Example:
    >>> data = load_dataset(Settings(train_size=500), torch.device("cpu"))
    >>> data.x_train.shape, data.num_classes
    (torch.Size([500, 1, 8, 8]), 10)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from .settings import Settings, SettingsError

__all__ = ["DATASETS", "DataSplits", "DatasetSpec", "load_dataset"]


@dataclass(frozen=True)
class DataSplits:
    """Train and test tensors on one device.

    Attributes:
        x_train: (N_train, C, H, W) float32 in [0, 1].    y_train: (N_train,) int64 labels.
        x_test: (N_test, C, H, W) float32 in [0, 1].      y_test: (N_test,) int64 labels.
        num_classes: number of labels.
        domain: (low, high) of the input box, for LC's uniformly random points.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    domain: tuple[float, float] = (0.0, 1.0)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its loader, how many training samples it can give, its default PGD budgets."""

    load: Callable[[Settings], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]]
    max_train_size: int
    default_adv_eps: tuple[float, ...]
    description: str


def _load_digits(settings: Settings):
    """sklearn's handwritten digits (1,797 8x8 images, 16 grey levels), shipped with sklearn.

    There is no official split: a seeded permutation gives ``train_size`` training images and
    the rest (797 at the default 1,000) as the test set.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]      # (1797, 1, 8, 8) in [0, 1]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(settings.seed).permutation(len(x))
    train, test = order[:settings.train_size], order[settings.train_size:]
    return x[train], y[train], x[test], y[test], 10


DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(_load_digits, max_train_size=1797 - 1,
                          default_adv_eps=(0.05, 0.1, 0.2),
                          description="scikit-learn handwritten digits, 8x8, embedded (offline)"),
}


def dataset_spec(name: str) -> DatasetSpec:
    """The registry entry for ``name``; an unknown name raises with the list of valid ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise SettingsError(f"dataset: unknown value {name!r}; valid: "
                            + ", ".join(DATASETS)) from None


def check_dataset(settings: Settings) -> None:
    """Raise ``SettingsError`` for a train_size the dataset cannot give (before loading it)."""
    spec = dataset_spec(settings.dataset)
    if settings.train_size > spec.max_train_size:
        raise SettingsError(f"train_size: must be <= {spec.max_train_size} for "
                            f"{settings.dataset}, got {settings.train_size}")


def load_dataset(settings: Settings, device: torch.device) -> DataSplits:
    """Load ``settings.dataset`` with a seeded ``train_size`` subset, as tensors on ``device``."""
    check_dataset(settings)
    x_tr, y_tr, x_te, y_te, num_classes = dataset_spec(settings.dataset).load(settings)

    def put(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    return DataSplits(put(x_tr), put(y_tr), put(x_te), put(y_te), num_classes)
