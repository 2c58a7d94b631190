"""Measuring under ``torch.distributed``: who measures which points, and how the values meet.

``Shards.current()`` describes this process in its process group (rank, world size; one process
without a group). The tracker splits each LC probe set and each accuracy set into ``size``
contiguous shards, measures its own (``part``), and puts the per-point results back together on
every rank in rank order (``gather_rows``, ``sum``), so the values equal a single process's on
the same weights: LC's per-point counts are the same integers in the same order; accuracy is an
integer count; only the loss's float sum is added in another order. One process: every method is
the identity, and nothing is communicated.

Example:
    shards = Shards.current()                  # rank 1 of 2
    mine = shards.part(points)                 # rows [N/2, N) of points
    everything = shards.gather_rows(per_point(mine))
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

__all__ = ["Shards", "Terminated", "Termination", "unwrap"]


@dataclass(frozen=True)
class Shards:
    """This process's place in the measurement: rank ``rank`` of ``size`` (``size`` 1: alone)."""

    rank: int = 0
    size: int = 1

    @classmethod
    def current(cls) -> "Shards":
        """The default process group's rank and size, or (0, 1) without one."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def main(self) -> bool:
        """Whether this process writes (rank 0)."""
        return self.rank == 0

    def part(self, x: Tensor) -> Tensor:
        """This rank's contiguous share of ``x``'s rows (shares differ in length by at most 1;
        a rank past N gets none)."""
        return x if self.size == 1 else torch.tensor_split(x, self.size)[self.rank]

    def gather_rows(self, x: Tensor) -> Tensor:
        """Every rank's ``x`` (their ``part``s' results), concatenated in rank order, on every
        rank, on ``x``'s device."""
        if self.size == 1:
            return x

        parts: list = [None] * self.size
        dist.all_gather_object(parts, x.cpu())
        return torch.cat([p for p in parts if p.numel()] or [x.cpu()]).to(x.device)

    def sum(self, x: Tensor) -> Tensor:
        """A 0-dim ``x`` summed over the ranks in rank order (float64, on ``x``'s device; the
        same order on every rank, so every rank gets the same value)."""
        if self.size == 1:
            return x

        parts: list = [None] * self.size
        dist.all_gather_object(parts, float(x))
        return torch.tensor(sum(parts), dtype=torch.float64, device=x.device)


def unwrap(model: nn.Module) -> nn.Module:
    """The module a ``DistributedDataParallel`` (or ``DataParallel``) wrapper holds, else
    ``model``: the tracker measures the replica, not the wrapper."""
    return model.module if isinstance(model, (DistributedDataParallel, DataParallel)) else model


class Terminated(KeyboardInterrupt):
    """SIGTERM under ``torch.distributed`` (the launcher stopping this rank): the run ends KILLED,
    its points written, and tagged ``grok_mlflow.failure`` (a Ctrl-C is not)."""


class Termination:
    """Under ``torch.distributed``: the launcher (torchrun) stops the other ranks with SIGTERM when
    one dies. While training, SIGTERM raises ``KeyboardInterrupt`` (the run ends KILLED, its
    points written); while the run is being ended it is held until that is done, then delivered.
    Installed only in the main thread; the previous handler is put back."""

    def __init__(self) -> None:
        self.previous, self.pending = None, False
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._interrupt)

    def _interrupt(self, signum, frame) -> None:
        raise Terminated("terminated (SIGTERM): the launcher stops every rank when one dies")

    def _hold(self, signum, frame) -> None:
        self.pending = True

    def defer(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self._hold)

    def restore(self) -> None:
        if self.previous is None:
            return
        signal.signal(signal.SIGTERM, self.previous)
        if self.pending:
            signal.raise_signal(signal.SIGTERM)
