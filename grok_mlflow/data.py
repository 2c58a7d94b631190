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
    # per-channel (mean, std) that the model's first module applies; None: raw [0, 1] pixels
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    how_to_get: str = ""


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


def _seeded_subset(n_total: int, n: int, seed: int) -> np.ndarray:
    """``n`` indices of ``range(n_total)``, a seeded permutation's first ``n`` (sorted)."""
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:n])


def _missing(settings: Settings, err: Exception) -> SettingsError:
    spec = DATASETS[settings.dataset]
    return SettingsError(
        f"dataset: {settings.dataset} not found under data_root={settings.data_root!r} "
        f"({type(err).__name__}: {err}). {spec.how_to_get}")


def _load_mnist(settings: Settings):
    """torchvision's MNIST: ``train_size`` seeded images of the 60,000, all 10,000 test images."""
    from torchvision.datasets import MNIST

    try:
        train = MNIST(settings.data_root, train=True, download=settings.download)
        test = MNIST(settings.data_root, train=False, download=settings.download)
    except (RuntimeError, OSError) as err:  # missing files, or no network for the download
        raise _missing(settings, err) from None
    idx = _seeded_subset(len(train.data), settings.train_size, settings.seed)
    scale = lambda images: images.numpy()[:, None].astype(np.float32) / 255.0  # noqa: E731
    return (scale(train.data[idx]), train.targets.numpy()[idx], scale(test.data),
            test.targets.numpy(), 10)


def _cifar(class_name: str):
    """A loader for torchvision's CIFAR10/100 (python pickles under ``cifar-10-batches-py/``...).

    torchvision checks every batch file's md5 before reading; that check stays for downloads, and
    a local copy is read as it is (so that a re-packed or test copy of the files is accepted).
    """
    def load(settings: Settings):
        import os

        import torchvision.datasets

        cls = getattr(torchvision.datasets, class_name)

        class LocalCopy(cls):
            meta = {**cls.meta, "md5": None}   # None: check_integrity tests existence only

            def _check_integrity(self) -> bool:
                return all(os.path.exists(os.path.join(self.root, self.base_folder, name))
                           for name, _ in self.train_list + self.test_list)

        dataset = cls if settings.download else LocalCopy
        try:
            train = dataset(settings.data_root, train=True, download=settings.download)
            test = dataset(settings.data_root, train=False, download=settings.download)
        except (RuntimeError, OSError) as err:
            raise _missing(settings, err) from None
        idx = _seeded_subset(len(train.data), settings.train_size, settings.seed)
        scale = lambda a: a.transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # noqa: E731
        return (scale(train.data[idx]), np.asarray(train.targets)[idx], scale(test.data),
                np.asarray(test.targets), len(train.classes))

    return load


def _load_imagenette(settings: Settings):
    """torchvision's Imagenette (10 ImageNet classes; ``imagenette2-160/{train,val}/<wnid>/``),
    resized (shorter side) and centre-cropped to ``image_size`` (default 160), decoded once by
    DataLoader workers into one tensor per split.
    """
    import torch.utils.data as tud
    from torchvision import transforms
    from torchvision.datasets import Imagenette

    size = settings.image_size or 160
    folder = "160px" if size <= 160 else "320px" if size <= 320 else "full"
    transform = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size),
                                    transforms.PILToTensor()])
    splits = []
    for split in ("train", "val"):
        try:
            ds = Imagenette(settings.data_root, split=split, size=folder,
                            download=settings.download and split == "train", transform=transform)
        except (RuntimeError, OSError) as err:
            raise _missing(settings, err) from None
        if split == "train":
            ds = tud.Subset(ds, _seeded_subset(len(ds), min(settings.train_size, len(ds)),
                                               settings.seed).tolist())
        loader = tud.DataLoader(ds, batch_size=256, num_workers=min(8, _cpu_count()))
        images, labels = zip(*loader)
        splits += [torch.cat(images).numpy().astype(np.float32) / 255.0, torch.cat(labels).numpy()]
    return (*splits, 10)


def _cpu_count() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_CIFAR_GET = ("Use download=true (default) with internet, or put the extracted python version "
              "({folder}/data_batch_1..5, test_batch, batches.meta) under data_root.")
DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(_load_digits, max_train_size=1797 - 1,
                          default_adv_eps=(0.05, 0.1, 0.2),
                          description="scikit-learn handwritten digits, 8x8, embedded (offline)"),
    "mnist": DatasetSpec(_load_mnist, max_train_size=60_000, default_adv_eps=(0.05, 0.1, 0.2),
                         description="MNIST 28x28 (torchvision)",
                         how_to_get="Use download=true (default) with internet, or put "
                                    "train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                                    "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte under "
                                    "DATA_ROOT/MNIST/raw/."),
    "cifar10": DatasetSpec(_cifar("CIFAR10"),
                           max_train_size=50_000, default_adv_eps=(2 / 255, 4 / 255, 8 / 255),
                           description="CIFAR-10 32x32 (torchvision)",
                           normalization=((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
                           how_to_get=_CIFAR_GET.format(folder="DATA_ROOT/cifar-10-batches-py")),
    "cifar100": DatasetSpec(_cifar("CIFAR100"),
                            max_train_size=50_000, default_adv_eps=(2 / 255, 4 / 255, 8 / 255),
                            description="CIFAR-100 32x32 (torchvision)",
                            normalization=((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
                            how_to_get=_CIFAR_GET.replace(
                                "data_batch_1..5, test_batch, batches.meta", "train, test, meta"
                            ).format(folder="DATA_ROOT/cifar-100-python")),
    "imagenette": DatasetSpec(_load_imagenette, max_train_size=9469,
                              default_adv_eps=(1 / 255, 2 / 255, 4 / 255),
                              description="Imagenette (torchvision), 10 ImageNet classes",
                              normalization=((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                              how_to_get="Use download=true (default) with internet, or extract "
                                         "imagenette2-160.tgz (image_size <= 160), "
                                         "imagenette2-320.tgz (<= 320) or imagenette2.tgz under "
                                         "DATA_ROOT/."),
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
    if settings.random_labels >= 1 and settings.random_labels > settings.train_size:
        raise SettingsError(f"random_labels: must be <= train_size ({settings.train_size}), "
                            f"got {settings.random_labels:g}")


def load_dataset(settings: Settings, device: torch.device) -> DataSplits:
    """Load ``settings.dataset`` with a seeded ``train_size`` subset, as tensors on ``device``.

    ``random_labels`` (a count >= 1, or a fraction of ``train_size`` below 1) training labels are
    replaced by seeded uniformly random labels (paper fig. 5: memorisation delays grokking).
    """
    check_dataset(settings)
    x_tr, y_tr, x_te, y_te, num_classes = dataset_spec(settings.dataset).load(settings)
    y_tr = np.array(y_tr, dtype=np.int64)
    n_random = (int(round(settings.random_labels * len(y_tr))) if settings.random_labels < 1
                else int(settings.random_labels))
    if n_random:
        rng = np.random.default_rng(settings.seed + 2)
        which = rng.choice(len(y_tr), size=n_random, replace=False)
        y_tr[which] = rng.integers(0, num_classes, size=n_random)

    def put(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    return DataSplits(put(x_tr), put(y_tr), put(x_te), put(np.asarray(y_te, dtype=np.int64)),
                      num_classes)
