"""What measuring costs a run: seconds by kind, a forecast after the first measurement, and the
totals logged at the end.

The kinds: ``measure`` (accuracy, loss and LC at every measured step; PGD included),
``pgd`` (the PGD part of it, at ``adv_points`` of them) and ``partition`` (the snapshots). On a
GPU each timing waits for the device (``torch.cuda.synchronize``), once per kind per
measurement: a measurement ends with a host transfer anyway.

After the first measurement (step 0) the tracker says, once on stderr and only when it comes to
a minute or more, about how long the schedule's measuring will take in all, and which settings
trade precision for time. At the end the run gets the metrics ``time/measure_s`` (PGD
included), ``time/pgd_s``, ``time/partition_s`` and ``time/run_s`` (the tracker's wall time
from its creation to the run's end), so runs compare in the MLflow UI by what measuring cost them.

Example:
    >>> costs = MeasureCosts()
    >>> with costs.timed("measure", torch.device("cpu")):
    ...     pass
    >>> costs.counts["measure"], sorted(costs.metrics())
    (1, ['time/measure_s', 'time/partition_s', 'time/pgd_s', 'time/run_s'])
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

import torch

from ..console import logger

__all__ = ["MeasureCosts", "device_sync"]

KINDS = ("measure", "pgd", "partition")


def device_sync(device: torch.device | None) -> Callable[[], None]:
    """What to call around a timed block so that it times the kernels: CUDA's
    ``synchronize`` on a CUDA device, else nothing."""
    return (torch.cuda.synchronize if device is not None and device.type == "cuda"
            else (lambda: None))


class MeasureCosts:
    """Seconds and counts of each kind of measurement (``KINDS``) over one run."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(KINDS, 0.0)
        self.counts = dict.fromkeys(KINDS, 0)
        self.started = time.monotonic()
        self.forecast_said = False

    @contextmanager
    def timed(self, kind: str, device: torch.device | None = None) -> Iterator[None]:
        """Add the time of the block to ``kind`` (waiting for a CUDA device on both ends)."""
        sync = device_sync(device)
        sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            sync()
            self.seconds[kind] += time.perf_counter() - start
            self.counts[kind] += 1

    def each(self, kind: str) -> float | None:
        """Mean seconds of one measurement of ``kind`` so far (``measure`` without its PGD)."""
        if not self.counts[kind]:
            return None
        if kind == "measure":
            return (self.seconds["measure"] - self.seconds["pgd"]) / self.counts["measure"]
        return self.seconds[kind] / self.counts[kind]

    def forecast(self, n_measure: int, n_pgd: int, n_partition: int,
                 at_least_s: float = 60.0) -> str | None:
        """One line: about how long the schedule's measuring takes in all, from the means so
        far; None below ``at_least_s`` or before the first measurement."""
        parts = [(n, self.each(kind), what) for n, kind, what in (
            (n_measure, "measure", "accuracy, loss and LC"), (n_pgd, "pgd", "PGD"),
            (n_partition, "partition", "partition snapshots")) if n]
        if not parts or parts[0][1] is None:
            return None
        timed = [(n, each, what) for n, each, what in parts if each is not None]
        total = sum(n * each for n, each, _ in timed)
        if total < at_least_s:
            return None
        said = ", ".join(f"{what} {n} x {each:.2g} s" for n, each, what in timed)
        later = [what for _, each, what in parts if each is None]
        return (f"grok-mlflow: measuring will take about {total / 60:.1f} min over the run "
                f"({said}" + (f"; {' and '.join(later)} not timed yet" if later else "")
                + "); lc_samples, adv_samples, eval_points, adv_points and "
                "partition_resolution trade precision for time")

    def say_forecast(self, schedule, main: bool = True) -> None:
        """After the first measurement, the forecast on stderr once (rank 0; when there is
        one: ``forecast``)."""
        if self.forecast_said:
            return
        self.forecast_said = True
        line = self.forecast(len(schedule.eval_steps), len(schedule.adv_steps),
                             len(schedule.partition_steps))
        if line and main:
            logger.info(line)

    def metrics(self) -> dict[str, float]:
        """The totals logged at the end of the run."""
        return {"time/measure_s": self.seconds["measure"], "time/pgd_s": self.seconds["pgd"],
                "time/partition_s": self.seconds["partition"],
                "time/run_s": time.monotonic() - self.started}
