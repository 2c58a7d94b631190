"""Datasets as tensors on the training device (airbench style: no DataLoader in the hot loop).

Every image loader gives inputs in [0, 1] pixel units, shape (N, C, H, W); normalisation, where
a dataset wants it, is the model's first module, so LC and PGD see pixels. ``modular_addition``
gives tokens instead: (N, 3) int64 sequences ``a, b, =`` (LC then works in the model's embedding
space, and PGD is off). ``DATASETS`` maps a name
to its ``DatasetSpec``; an unknown name lists the valid ones.

Small datasets (digits, MNIST, CIFAR) live on the training device as tensors. A large one
(Imagenette) streams: its training set stays a ``Dataset`` (``DataSplits.stream``), and only fixed
seeded subsets of ``eval_size`` images per split are decoded once, as tensors, for the measures.
Minibatches are drawn from either by ``grok_mlflow.runner.batches``.

Example:
    >>> data = load_dataset(Settings(train_size=500), torch.device("cpu"))
    >>> data.x_train.shape, data.num_classes
    (torch.Size([500, 1, 8, 8]), 10)
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.utils.data as tud
from torch import Tensor

from ..settings import Settings, SettingsError

__all__ = ["DATASETS", "DataSplits", "DatasetSpec", "check_dataset", "dataset_spec",
           "load_dataset", "torch_dtype"]


@dataclass(frozen=True)
class DataSplits:
    """Train and test tensors on one device (and, for a streamed dataset, the training stream).

    Attributes:
        x_train: (N_train, C, H, W) in [0, 1], the ``dtype`` setting's type (float32 by default);
            for a token dataset (N_train, T) int64 token ids.
        y_train: (N_train,) int64 labels.
        x_test: (N_test, C, H, W), as x_train.          y_test: (N_test,) int64 labels.
        num_classes: number of labels.
        domain: (low, high) of the input box, for LC's uniformly random points (tokens: the
            smallest and largest token id).
        train_stream: None for a dataset held as tensors. For a streamed one, the whole training
            subset as a Dataset of ((C, H, W) uint8 image, label) decoded on access, and
            x_train/y_train are only its fixed decoded evaluation subset.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    domain: tuple[float, float] = (0.0, 1.0)
    train_stream: torch.utils.data.Dataset | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def tokens(self) -> bool:
        """Whether the inputs are token ids (integers) rather than continuous values."""
        return not self.x_train.is_floating_point()

    @property
    def n_train(self) -> int:
        """Training samples that minibatches are drawn from."""
        if self.train_stream is not None:
            return len(self.train_stream)  # type: ignore[arg-type]  # a map-style Dataset: sized
        return len(self.x_train)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its loader, how many training samples it can give, its default PGD budgets.

    ``load(settings)`` returns (x_train, y_train, x_test, y_test, num_classes): x as float32
    arrays in [0, 1], or, when ``streamed``, as Datasets of ((C, H, W) uint8 image, label).
    """

    load: Callable[[Settings], tuple]
    max_train_size: int
    default_adv_eps: tuple[float, ...]
    description: str
    # per-channel (mean, std) that the model's first module applies; None: raw [0, 1] pixels
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    how_to_get: str = ""
    streamed: bool = False
    tokens: bool = False     # inputs are int64 token ids (x as int arrays, never cast to float)


def _load_digits(settings: Settings):
    """sklearn's handwritten digits (1,797 8x8 images, 16 grey levels), shipped with sklearn.

    There is no official split: a seeded permutation gives ``train_size`` training images and
    the rest (797 at the default 1,000) as the test set.
    """
    from sklearn.datasets import load_digits  # noqa: PLC0415 - scikit-learn: the digits dataset only

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]      # (1797, 1, 8, 8) in [0, 1]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(settings.seed).permutation(len(x))
    train, test = order[:settings.train_size], order[settings.train_size:]
    return x[train], y[train], x[test], y[test], 10


def modular_addition_pairs(settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (a, b) of residues mod p as the token sequence ``a, b, =`` (``=`` is token p),
    with label (a + b) mod p, in the order a * p + b.       (p^2, 3) int64, (p^2,) int64"""
    p = settings.modulus
    a, b = np.divmod(np.arange(p * p, dtype=np.int64), p)
    x = np.stack([a, b, np.full_like(a, p)], axis=1)
    return x, (a + b) % p


def modular_train_size(settings: Settings) -> int:
    """Training pairs of ``modular_addition``: round(train_fraction x p^2), at least 1."""
    return max(1, round(settings.train_fraction * settings.modulus ** 2))


def _load_modular_addition(settings: Settings):
    """Modular addition (Power et al. 2022; Nanda et al. 2023): all p^2 pairs, a seeded split of
    ``train_fraction`` of them for training, the rest for test. Generated; nothing to download."""
    x, y = modular_addition_pairs(settings)
    order = np.random.default_rng(settings.seed).permutation(len(x))
    n = modular_train_size(settings)
    train, test = np.sort(order[:n]), np.sort(order[n:])
    return x[train], y[train], x[test], y[test], settings.modulus


def _seeded_subset(n_total: int, n: int, seed: int) -> np.ndarray:
    """``n`` indices of ``range(n_total)``, a seeded permutation's first ``n`` (sorted; all
    ``n_total`` when n > n_total)."""
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:n])


def _missing(settings: Settings, err: Exception) -> SettingsError:
    spec = DATASETS[settings.dataset]
    return SettingsError(
        f"dataset: {settings.dataset} not found under data_root={settings.data_root!r} "
        f"({type(err).__name__}: {err}). {spec.how_to_get}")


def _load_mnist(settings: Settings):
    """torchvision's MNIST: ``train_size`` seeded images of the 60,000, all 10,000 test images."""
    from torchvision.datasets import MNIST  # noqa: PLC0415 - torchvision: image datasets and ResNet only (heavy)

    return _grey_split(MNIST, settings.data_root, settings)


def _grey_split(dataset, root: str, settings: Settings):
    """A torchvision MNIST-format dataset (``MNIST``, ``FashionMNIST``) read from ``root``: the
    seeded ``train_size`` training images and all test images in [0, 1], 10 classes; missing,
    unreadable or truncated files are ``_missing``'s one line."""
    try:
        train = dataset(root, train=True, download=settings.download)
        test = dataset(root, train=False, download=settings.download)
    except (RuntimeError, OSError, EOFError) as err:   # missing, broken, or no network
        raise _missing(settings, err) from None
    idx = _seeded_subset(len(train.data), settings.train_size, settings.seed)
    scale = lambda images: images.numpy()[:, None].astype(np.float32) / 255.0  # noqa: E731
    return (scale(train.data[idx]), train.targets.numpy()[idx], scale(test.data),
            test.targets.numpy(), 10)


FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte")
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"   # apt-get install dataset-fashion-mnist


def _fashion_root(root: str) -> str:
    """The root torchvision's ``FashionMNIST`` reads: ``root`` itself when it holds
    ``FashionMNIST/raw/<file>`` (torchvision's layout), else, where ``root`` (or
    ``root/FashionMNIST/raw``) holds the four official ``*-ubyte.gz`` files as they lie (Debian's
    ``dataset-fashion-mnist`` installs them in ``/usr/share/datasets/fashion-mnist``), a cache
    they are unpacked into once: ``$XDG_CACHE_HOME/grok_mlflow`` (default ``~/.cache``), the
    package's files left untouched."""
    base = Path(root)
    if all((base / "FashionMNIST" / "raw" / f).exists() for f in FASHION_FILES):
        return root
    source = next((d for d in (base, base / "FashionMNIST" / "raw")
                   if all((d / f"{f}.gz").exists() for f in FASHION_FILES)), None)
    if source is None:
        return root                        # torchvision says what is missing (or downloads)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "grok_mlflow"
    raw = cache / "fashion_mnist" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in FASHION_FILES:
        target = raw / name
        packed = source / f"{name}.gz"
        if target.exists() and target.stat().st_mtime >= packed.stat().st_mtime:
            continue
        partial = raw / f"{name}.partial"
        with gzip.open(packed) as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst)
        partial.replace(target)            # never a half-written file under its real name
    return str(cache / "fashion_mnist")


def _load_fashion_mnist(settings: Settings):
    """torchvision's FashionMNIST (Zalando, 28x28 grey, 10 classes): ``train_size`` seeded
    images of the 60,000, all 10,000 test images; the official gzip files are accepted where
    they lie (``_fashion_root``)."""
    from torchvision.datasets import FashionMNIST  # noqa: PLC0415 - torchvision: image datasets and ResNet only (heavy)

    try:
        root = _fashion_root(settings.data_root)
    except (OSError, EOFError) as err:                  # a truncated *.gz while unpacking
        raise _missing(settings, err) from None
    return _grey_split(FashionMNIST, root, settings)


def _cifar(class_name: str):
    """A loader for torchvision's CIFAR10/100 (python pickles under ``cifar-10-batches-py/``...).

    torchvision checks every batch file's md5 before reading; that check stays for downloads, and
    a local copy is read as it is (so that a re-packed or test copy of the files is accepted).
    """
    def load(settings: Settings):
        import torchvision.datasets  # noqa: PLC0415 - torchvision: image datasets and ResNet only (heavy)

        cls = getattr(torchvision.datasets, class_name)

        class LocalCopy(cls):  # type: ignore[valid-type,misc]  # the class torchvision names
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
    """torchvision's Imagenette (10 ImageNet classes; ``imagenette2-160/{train,val}/<wnid>/``) as
    two datasets of (3, S, S) uint8 images, decoded on access: resized (shorter side, bilinear,
    antialiased) and centre-cropped to S = ``image_size`` (default 160). No augmentation (the
    paper names none). The labels come from the file list, so nothing is decoded here.
    """
    from torchvision import transforms  # noqa: PLC0415 - torchvision: image datasets and ResNet only (heavy)
    from torchvision.datasets import Imagenette  # noqa: PLC0415 - torchvision: image datasets and ResNet only (heavy)

    size = settings.image_size or 160
    folder = "160px" if size <= 160 else "320px" if size <= 320 else "full"
    # PIL decodes (RGB, also for Imagenette's few grey-scale JPEGs); torchvision's own decoders
    # are deprecated since 0.29
    transform = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size),
                                    transforms.PILToTensor()])
    splits = []
    for split in ("train", "val"):
        try:
            ds = Imagenette(settings.data_root, split=split, size=folder, loader=_read_rgb,
                            download=settings.download and split == "train", transform=transform)
        except (RuntimeError, OSError) as err:
            raise _missing(settings, err) from None
        except KeyError as err:   # a class folder that is not one of Imagenette's 10 WordNet ids
            where = _imagenette_folder(settings, folder, split)
            raise SettingsError(f"dataset: {where} holds a folder {err.args[0]!r} that is not "
                                f"an Imagenette class; expected "
                                f"the 10 folders {', '.join(Imagenette._WNID_TO_CLASS)}") from None
        labels = np.array([label for _, label in ds._samples], dtype=np.int64)  # the file list
        if split == "train":
            idx = _seeded_subset(len(ds), settings.train_size, settings.seed)
            ds, labels = tud.Subset(ds, idx.tolist()), labels[idx]
        splits += [ds, labels]
    return (*splits, 10)


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def _load_imagenet(settings: Settings):
    """ImageNet from local files (paper fig. 12): an ImageFolder tree
    ``DATA_ROOT/imagenet/{train,val}/<class>/<image>`` (torchvision's ``ImageNet`` leaves exactly
    this under its root once it has unpacked the archives; the validation images must be sorted
    into class folders). Two datasets of (3, S, S) uint8 images decoded on access: resized
    (shorter side to S x 256/224, bilinear, antialiased) and centre-cropped to S =
    ``image_size`` (default 224), the standard evaluation transform; no augmentation. Classes
    are the training folders, sorted (1,000 for ImageNet-1k); ``val`` may hold fewer, not others.
    """
    from torchvision import transforms  # noqa: PLC0415 - torchvision: image datasets and ResNet only (heavy)
    from torchvision.datasets import DatasetFolder  # noqa: PLC0415 - torchvision: image datasets and ResNet only (heavy)

    size = settings.image_size or 224
    transform = transforms.Compose([transforms.Resize(round(size * 256 / 224)),
                                    transforms.CenterCrop(size), transforms.PILToTensor()])
    root = os.path.join(settings.data_root, "imagenet")
    train_dir, val_dir = os.path.join(root, "train"), os.path.join(root, "val")
    for folder in (train_dir, val_dir):
        if not os.path.isdir(folder):
            raise _missing(settings, FileNotFoundError(f"no folder {folder}"))
    classes = sorted(e.name for e in os.scandir(train_dir) if e.is_dir())
    unknown = sorted({e.name for e in os.scandir(val_dir) if e.is_dir()} - set(classes))
    if unknown:
        raise SettingsError(f"dataset: {val_dir} holds class folder(s) {', '.join(unknown[:5])} "
                            f"that {train_dir} does not")
    index = {name: i for i, name in enumerate(classes)}
    splits = []
    for split, folder in (("train", train_dir), ("val", val_dir)):
        samples = DatasetFolder.make_dataset(folder, index, IMAGE_EXTENSIONS,
                                             allow_empty=split == "val")
        images = _Images(samples, transform)
        ds: tud.Dataset = images
        labels = np.array([label for _, label in samples], dtype=np.int64)
        if split == "train":
            if settings.train_size > len(images):
                raise SettingsError(f"train_size: must be <= the {len(images)} training images in "
                                    f"{train_dir}, got {settings.train_size}")
            idx = _seeded_subset(len(images), settings.train_size, settings.seed)
            ds, labels = tud.Subset(ds, idx.tolist()), labels[idx]
        splits += [ds, labels]
    return (*splits, len(classes))


class _Images(torch.utils.data.Dataset):
    """(path, label) samples as (transformed image, label) items, decoded on access (RGB)."""

    def __init__(self, samples: list[tuple[str, int]], transform):
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        return self.transform(_read_rgb(path)), label


class UnreadableImage(SettingsError):
    """An image file of the dataset that cannot be decoded (truncated or not an image)."""


def _read_rgb(path: str):
    """torchvision's PIL loader (RGB); a file that does not decode raises ``UnreadableImage``
    naming it (in a worker process: ``reraise_clean`` unwraps it in the training process)."""
    from torchvision.datasets.folder import pil_loader  # noqa: PLC0415 - torchvision: image datasets and ResNet only (heavy)

    try:
        return pil_loader(path)
    except (OSError, ValueError) as err:   # PIL.UnidentifiedImageError is an OSError
        raise UnreadableImage(f"dataset: cannot decode {path} ({type(err).__name__}: {err}); "
                              "replace or remove the file") from None


@contextlib.contextmanager
def reraise_clean():
    """DataLoader re-raises a worker's exception with the worker's traceback as its message;
    an ``UnreadableImage`` keeps its own one-line message instead."""
    try:
        yield
    except UnreadableImage as err:
        last = str(err).rstrip().splitlines()[-1]
        err.__traceback__ = None   # its frames hold the DataLoader iterator: let it stop now
        raise UnreadableImage(last.split(f"{UnreadableImage.__name__}: ", 1)[-1]) from None


def _imagenette_folder(settings: Settings, folder: str, split: str) -> str:
    """Where torchvision looks for an Imagenette split (for error messages)."""
    name = {"160px": "imagenette2-160", "320px": "imagenette2-320", "full": "imagenette2"}[folder]
    return os.path.join(settings.data_root, name, split)


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def workers_for(settings: Settings) -> int:
    """``data_workers``, with -1 resolved to one per CPU core (at most 8)."""
    return min(8, _cpu_count()) if settings.data_workers < 0 else settings.data_workers


class _Relabelled(torch.utils.data.Dataset):
    """``images[i]``'s image with ``labels[i]`` (the labels after ``random_labels``)."""

    def __init__(self, images: torch.utils.data.Dataset, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.images[i][0], int(self.labels[i])


def _decode(images: torch.utils.data.Dataset, index: np.ndarray, workers: int) -> np.ndarray:
    """Images ``index`` of a uint8 image dataset, decoded by ``workers`` processes, as float32
    (n, C, H, W) in [0, 1]."""
    loader = tud.DataLoader(tud.Subset(images, index.tolist()), batch_size=256,
                            num_workers=workers)
    with reraise_clean():
        return torch.cat([x for x, _ in loader]).numpy().astype(np.float32) / 255.0


_CIFAR_GET = ("Use download=true (default) with internet, or put the extracted python version "
              "({folder}/data_batch_1..5, test_batch, batches.meta) under data_root.")
# ImageNet's photographs: streamed, ImageNet's normalisation, PGD budgets of 1-4 grey levels
_IMAGENET_FAMILY: dict[str, Any] = dict(
    default_adv_eps=(1 / 255, 2 / 255, 4 / 255), streamed=True,
    normalization=((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))

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
    "fashion_mnist": DatasetSpec(
        _load_fashion_mnist, max_train_size=60_000, default_adv_eps=(0.05, 0.1, 0.2),
        description="Fashion-MNIST 28x28 (torchvision; Debian's dataset-fashion-mnist files)",
        how_to_get=f"Install the official files with `apt-get install dataset-fashion-mnist` "
                   f"and use data_root={DEBIAN_FASHION_MNIST} (the *.gz files are read where "
                   f"they lie), or download=true with internet, or put the four *-ubyte(.gz) "
                   f"files under DATA_ROOT/FashionMNIST/raw/."),
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
                              description="Imagenette (torchvision), 10 ImageNet classes",
                              how_to_get="Use download=true (default) with internet, or extract "
                                         "imagenette2-160.tgz (image_size <= 160), "
                                         "imagenette2-320.tgz (<= 320) or imagenette2.tgz under "
                                         "DATA_ROOT/.", **_IMAGENET_FAMILY),
    "imagenet": DatasetSpec(_load_imagenet, max_train_size=1_281_167,
                            description="ImageNet-1k from local files (an ImageFolder tree)",
                            how_to_get="No download: put the images under "
                                       "DATA_ROOT/imagenet/train/<class>/ and "
                                       "DATA_ROOT/imagenet/val/<class>/ (torchvision's ImageNet "
                                       "leaves this layout after unpacking the archives).",
                            **_IMAGENET_FAMILY),
    "modular_addition": DatasetSpec(_load_modular_addition, max_train_size=0,
                                    default_adv_eps=(),
                                    description="(a + b) mod p as tokens a, b, = (generated)",
                                    tokens=True),
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
    if spec.tokens:
        n = modular_train_size(settings)
        if n >= settings.modulus ** 2:
            raise SettingsError(f"train_fraction: leaves no test pair of the {settings.modulus}^2 "
                                f"(train {n}); lower it")
        if settings.batch_size > n:
            raise SettingsError(f"batch_size: must be <= the {n} training pairs "
                                f"(train_fraction x modulus^2), got {settings.batch_size}")
        if settings.random_labels > 1 and settings.random_labels > n:
            raise SettingsError(f"random_labels: must be <= the {n} training pairs, "
                                f"got {settings.random_labels:g}")
        return
    if spec.streamed and settings.batch_size == 0:
        raise SettingsError(f"batch_size: 0 (full batch) is not possible for the streamed "
                            f"{settings.dataset}; give a minibatch size")
    if settings.train_size > spec.max_train_size:
        raise SettingsError(f"train_size: must be <= {spec.max_train_size} for "
                            f"{settings.dataset}, got {settings.train_size}")
    if settings.random_labels > 1 and settings.random_labels > settings.train_size:
        raise SettingsError(f"random_labels: must be <= train_size ({settings.train_size}), "
                            f"got {settings.random_labels:g}")


# images per split decoded once for the measures of a streamed dataset when eval_size is 0
STREAMED_EVAL_SIZE = 2000


def load_dataset(settings: Settings, device: torch.device) -> DataSplits:
    """Load ``settings.dataset`` with a seeded ``train_size`` subset, as tensors on ``device``.

    ``random_labels`` (a fraction of ``train_size`` up to 1, where 1 is every label, or a count
    above 1) training labels are replaced by seeded uniformly random labels (paper fig. 5:
    memorisation delays grokking; the authors' ``train_mlp_mnist.py`` draws every label).
    A streamed dataset (Imagenette) is not decoded whole: ``train_stream`` holds its training
    subset, and x/y are seeded subsets of ``eval_size`` (0: 2,000) images per split, decoded
    once by ``data_workers`` processes (seed + 3; training labels after ``random_labels``).
    """
    check_dataset(settings)
    spec = dataset_spec(settings.dataset)
    x_tr, y_tr, x_te, y_te, num_classes = spec.load(settings)
    y_tr, y_te = np.array(y_tr, dtype=np.int64), np.array(y_te, dtype=np.int64)
    if not spec.tokens and len(y_tr) < settings.train_size:   # a local copy with fewer samples
        raise SettingsError(f"train_size: must be <= the {len(y_tr)} training samples of "
                            f"{settings.dataset} under data_root={settings.data_root!r}, "
                            f"got {settings.train_size}")
    n_random = (int(round(settings.random_labels * len(y_tr))) if settings.random_labels <= 1
                else int(settings.random_labels))
    if n_random:
        rng = np.random.default_rng(settings.seed + 2)
        which = rng.choice(len(y_tr), size=n_random, replace=False)
        y_tr[which] = rng.integers(0, num_classes, size=n_random)
    stream = None
    if spec.streamed:
        stream = _Relabelled(x_tr, y_tr)
        wanted = settings.eval_size or STREAMED_EVAL_SIZE
        decoded = []
        for images, labels in ((x_tr, y_tr), (x_te, y_te)):
            index = _seeded_subset(len(labels), min(wanted, len(labels)), settings.seed + 3)
            decoded += [_decode(images, index, workers_for(settings)), labels[index]]
        x_tr, y_tr, x_te, y_te = decoded

    dtype = torch_dtype(settings.dtype)

    def put(a: np.ndarray, dtype: torch.dtype | None = None) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype)

    if spec.tokens:           # token ids stay int64; random LC points are token ids too
        return DataSplits(put(x_tr), put(y_tr), put(x_te), put(y_te), num_classes,
                          domain=(0.0, float(max(x_tr.max(), x_te.max()))))
    return DataSplits(put(x_tr, dtype), put(y_tr), put(x_te, dtype), put(y_te), num_classes,
                      train_stream=stream)


def torch_dtype(name: str) -> torch.dtype:
    """``float32`` / ``float64`` (the ``dtype`` setting) as a torch dtype."""
    return {"float32": torch.float32, "float64": torch.float64}[name]


