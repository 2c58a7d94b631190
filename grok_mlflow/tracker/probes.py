"""What points to measure on: fixed, seeded probe sets drawn once from the user's data.

The same points at every measured step, so that curves are comparable across steps:

========================  ==========================================================================
``lc["train"]``           ``lc_samples`` training inputs (a seeded permutation, seed + 1)
``lc["test"]``            ``lc_samples`` test inputs (the same generator, next draw)
``lc["random"]``          ``lc_samples`` inputs uniform in the input box ``domain`` (same generator);
                          for token ids (integer inputs): uniform random token sequences, ids in
                          ``domain``
``adv``                   ``adv_samples`` test (input, label) pairs for PGD (same generator)
``accuracy``              accuracy and loss: the whole splits, or ``eval_size`` seeded samples of
                          each (seed + 3, sorted)
``partition_x``           three training inputs of distinct classes where possible (seed + 2), the
                          plane of the partition slice
========================  ==========================================================================

Data comes as users have it: ``(x, y)`` tensors, a ``Dataset`` of ``(x, y)`` items, or a
``DataLoader`` (its dataset is read; an iterable dataset is iterated). A dataset is turned into
tensors once: all of it when it has at most ``eval_size`` items (0: ``DATASET_LIMIT``, 2,000),
else a seeded subset of that many (seed + 3); tensors are used whole.

Example:
    probes = draw_probes((x_tr, y_tr), test_loader, TrackerSettings(lc_samples=500),
                         device=torch.device("cpu"))
    probes.lc["train"].shape        # (500, *input_shape)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Union

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from ..measures.robustness import check_box, data_box
from ..settings import TrackerSettings

__all__ = ["DATASET_LIMIT", "Data", "Probes", "as_tensors", "check_box", "data_box",
           "draw_probes"]

DATASET_LIMIT = 2000      # items a Dataset/DataLoader is turned into when eval_size is 0

Data = Union[tuple[Tensor, Tensor], Dataset, DataLoader]


@dataclass(frozen=True)
class Probes:
    """The fixed point sets of one tracked run, on the model's device.

    Attributes:
        lc: {"train", "test", "random"}: (N, *input_shape) inputs for local complexity.
        accuracy: {"train", "test"}: (x, y) that accuracy and loss are measured on.
        adv: (x, y) test pairs for PGD.
        partition_index: indices into the training tensors of the three partition points.
        partition_x: (3, *input_shape) those points.  partition_labels: their labels.
        input_shape: one input's shape.  n_train, n_test: samples in the tensors drawn from.
        domain: (low, high) of the input box.
    """

    lc: dict[str, Tensor]
    accuracy: dict[str, tuple[Tensor, Tensor]]
    adv: tuple[Tensor, Tensor]
    partition_index: list[int]
    partition_x: Tensor
    partition_labels: list[int]
    input_shape: tuple[int, ...]
    n_train: int
    n_test: int
    domain: tuple[float, float]

    def to_dtype(self, dtype: torch.dtype) -> "Probes":
        """These probes with every floating-point input tensor cast to ``dtype`` (the model's)."""
        def cast(x: Tensor) -> Tensor:
            return x.to(dtype) if x.is_floating_point() else x

        return dataclasses.replace(
            self, lc={k: cast(x) for k, x in self.lc.items()},
            accuracy={k: (cast(x), y) for k, (x, y) in self.accuracy.items()},
            adv=(cast(self.adv[0]), self.adv[1]), partition_x=cast(self.partition_x))

    def check_labels(self, classes: int) -> None:
        """``ValueError`` (one line) when a label of the training, test or PGD points is not a
        class of a model with ``classes`` outputs."""
        sets = {"training": self.accuracy["train"][1], "test": self.accuracy["test"][1],
                "PGD (test)": self.adv[1]}
        for name, y in sets.items():
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
                raise ValueError(f"{name} labels: found {int(y.min())}..{int(y.max())}, but the "
                                 f"model has {classes} outputs (classes 0..{classes - 1})")

    def with_labels(self, relabel) -> "Probes":
        """These probes with every label tensor passed through ``relabel`` (e.g. a binary
        task's 0/1 floats as integers); the points are the same."""
        return dataclasses.replace(
            self, accuracy={k: (x, relabel(y)) for k, (x, y) in self.accuracy.items()},
            adv=(self.adv[0], relabel(self.adv[1])))


def as_tensors(data: Data, limit: int = DATASET_LIMIT, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``(x, y)`` tensors from tensors, a Dataset or a DataLoader.

    Tensors are returned as they are. A map-style dataset with more than ``limit`` items gives a
    seeded subset of ``limit`` of them (sorted indices); an iterable one its first ``limit``.

    Raises:
        TypeError: anything else, or items that are not (input, label) pairs.
    """
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(
            isinstance(t, Tensor) for t in data):
        x, y = data
        if len(x) != len(y):
            raise ValueError(f"inputs and labels differ in length: {len(x)} vs {len(y)}")
        return x, y
    dataset = data.dataset if isinstance(data, DataLoader) else data
    if isinstance(dataset, IterableDataset):
        source = data if isinstance(data, DataLoader) else DataLoader(dataset, batch_size=256)
        xs, ys, n = [], [], 0
        for batch in source:
            x, y = _pair(batch)
            xs.append(x)
            ys.append(y)
            n += len(x)
            if n >= limit:
                break
        return torch.cat(xs)[:limit], torch.cat(ys)[:limit]
    if not isinstance(dataset, Dataset) or not hasattr(dataset, "__len__"):
        raise TypeError("data must be (x, y) tensors, a Dataset of (input, label) items or a "
                        f"DataLoader, got {type(data).__name__}")
    n = len(dataset)
    if n > limit:
        gen = torch.Generator().manual_seed(seed)
        index = torch.randperm(n, generator=gen)[:limit].sort().values.tolist()
    else:
        index = list(range(n))
    items = [_pair(dataset[i]) for i in index]
    return (torch.stack([torch.as_tensor(x) for x, _ in items]),
            torch.stack([torch.as_tensor(y) for _, y in items]))


# the keys of a mapping item (a Hugging Face batch or dataset row): the first present of each
INPUT_KEYS = ("input_ids", "pixel_values", "input_values", "inputs", "x")
LABEL_KEYS = ("labels", "label", "y")


def _pair(item: Any) -> tuple[Tensor, Tensor]:
    """(input, label) of a data item: a pair, or a mapping with one of ``INPUT_KEYS`` and one of
    ``LABEL_KEYS`` (``{"input_ids": ..., "labels": ...}``)."""
    if isinstance(item, (tuple, list)) and len(item) >= 2:
        return torch.as_tensor(item[0]), torch.as_tensor(item[1])
    if isinstance(item, Mapping):
        x = next((item[k] for k in INPUT_KEYS if k in item), None)
        y = next((item[k] for k in LABEL_KEYS if k in item), None)
        if x is not None and y is not None:
            return torch.as_tensor(x), torch.as_tensor(y)
        raise TypeError(f"a data item that is a mapping needs an input ({', '.join(INPUT_KEYS)}) "
                        f"and a label ({', '.join(LABEL_KEYS)}); got keys {sorted(item)}")
    raise TypeError(f"a data item must be an (input, label) pair or a mapping, got "
                    f"{type(item).__name__}")


def draw_probes(train: Data, test: Data, settings: TrackerSettings, device: torch.device,
                domain: tuple[float, float] | None = (0.0, 1.0),
                dtype: torch.dtype | None = None) -> Probes:
    """Draw every probe set once (see the module docstring); seeded by ``settings.seed``.

    Args:
        train, test: the data, as users have it (see ``as_tensors``).
        device: where the probes live (the model's device).
        domain: (low, high) box of the inputs, for the random LC points and PGD; checked
            against the training and test inputs (``check_box``); None: the data's own box
            (``data_box``).
        dtype: floating type of the inputs (default: the training inputs').
    """
    s = settings
    limit = s.eval_size or DATASET_LIMIT
    x_train, y_train = as_tensors(train, limit, s.seed + 3)
    x_test, y_test = as_tensors(test, limit, s.seed + 3)
    _check_inputs(x_train, x_test)
    dtype = dtype or (x_train.dtype if x_train.is_floating_point() else torch.float32)
    domain = _input_box(x_train, x_test, domain)
    gen = torch.Generator().manual_seed(s.seed + 1)

    def subset(x: Tensor, y: Tensor, k: int) -> tuple[Tensor, Tensor]:
        idx = torch.randperm(len(x), generator=gen)[:min(k, len(x))].to(x.device)
        return x[idx].to(device), y[idx].to(device)

    lc = {"train": subset(x_train, y_train, s.lc_samples)[0],
          "test": subset(x_test, y_test, s.lc_samples)[0]}
    low, high = domain
    shape = (s.lc_samples, *x_train.shape[1:])
    if x_train.is_floating_point():
        lc["random"] = (low + (high - low) * torch.rand(shape, generator=gen)).to(device=device,
                                                                                 dtype=dtype)
    else:                                                            # token ids
        lc["random"] = torch.randint(int(low), int(high) + 1, shape, generator=gen,
                                     dtype=x_train.dtype).to(device)
    adv = subset(x_test, y_test, s.adv_samples)
    # accuracy and loss: the whole splits, or fixed seeded subsets of eval_size (own generator,
    # so the LC and PGD points above do not depend on eval_size)
    eval_gen = torch.Generator().manual_seed(s.seed + 3)

    def fixed(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if not s.eval_size or s.eval_size >= len(x):
            return x, y
        idx = torch.randperm(len(x), generator=eval_gen)[:s.eval_size].sort().values
        return x[idx.to(x.device)], y[idx.to(x.device)]

    accuracy = {"train": fixed(x_train, y_train), "test": fixed(x_test, y_test)}
    accuracy = {k: (x.to(device), y.to(device)) for k, (x, y) in accuracy.items()}
    # the partition plane: three seeded training points of distinct classes where the labels
    # are classes (one integer each), else the first three of the seeded order
    chosen = _plane_points(y_train, s.seed + 2)
    return Probes(lc=lc, accuracy=accuracy, adv=adv, partition_index=chosen,
                  partition_x=x_train[chosen].to(device),
                  partition_labels=y_train.cpu()[chosen].tolist(),
                  input_shape=tuple(x_train.shape[1:]), n_train=len(x_train),
                  n_test=len(x_test), domain=domain)


def _check_inputs(x_train: Tensor, x_test: Tensor) -> None:
    """``ValueError`` in one line for an empty split or inputs holding NaN or infinity."""
    for name, x in (("training", x_train), ("test", x_test)):
        if not len(x):
            raise ValueError(f"the {name} set is empty: it needs at least one (input, label)")
    for name, x in (("training", x_train), ("test", x_test)):
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            bad = int((~torch.isfinite(x)).sum())
            raise ValueError(f"the {name} inputs hold {bad} NaN or infinite value(s)")


def _input_box(x_train: Tensor, x_test: Tensor,
               domain: tuple[float, float] | None) -> tuple[float, float]:
    """The inputs' box: ``domain`` checked against the inputs, else the data's own (token ids:
    the ids the data holds)."""
    if x_train.is_floating_point():
        if domain is None:
            domain = data_box(x_train, x_test)
        else:
            check_box(domain, "the training and test inputs", x_train, x_test)
    elif domain is None:
        domain = (int(min(x_train.min(), x_test.min())), int(max(x_train.max(), x_test.max())))
    return float(domain[0]), float(domain[1])


def _plane_points(y_train: Tensor, seed: int) -> list[int]:
    """The partition plane's three training points: seeded, of distinct classes where the labels
    are classes (one integer each), else the first three of the seeded order."""
    order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(seed))
    labels = y_train.cpu()
    classes = labels.dim() == 1 and not labels.is_floating_point()
    chosen: list[int] = []
    for i in order.tolist() if classes else []:
        if int(labels[i]) not in {int(labels[j]) for j in chosen}:
            chosen.append(i)
        if len(chosen) == 3:
            break
    return chosen + [i for i in order.tolist() if i not in chosen][:3 - len(chosen)]
