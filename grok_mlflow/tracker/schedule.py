"""When to measure: log-spaced steps (dense early, sparse late), as the paper's log-x figures;
``MeasureSchedule`` holds every measure's cadence (eval, PGD, deformation, partition).

Example:
    >>> log_schedule(1000, points=8)
    [0, 1, 3, 7, 19, 52, 139, 373, 1000]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = ["MeasureSchedule", "log_schedule"]


def log_schedule(steps: int, points: int, every: int = 0, *, include_init: bool = True) -> list[int]:
    """Sorted unique steps: ``points`` log-spaced in [1, steps], every ``every``-th step, the last.

    Args:
        steps: last step (>= 1).
        points: log-spaced points in [1, steps] (>= 1; duplicates after rounding merge, so early
            on there can be fewer).
        every: also every ``every`` steps (0 = off).
        include_init: add step 0 (the network at initialisation).
    """
    if steps < 1 or points < 1 or every < 0:
        raise ValueError(f"need steps >= 1, points >= 1, every >= 0; got {steps}, {points}, {every}")
    chosen = set(np.unique(np.round(np.geomspace(1, steps, points)).astype(int)).tolist())
    if every:
        chosen.update(range(every, steps + 1, every))
    chosen.add(steps)
    if include_init:
        chosen.add(0)
    return sorted(chosen)


@dataclass(frozen=True)
class MeasureSchedule:
    """When each measure runs, from the tracker settings: every cadence in one place.

    Attributes:
        eval_steps: accuracy, loss and LC (``log_schedule``: ``eval_points`` log-spaced steps,
            every ``eval_every``-th, step 0 and the last).
        adv_steps: PGD: ``adv_points`` log-spaced steps snapped to the nearest eval steps.
        deform_steps: the deformation, the same way with ``deform_points``.
        partition_steps: partition snapshots: every ``partition_every``-th eval step, and the
            last.

    Example:
        >>> from grok_mlflow.settings import TrackerSettings
        >>> s = MeasureSchedule.from_settings(TrackerSettings(steps=1000, eval_points=8,
        ...                                                    adv_points=3))
        >>> s.eval_steps, sorted(s.adv_steps)
        ((0, 1, 3, 7, 19, 52, 139, 373, 1000), [0, 1, 19, 1000])
    """

    eval_steps: tuple[int, ...]
    adv_steps: frozenset[int] = frozenset()
    deform_steps: frozenset[int] = frozenset()
    partition_steps: frozenset[int] = frozenset()

    @classmethod
    def from_settings(cls, settings, adversarial: bool = True) -> "MeasureSchedule":
        """The schedule of ``settings`` (a ``TrackerSettings``); ``adversarial`` False: no PGD
        (inputs that PGD cannot perturb)."""
        steps = tuple(log_schedule(settings.steps, settings.eval_points, settings.eval_every))

        def snapped(points: int) -> frozenset[int]:
            if not points:
                return frozenset()
            return frozenset(min(steps, key=lambda e: abs(e - t))
                             for t in log_schedule(settings.steps, points))

        every = settings.partition_every
        return cls(steps, snapped(settings.adv_points) if adversarial else frozenset(),
                   snapped(settings.deform_points),
                   frozenset(steps[::every]) | {steps[-1]} if every else frozenset())

    def without_adversarial(self) -> "MeasureSchedule":
        return dataclasses.replace(self, adv_steps=frozenset())

    def __post_init__(self) -> None:
        object.__setattr__(self, "_due", frozenset(self.eval_steps))   # a set lookup per step

    def due(self, step: int) -> bool:
        """Whether anything is measured at ``step``."""
        return step in self._due      # type: ignore[attr-defined]  # set in __post_init__

    def as_dict(self) -> dict[str, list[int]]:
        """The schedule as ``config.json`` records it."""
        return {"eval_steps": list(self.eval_steps), "adv_steps": sorted(self.adv_steps),
                "deform_steps": sorted(self.deform_steps)}
