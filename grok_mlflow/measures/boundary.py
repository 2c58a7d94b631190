"""Points on the decision boundary: where the paper says the linear regions migrate to (sec. 3,
figs. 1, 3, 17), so that local complexity can be measured there as around the data.

For each pair of inputs (a, b) that the model classifies differently, the segment from a to b is
bisected on "still a's class": the lower end always has a's predicted class, the upper end
another, so after ``iterations`` halvings the midpoint lies within 2^-iterations of the segment's
length from a point where a's class stops being the top output. There the top two outputs tie:
the mean top-two gap at the points (``margin``) says how close they are (a test asserts it is
orders of magnitude below the gap at the data). A pair whose ends get the same class has no
crossing to find and is left out (``pairs``: how many crossed). The same pairs at every step
follow the boundary as it moves. Pure: no MLflow, the model's modes and gradients untouched.

Example:
    found = boundary_points(model, a, b)        # a, b: (N, *input_shape), paired row by row
    found.points.shape, found.pairs, found.margin.mean()
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .flags import evaluating, full_float32

__all__ = ["BoundaryPoints", "boundary_points", "top_two_gap"]


@dataclass(frozen=True)
class BoundaryPoints:
    """``points``: (M, *input_shape) on the decision boundary, one per crossed pair;
    ``margin``: (M,) the top-two output gap there; ``pairs``: M, of ``offered`` pairs."""

    points: Tensor
    margin: Tensor
    pairs: int
    offered: int


def top_two_gap(logits: Tensor) -> Tensor:
    """The largest output minus the second largest, per row (0 on the boundary)."""
    top = torch.topk(logits, 2, dim=-1).values
    return top[..., 0] - top[..., 1]


@torch.no_grad()
def _predict(model: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    if not len(x):
        return model(x)
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def boundary_points(model: nn.Module, a: Tensor, b: Tensor, *, iterations: int = 30,
                    batch_size: int = 4096) -> BoundaryPoints:
    """Points where the model's predicted class changes on the segments from ``a[i]`` to
    ``b[i]`` (see the module docstring): bisection on the class of the segment's start,
    ``iterations`` halvings, in eval mode and plain float32 (or the model's float64)
    arithmetic. ``model`` maps (n, *input_shape) to (n, classes) logits, classes >= 2."""
    if a.shape != b.shape:
        raise ValueError(f"boundary pairs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    with evaluating(model), full_float32():
        start = _predict(model, a, batch_size).argmax(-1)
        crossed = start != _predict(model, b, batch_size).argmax(-1)
        a, b, start = a[crossed], b[crossed], start[crossed]
        shape = (-1,) + (1,) * (a.dim() - 1)
        low = torch.zeros(len(a), dtype=a.dtype, device=a.device)
        high = torch.ones_like(low)
        for _ in range(iterations if len(a) else 0):
            mid = (low + high) / 2
            x = a + mid.view(shape) * (b - a)
            same = _predict(model, x, batch_size).argmax(-1) == start
            low, high = torch.where(same, mid, low), torch.where(same, high, mid)
        points = a + ((low + high) / 2).view(shape) * (b - a)
        margin = (top_two_gap(_predict(model, points, batch_size)) if len(points)
                  else torch.zeros(0, dtype=a.dtype, device=a.device))
    return BoundaryPoints(points, margin, int(crossed.sum()), len(crossed))
