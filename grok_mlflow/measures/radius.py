"""Choosing LC's radius: LC and neighbourhood deformation over a range of radii (figs. 8, 9, 11).

A radius too small counts nothing; too large, the neighbourhood is bent by the layers before the
one whose hyperplanes are counted, and LC stops being local. ``radius_study`` measures, for one
network and a set of points, LC for several radii r and cross-polytope sizes P, and the
deformation of the neighbourhoods (``grok_mlflow.measures.deformation``) for every r; the recommendation
is the largest r that is still only scaled, not bent, through the last layer
(``deformation.recommend_radius``: every layer's mean relative eccentricity within
``tolerance`` of the smallest radius's).

Example:
    study = radius_study(net, x_train[:200], radii=[1e-3, 1e-2, 0.1, 1.0])
    study.recommended, study.table()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from .complexity import local_complexity
from .deformation import Deformation, deformation, recommend_radius

__all__ = ["DEFAULT_RADII", "RadiusStudy", "radius_study"]

DEFAULT_RADII = (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass(frozen=True)
class RadiusStudy:
    """LC and deformation of one network over radii.

    Attributes:
        radii: the radii, ascending.   directions: the P values LC was measured with.
        lc: (len(directions), len(radii)) float64 mean LC (summed over layers).
        deformation: {radius: Deformation} at P = ``directions[-1]``.
        recommended: the recommended radius.   tolerance: the one used.
    """

    radii: list[float]
    directions: list[int]
    lc: Tensor
    deformation: dict[float, Deformation]
    recommended: float | None
    tolerance: float

    def table(self) -> str:
        """Markdown: one row per radius: LC per P, relative eccentricity and diameter at the
        last layer, and which radius is recommended."""
        head = ["radius", *(f"LC (P={p})" for p in self.directions),
                "eccentricity, last layer", "diameter, last layer", ""]
        rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for j, r in enumerate(self.radii):
            d = self.deformation[r]
            ecc, dia = d.summary("eccentricity")[0][-1], d.summary("diameter")[0][-1]
            mark = "recommended" if r == self.recommended else ""
            rows.append("| " + " | ".join([f"{r:g}", *(f"{self.lc[i, j]:.3g}"
                                                      for i in range(len(self.directions))),
                                           f"{ecc:.4g}", f"{dia:.4g}", mark]) + " |")
        return "\n".join(rows) + "\n"


def radius_study(model: nn.Module, x: Tensor, *, radii: Sequence[float] = DEFAULT_RADII,
                 directions: Sequence[int] = (5, 10, 25), seed: int = 0,
                 input_module: str | None = None, tolerance: float = 0.1) -> RadiusStudy:
    """LC for every (P, r) and deformation for every r at the largest P; the recommendation.

    Args:
        model: the network (eval mode inside; its modes are restored).
        x: (N, *input_shape) points (token ids with ``input_module``).
        radii: radii in input units (> 0), at least two; sorted here.
        directions: P values for LC (each in [2, D]); deformation uses the largest.
        seed: seed of the directions (the same draw for LC and deformation at each P).
        tolerance: the relative change of deformation that still counts as "only scaled".
    """
    radii = sorted(float(r) for r in radii)
    directions = sorted(int(p) for p in directions)
    if len(radii) < 2:
        raise ValueError("radii: give at least two radii to compare")
    if not directions or directions[0] < 2:
        raise ValueError(f"directions: each P must be >= 2, got {directions}")
    lc = torch.zeros(len(directions), len(radii), dtype=torch.float64)
    for i, p in enumerate(directions):
        by_r = local_complexity(model, x, radius=radii, n_directions=p, seed=seed,
                                input_module=input_module)
        for j, r in enumerate(radii):
            lc[i, j] = by_r[r].mean().cpu()
    deform = deformation(model, x, radius=radii, n_directions=directions[-1], seed=seed,
                         input_module=input_module)
    return RadiusStudy(radii, directions, lc, deform,
                       recommend_radius(deform, tolerance), tolerance)
