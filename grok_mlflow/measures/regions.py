"""LC against exact region counts (paper fig. 26): is LC's hyperplane count a region density?

LC counts the neurons whose hyperplane cuts a small cross-polytope around x. The quantity it
stands in for is the number of linear regions of the network's partition near x. Here that
number is counted directly on a 2-D neighbourhood: the square of side 2r centred at x in the
plane of two seeded orthonormal directions, sampled on a ``resolution`` x ``resolution`` grid by
``partition.partition_slice`` (a region is one activation pattern; error: regions thinner than a
grid cell can be missed). ``rank_correlation`` compares the two over a run's checkpoints.

``regions_near_and_away`` is the paper's fig. 17 as numbers: region counts in equal squares
centred on points of the decision boundary (``boundary.boundary_points``) and on the training
points farthest from it (the largest top-two output gap), as many of each.

Example:
    local_region_count(net, x_train[:20], radius=0.05)        # (20,) int64
    regions_near_and_away(net, x_test[:40], x_test[40:80], x_train, radius=0.05, points=20)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from scipy.stats import spearmanr
from torch import Tensor, nn

from .boundary import boundary_points, top_two_gap
from .complexity import sample_directions
from .flags import evaluating
from .partition import partition_slice

__all__ = ["NearAndAway", "local_region_count", "rank_correlation", "regions_near_and_away"]


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


@dataclass(frozen=True)
class NearAndAway:
    """Region counts in equal squares: ``near`` (M,) centred on boundary points, ``away`` (M,)
    on the training points farthest from the boundary; ``near_gap`` and ``away_gap`` (M,) the
    top-two output gap at those centres (about 0 near, the largest of the candidates away)."""

    near: Tensor
    away: Tensor
    near_gap: Tensor
    away_gap: Tensor


def regions_near_and_away(model: nn.Module, a: Tensor, b: Tensor, candidates: Tensor, *,
                          radius: float, points: int, resolution: int = 64,
                          seed: int = 0) -> NearAndAway:
    """Paper fig. 17 as numbers: linear regions of ``model`` in 2-D squares of side 2
    ``radius`` centred on up to ``points`` boundary points (bisected between the pairs
    ``a[i]``, ``b[i]`` that the model classifies differently) and on as many of ``candidates``
    with the largest top-two output gap (the points farthest from the boundary in output
    space). Same directions (``seed``), size and grid for every square. ``model`` maps inputs
    to (n, classes) logits, classes >= 2."""
    found = boundary_points(model, a, b)
    near = found.points[:points]
    with evaluating(model), torch.no_grad():
        gap = top_two_gap(model(candidates))
    farthest = gap.argsort(descending=True)[:len(near)]
    count: dict[str, Any] = dict(radius=radius, resolution=resolution, seed=seed)
    return NearAndAway(local_region_count(model, near, **count),
                       local_region_count(model, candidates[farthest], **count),
                       found.margin[:points], gap[farthest])


def rank_correlation(a: Tensor, b: Tensor) -> float:
    """Spearman's rank correlation of two equally long series (``scipy.stats.spearmanr``:
    average ranks for ties; nan when either series is constant)."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("rank_correlation needs two series of the same length >= 2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # a constant series: nan, said by the caller
        return float(spearmanr(a.double().cpu().numpy(), b.double().cpu().numpy()).statistic)
