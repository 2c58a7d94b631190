"""How much a network deforms LC's neighbourhoods (paper app. A, figs. 8, 11, 13).

LC counts the hyperplanes of layer l that cut the neighbourhood *as embedded at that layer's
input*: the cross-polytope {x +- r v_p} after layers 1..l-1. When those layers bend it, the count
is no longer about a small ball around x. The paper measures the bending with graph statistics
of the embedded vertices:

- the graph: the 2P vertices, every pair joined except the P antipodal pairs
  (x + r v_p, x - r v_p), each edge weighted by the Euclidean distance between the two
  embedded vertices;
- a vertex's eccentricity: its largest shortest-path distance to another vertex; the graph's
  average eccentricity, and its diameter (the largest eccentricity).

Layers. Layer 0 is the input space (or the output of ``input_module``, as for LC); layer i >= 1
is the output of the i-th nonlinearity call, the space the next layer's hyperplanes live in (the
same layers, named the same way, as ``local_complexity``'s). ``relative()`` divides each point's
statistics by its layer-0 value (in the input space both equal 2 sqrt(2) r for P >= 2), so an
affine layer that scales every distance by c reads c: a change of *scale* reads as a constant in
r, a change of *shape* as a dependence on r (see ``recommend_radius``).

Shortest paths. Edge weights are Euclidean distances, so the direct edge is a shortest path
between joined vertices (triangle inequality), and an antipodal pair's is the best 2-hop path
min_k d(i, k) + d(k, j): exact, and O(P^2) per vertex instead of Floyd-Warshall's O(P^3) (the
tests compare with a plain all-pairs shortest path).

Example:
    d = deformation(net, x_train[:100], radius=0.05, n_directions=25)
    d.relative("eccentricity").mean(0)          # (L + 1,): 1.0 at layer 0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, overload

import torch
from torch import Tensor, nn

from .complexity import mean_confidence_interval, sample_directions
from .flags import evaluating, full_float32
from .network import NonlinearityHooks, check_radii, default_max_vertices, prepare_input

__all__ = ["Deformation", "deformation", "graph_statistics", "recommend_radius"]


@dataclass(frozen=True)
class Deformation:
    """Per-point, per-layer graph statistics of the embedded neighbourhoods at one radius.

    Attributes:
        eccentricity: (N, L + 1) float64: average eccentricity of point n's neighbourhood graph
            at layer l (0 = the input).
        diameter: (N, L + 1) float64: its diameter.
        layer_names: L names of the nonlinearity calls (as ``LocalComplexity.layer_names``).
        radius: r.   n_directions: P.
    """

    eccentricity: Tensor
    diameter: Tensor
    layer_names: list[str]
    radius: float
    n_directions: int

    def relative(self, statistic: str = "eccentricity") -> Tensor:
        """(N, L + 1): each point's ``statistic`` divided by its layer-0 value."""
        values = getattr(self, statistic)
        return values / values[:, :1]

    def summary(self, statistic: str = "eccentricity", level: float = 0.99
                ) -> tuple[Tensor, Tensor, Tensor]:
        """(mean, ci_low, ci_high), each (L + 1,): ``relative(statistic)`` over points."""
        rel = self.relative(statistic)
        low, high = mean_confidence_interval(rel, level)
        return rel.mean(0), low, high


def graph_statistics(vertices: Tensor) -> tuple[Tensor, Tensor]:
    """Average eccentricity and diameter of cross-polytope graphs.

    Args:
        vertices: (B, 2P, D) embedded vertices, ordered as (x + r v_1..v_P, x - r v_1..v_P): vertex
            i and i + P are antipodal (not joined). P >= 2.
    Returns:
        ((B,), (B,)) float64: average eccentricity and diameter.
    """
    b, n, _ = vertices.shape
    p = n // 2
    if n != 2 * p or p < 2:
        raise ValueError(f"vertices must be (B, 2P, D) with P >= 2, got {tuple(vertices.shape)}")
    dist = torch.cdist(vertices.double(), vertices.double())              # (B, 2P, 2P)
    idx = torch.arange(n, device=vertices.device)
    anti = (idx + p) % n                                                   # each vertex's antipode
    # shortest i -> anti(i): via any third vertex k (k != i, anti(i)), 2 hops
    via = dist + dist[:, anti, :]             # via[b, i, k] = d(i, k) + d(anti(i), k)
    blocked = torch.zeros(n, n, dtype=torch.bool, device=vertices.device)
    blocked[idx, idx] = True
    blocked[idx, anti] = True
    two_hop = via.masked_fill(blocked, math.inf).amin(dim=2)               # (B, 2P)
    shortest = dist.clone()
    shortest[:, idx, anti] = two_hop
    ecc = shortest.amax(dim=2)                                             # (B, 2P)
    return ecc.mean(dim=1), ecc.amax(dim=1)


class _Outputs(NonlinearityHooks):
    """The output of every nonlinearity call, flattened per row, in call order."""

    on_output = True

    def _hook(self, module: nn.Module, args: tuple) -> None:
        self.values.append(args[0].flatten(1))
        self.modules.append(module)

    def take_all(self) -> list[Tensor]:
        """The (rows, width_l) outputs of the forward just run (widths differ: not stacked)."""
        values, self.values = self.values, []
        self.last_modules, self.modules = self.modules, []
        return values


@overload
def deformation(model: nn.Module, x: Tensor, *, radius: float,
                n_directions: int = ..., directions: Tensor | None = ..., seed: int = ...,
                input_module: str | None = ..., max_batch_vertices: int | None = ...) -> Deformation: ...


@overload
def deformation(model: nn.Module, x: Tensor, *, radius: Sequence[float],
                n_directions: int = ..., directions: Tensor | None = ..., seed: int = ...,
                input_module: str | None = ..., max_batch_vertices: int | None = ...
                ) -> dict[float, Deformation]: ...


def deformation(model: nn.Module, x: Tensor, *, radius: float | Sequence[float],
                n_directions: int = 25, directions: Tensor | None = None, seed: int = 0,
                input_module: str | None = None, max_batch_vertices: int | None = None,
                ) -> Deformation | dict[float, Deformation]:
    """Graph deformation of each point's cross-polytope, layer by layer (paper figs. 8, 11, 13).

    Args:
        model: any ``nn.Module`` whose nonlinearities are modules; runs in eval mode, no
            gradients, plain float32 (or its dtype); its modes are restored.
        x: (N, *input_shape) points in the model's input units (token ids with
            ``input_module``).
        radius: r > 0 (or several), in input units, as for ``local_complexity``.
        n_directions: P >= 2 (the graph needs two directions).
        directions: optional (P, D) directions shared by all points (default: drawn with
            ``seed`` exactly as ``local_complexity`` draws them, so both see the same vertices).
        input_module: for token inputs, the module whose output is the input space.
        max_batch_vertices: vertices per forward chunk (default from free memory).
    Returns:
        ``Deformation`` for one radius, ``{radius: Deformation}`` for a sequence.

    Example:
        d = deformation(net, x[:200], radius=[0.005, 0.05])
        {r: v.summary()[0][-1] for r, v in d.items()}     # last layer, relative eccentricity
    """
    radii = check_radii(radius)
    run, x = prepare_input(model, x, input_module)                 # (N, *S_in) or (N, *E)
    device, dtype = x.device, x.dtype
    with evaluating(model), torch.no_grad(), full_float32():
        n_points, input_shape = x.shape[0], x.shape[1:]
        dim = math.prod(input_shape)
        if directions is None:
            if not 2 <= n_directions <= dim:
                raise ValueError(f"n_directions must be in [2, input dimension {dim}], "
                                 f"got {n_directions}")
            directions = sample_directions(dim, n_directions, seed=seed)
        if directions.dim() != 2 or directions.shape[1] != dim or directions.shape[0] < 2:
            raise ValueError(f"directions must be (P >= 2, {dim}), got {tuple(directions.shape)}")
        directions = directions.to(device=device, dtype=dtype)
        n_dir = directions.shape[0]
        signed = torch.cat([directions, -directions])                        # (2P, D)
        hooks = _Outputs(model)
        try:
            run(x[:1])
            widths = [v.shape[1] for v in hooks.take_all()]
            layer_names = hooks.layer_names()
            if not layer_names:
                raise ValueError(f"{type(model).__name__} has no recognised nonlinearity module")
            if max_batch_vertices is None:
                max_batch_vertices = default_max_vertices(
                    device, 4 * max(dim, *widths) * x.element_size())
            chunk = max(1, max_batch_vertices // (2 * n_dir))
            out: dict[float, tuple[list, list]] = {r: ([], []) for r in radii}
            for start in range(0, n_points, chunk):
                xb = x[start:start + chunk].reshape(-1, 1, dim)               # (B, 1, D)
                for r in radii:
                    vertices = xb + r * signed                                # (B, 2P, D)
                    run(vertices.view(-1, *input_shape))
                    layers = [vertices] + [v.view(len(xb), 2 * n_dir, -1)
                                           for v in hooks.take_all()]
                    stats = [graph_statistics(v) for v in layers]             # L + 1 pairs
                    out[r][0].append(torch.stack([s[0] for s in stats], dim=1))
                    out[r][1].append(torch.stack([s[1] for s in stats], dim=1))
        finally:
            hooks.remove()
    result = {r: Deformation(torch.cat(e), torch.cat(d), layer_names, r, n_dir)
              for r, (e, d) in out.items()}
    return result if isinstance(radius, Sequence) else result[radii[0]]


def recommend_radius(by_radius: dict[float, Deformation], tolerance: float = 0.1,
                     statistic: str = "eccentricity") -> float | None:
    """The largest radius whose neighbourhoods are still only scaled, not bent, in every layer.

    The smallest radius is the reference (a network is affine on small enough neighbourhoods,
    and an affine layer changes every radius's relative deformation by the same factor). A
    radius passes when, at every layer, its mean relative ``statistic`` is within ``tolerance``
    (a fraction, default 10%) of the reference's. Radii are tried from small to large; the
    first failure stops the search. Returns the reference when no larger radius passes, None
    for an empty ``by_radius``.
    """
    if not by_radius:
        return None
    radii = sorted(by_radius)
    reference = by_radius[radii[0]].summary(statistic)[0]
    best = radii[0]
    for r in radii[1:]:
        mean = by_radius[r].summary(statistic)[0]
        if not bool(((mean - reference).abs() <= tolerance * reference.abs()).all()):
            break
        best = r
    return best
