"""LC against exact region counts (paper fig. 26): is LC's hyperplane count a region density?

LC counts the neurons whose hyperplane cuts a small cross-polytope around x. The quantity it
stands in for is the number of linear regions of the network's partition near x. Here that
number is counted directly on a 2-D neighbourhood: the square of side 2r centred at x in the
plane of two seeded orthonormal directions, sampled on a ``resolution`` x ``resolution`` grid by
``partition.partition_slice`` (a region is one activation pattern; error: regions thinner than a
grid cell can be missed). ``rank_correlation`` compares the two over a run's checkpoints.

Example:
    local_region_count(net, x_train[:20], radius=0.05)        # (20,) int64
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .complexity import sample_directions
from .partition import partition_slice

__all__ = ["local_region_count", "rank_correlation"]


def local_region_count(model: nn.Module, x: Tensor, *, radius: float, resolution: int = 64,
                       seed: int = 0) -> Tensor:
    """Linear regions of ``model`` in the 2-D square of side 2 ``radius`` centred at each point.

    Args:
        model: a network whose nonlinearities are modules (as for ``local_complexity``).
        x: (N, *input_shape) points in input units (continuous inputs).
        radius: half the square's side, in input units (> 0).
        resolution: grid points per side (>= 2).
        seed: seed of the two directions spanning the square (shared by all points).
    Returns:
        (N,) int64 region counts.
    """
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    dim = math.prod(x.shape[1:])
    u, v = sample_directions(dim, 2, seed=seed, dtype=x.dtype).to(x.device).view(2, *x.shape[1:])
    counts = []
    for point in x:
        corner = point - radius * u - radius * v
        plane = torch.stack([corner, corner + 2 * radius * u, corner + 2 * radius * v])
        counts.append(partition_slice(model, plane, resolution=resolution, margin=0.0,
                                      slope=False, seed=seed).regions)
    return torch.tensor(counts, dtype=torch.long)


def rank_correlation(a: Tensor, b: Tensor) -> float:
    """Spearman's rank correlation of two equally long series (average ranks for ties)."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("rank_correlation needs two series of the same length >= 2")

    def ranks(t: Tensor) -> Tensor:
        t = t.double()
        order = t.argsort()
        r = torch.empty_like(t)
        r[order] = torch.arange(len(t), dtype=torch.float64)
        for value in t.unique():                      # ties share their average rank
            same = t == value
            r[same] = r[same].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = (ra.norm() * rb.norm()).item()
    return float((ra @ rb).item() / denom) if denom else float("nan")
