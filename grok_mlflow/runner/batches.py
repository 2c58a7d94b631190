"""Minibatches for the training loops, drawn on the device (airbench style: no DataLoader in the
hot loop for data held as tensors).

``TensorBatches`` draws minibatches by index from tensors on the training device;
``StackedBatches`` does it for K stacked members at once, (K, B, ...); ``StreamedBatches`` decodes
a large dataset's minibatches in DataLoader worker processes. ``training_batches`` picks the one
a run needs. All have the same small interface: ``next()``, ``state_dict``/``load_state_dict``
(the position, for exact resume) and ``close``.

Example:
    data = load_dataset(Settings(train_size=500), torch.device("cpu"))
    x, y = next(training_batches(data, Settings(train_size=500)))   # (200, 1, 8, 8), (200,)
"""

from __future__ import annotations

import signal
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import Tensor

from ..settings import Settings
from .data import DataSplits, UnreadableImage, reraise_clean, workers_for

__all__ = ["StackedBatches", "StreamedBatches", "TensorBatches", "training_batches"]


class TensorBatches:
    """Minibatches of tensors that already live on the device, drawn by index (no host copy).

    Sampling without replacement: a fresh permutation each epoch from a seeded generator on the
    data's device; the last incomplete batch of an epoch is dropped. ``batch_size`` 0 or N: full
    batch, the tensors themselves every step (no permutation, no copy).

    Args:
        x: (N, ...) inputs.  y: (N,) labels.  batch_size: 0..N.  seed: the generator's seed.
        done: minibatches already drawn (a resumed run), with ``load_state_dict``.
    Example:
        batches = TensorBatches(x, y, batch_size=200, seed=0)
        xb, yb = next(batches)                                 # (200, ...), (200,)
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, seed: int, done: int = 0):
        self.full = batch_size in (0, len(x))
        self.batch_size = len(x) if self.full else batch_size
        self.x, self.y, self.done = x, y, done
        self.per_epoch = len(x) // self.batch_size                 # full batches per epoch
        self.generator = torch.Generator(device=x.device).manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long, device=x.device)

    def __iter__(self) -> "TensorBatches":
        return self

    def __next__(self) -> tuple[Tensor, Tensor]:
        if self.full:
            self.done += 1
            return self.x, self.y
        k = self.done % self.per_epoch
        if k == 0:
            self.order = torch.randperm(len(self.x), generator=self.generator,
                                        device=self.x.device)
        idx = self.order[k * self.batch_size:(k + 1) * self.batch_size]   # (B,) on the device
        self.done += 1
        return self.x[idx], self.y[idx]

    def state_dict(self) -> dict:
        return {"batches_rng": self.generator.get_state(), "order": self.order}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["batches_rng"])
        self.order = state["order"].to(self.x.device)

    def close(self) -> None:
        pass


class StackedBatches:
    """Minibatches for K stacked members (``stacking.StackedModules``): member k gets exactly the
    batches its own ``TensorBatches`` would give (its data, its seeded epoch permutations), and
    all K are gathered in one indexing operation per step.

    Members may differ in their data (seed, ``train_size``, ``random_labels``) but not in the
    batch size. A member's permutation is redrawn, from its own generator, when its epoch ends
    (members of different ``train_size`` end epochs at different steps).

    Args:
        members: K ``TensorBatches`` (fresh, or restored with ``load_state_dict``) with one batch
            size and the same number of batches drawn.
    Example:
        b = StackedBatches([TensorBatches(x_k, y_k, 200, seed=k) for k, (x_k, y_k) in ...])
        xb, yb = next(b)                                       # (K, 200, ...), (K, 200)
    """

    def __init__(self, members: list[TensorBatches]):
        sizes = {m.batch_size for m in members}
        if len(sizes) != 1:
            raise ValueError(f"stacked members need one batch size, got {sorted(sizes)}")
        if len({m.done for m in members}) != 1:
            raise ValueError("stacked members must have drawn the same number of batches")
        self.members, self.batch_size, self.done = members, sizes.pop(), members[0].done
        self.full = all(m.full for m in members)
        x0 = members[0].x
        self.n = np.array([len(m.x) for m in members])
        if self.full and len(set(self.n.tolist())) != 1:
            raise ValueError("full-batch members must have the same number of samples")
        n_max, k = int(self.n.max()), len(members)
        self.x = torch.zeros((k, n_max, *x0.shape[1:]), dtype=x0.dtype, device=x0.device)
        self.y = torch.zeros((k, n_max), dtype=members[0].y.dtype, device=x0.device)
        for i, m in enumerate(members):                      # (K, N_max, ...), zero-padded
            self.x[i, :len(m.x)], self.y[i, :len(m.y)] = m.x, m.y
        self.per_epoch = np.array([m.per_epoch for m in members])
        self.orders = torch.zeros((k, n_max), dtype=torch.long, device=x0.device)
        self.redraw = np.array([not m.full for m in members])   # full batch: x itself, in order
        for i, m in enumerate(members):
            if m.full:
                self.orders[i, :len(m.x)] = torch.arange(len(m.x), device=x0.device)
            elif len(m.order):
                self.orders[i, :len(m.order)] = m.order
        self._rows = torch.arange(k, device=x0.device)[:, None]             # (K, 1)
        self._within = torch.arange(self.batch_size, device=x0.device)      # (B,)

    def __iter__(self) -> "StackedBatches":
        return self

    def __next__(self) -> tuple[Tensor, Tensor]:
        self.done += 1
        if self.full:
            return self.x, self.y
        position = (self.done - 1) % self.per_epoch                  # (K,) batch within epoch
        for i in np.flatnonzero((position == 0) & self.redraw):      # those starting an epoch
            m = self.members[i]
            m.order = torch.randperm(len(m.x), generator=m.generator, device=m.x.device)
            self.orders[i, :len(m.order)] = m.order
        start = torch.as_tensor(position * self.batch_size, device=self.x.device)[:, None]
        idx = self.orders.gather(1, start + self._within)            # (K, B)
        return self.x[self._rows, idx], self.y[self._rows, idx]     # (K, B, ...), (K, B)

    def member_state_dict(self, k: int) -> dict:
        """Member k's state, as its own ``TensorBatches.state_dict()``."""
        return self.members[k].state_dict()

    def close(self) -> None:
        pass


class _EpochOrder(torch.utils.data.Sampler):
    """Batch indices for ever: epoch e is ``default_rng((seed, e)).permutation(n)`` cut into
    ``n // batch_size`` full batches, starting after ``done`` batches. The order is a function of
    (seed, batch number) alone, so a resumed run needs no sampler state."""

    def __init__(self, n: int, batch_size: int, seed: int, done: int):
        self.n, self.batch_size, self.seed, self.done = n, batch_size, seed, done

    def __iter__(self):
        per_epoch = self.n // self.batch_size
        epoch, start = divmod(self.done, per_epoch)
        while True:
            order = np.random.default_rng((self.seed, epoch)).permutation(self.n)
            for k in range(start, per_epoch):
                yield order[k * self.batch_size:(k + 1) * self.batch_size].tolist()
            epoch, start = epoch + 1, 0


def _ignore_ctrl_c(worker_id: int) -> None:
    """In a worker: ignore SIGINT. A terminal's Ctrl-C reaches the whole process group, and a
    worker dying of it would fail the main process inside ``next`` instead of letting the loop
    stop at a step boundary (``training._interrupt_at_step_boundary``); ``close`` stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class StreamedBatches:
    """Minibatches of a streamed dataset, decoded by DataLoader worker processes.

    Workers decode (B, C, H, W) uint8 batches ahead of the training loop (``prefetch_factor``
    4 each); on CUDA they arrive in pinned memory and are copied without blocking, then scaled
    to float32 [0, 1] on the device (uint8 over the bus: 4x less than float). The order of the
    batches (``_EpochOrder``) depends on (seed, batch number) only: a resumed run continues
    exactly where it stopped. Workers start at the first ``next`` and stop at ``close``.

    Args:
        dataset: ((C, H, W) uint8 image, label) items.  batch_size: 1..len(dataset).
        seed: the order's seed.  device: where batches go.
        workers: decoding processes (0: in the training process).
        done: minibatches already drawn (a resumed run).
    Example:
        with contextlib.closing(StreamedBatches(ds, 64, 0, torch.device("cuda"), 8)) as b:
            xb, yb = next(b)                          # (64, 3, 160, 160) float32, (64,)
    """

    def __init__(self, dataset: torch.utils.data.Dataset, batch_size: int, seed: int,
                 device: torch.device, workers: int, done: int = 0,
                 dtype: torch.dtype = torch.float32):
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.device, self.workers, self.done, self.dtype = device, workers, done, dtype
        self._batches: Iterator[tuple[Tensor, Tensor]] | None = None

    def __iter__(self) -> "StreamedBatches":
        return self

    def __next__(self) -> tuple[Tensor, Tensor]:
        if self._batches is None:
            order = _EpochOrder(len(self.dataset),  # type: ignore[arg-type]  # a map-style set
                                self.batch_size, self.seed, self.done)
            self._batches = iter(torch.utils.data.DataLoader(
                self.dataset, batch_sampler=order, num_workers=self.workers,
                pin_memory=self.device.type == "cuda", worker_init_fn=_ignore_ctrl_c,
                prefetch_factor=4 if self.workers else None))
        try:
            with reraise_clean():
                images, labels = next(self._batches)
        except UnreadableImage:
            self.close()
            raise
        self.done += 1
        x = images.to(self.device, non_blocking=True).to(self.dtype).div_(255.0)
        return x, labels.to(self.device, non_blocking=True)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        """Stop the worker processes (a later ``next`` starts new ones where this left off)."""
        self._batches = None   # the last reference: the iterator's finaliser joins its workers


def training_batches(data: DataSplits, settings: Settings,
                     done: int = 0) -> TensorBatches | StreamedBatches:
    """The training minibatches of ``data``: on-device indexing for tensors, worker decoding for
    a streamed dataset; ``settings`` gives ``batch_size``, ``seed`` and ``data_workers``."""
    if data.train_stream is not None:
        return StreamedBatches(data.train_stream, settings.batch_size, settings.seed,
                               data.x_train.device, workers_for(settings), done,
                               dtype=data.x_train.dtype)
    return TensorBatches(data.x_train, data.y_train, settings.batch_size, settings.seed, done)
