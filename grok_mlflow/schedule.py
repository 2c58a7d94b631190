"""When to measure: log-spaced steps (dense early, sparse late), as the paper's log-x figures.

Example:
    >>> log_schedule(1000, points=8)
    [0, 1, 3, 7, 19, 52, 139, 373, 1000]
"""

from __future__ import annotations

import numpy as np

__all__ = ["log_schedule"]


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
