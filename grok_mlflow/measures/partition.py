"""The input-space partition on a 2-D slice through three points (paper figs. 1, 3, 15-17).

A ReLU-type network is affine on each region of its input-space partition; a region is a set of
inputs sharing one activation pattern (the sign of every pre-activation of every layer). The paper
draws these regions exactly with SplineCam on a plane through three training points; here the
plane is sampled on a dense grid and the pattern of every grid point is compared with its
neighbours'. That is an approximation whose error is one grid cell: a boundary is found within one
cell of the true one, and regions thinner than a cell can be missed (``tests/test_partition.py``
checks both against the exact line arrangement of a one-hidden-layer network).

The plane. With points p0, p1, p2 (in the model's input units) the slice is
``x(a, b) = p0 + a (p1 - p0) + b (p2 - p0)`` for (a, b) in ``[-margin, 1 + margin]^2``, so the
points always sit at (0, 0), (1, 0), (0, 1) whatever their distances. Pixel (i, j) of a
resolution-R slice is (a_j, b_i) with a_j = -margin + j (1 + 2 margin) / (R - 1), b likewise.

Choices where the paper is silent (each an argument):
- A neuron's sign is ``pre > 0`` at the input of every nonlinearity module (as in
  ``grok_mlflow.measures.complexity``); for GeLU/SiLU that is the sign of the input to the nonlinearity.
- A region is one activation pattern. For piecewise-linear activations (ReLU, leaky ReLU) the
  inputs of one pattern form a convex polytope (every pre-activation is affine given the
  pattern), so its slice is one convex piece: counting distinct patterns counts regions, and
  never splits a sliver thinner than a cell that the grid only touches diagonally (counting
  4-connected pixel components did: 85 pieces for 46 exact regions in one test network). For
  smooth activations (GeLU) regions are defined by the same signs but need not be convex.
- Patterns are compared through a per-layer hash: a random 36-bit integer weight per neuron,
  summed over the active ones. The weights are split into 12-bit digits (fewer bits for layers
  over 4,096 neurons) so that each digit's sum is an exact float32 matmul (every partial sum is an
  integer below 2^24), then the digits are joined in float64: equal patterns always give equal
  hashes, and two different patterns collide with probability ~2^-36 per neighbour pair, about
  4e-6 per 512x512 slice. (The float32 matmul costs half the float64 one's memory traffic: the
  hash is ~1/3 of a slice's time.) A region is labelled by the sum of its layers' hashes, itself
  such a hash over all neurons; it is exact in float64 up to ~131,000 neurons in all, and beyond
  that still equal for equal patterns (the same sums in the same order).
- "Near the decision boundary" / "near the points" (paper fig. 17 counts regions in both
  places): regions with a pixel within ``near`` (in plane units, where p0 -> p1 has length 1) of
  a decision-boundary pixel (a square neighbourhood) or of one of the three points (a disc).
- The slope shown is the norm of the network's Jacobian restricted to the plane, in logits per
  input unit (the paper colours by ||A_w||, the full input-space slope, which needs D times more
  work): finite differences of the logits between neighbouring pixels, exact inside a region.

Example:
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 50), nn.ReLU(), nn.Linear(50, 10))
    >>> s = partition_slice(net, torch.rand(3, 1, 8, 8), resolution=128)
    >>> s.regions >= 1, s.boundary.shape
    (True, torch.Size([128, 128]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .flags import evaluating, full_float32
from .network import (
    NonlinearityHooks,
    Plan,
    default_max_vertices,
    has_nonlinearity,
    plan_for,
    prepare_input,
    widest_activation,
)

__all__ = ["PartitionSlice", "partition_slice", "plane_grid", "count_regions"]

# Per-neuron hash weights are integers below 2^36, written as digits of at most 12 bits.
_HASH_BITS = 36


def _hash_digits(width: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Random hash weights for a layer of ``width`` neurons as float32 digits (width, D) whose
    column sums over any subset stay below 2^24 (exact in float32), and the (D,) float64 place
    values that join them. Digit bits b: ``width * (2^b - 1) < 2^24``."""
    bits = min(12, 24 - width.bit_length())
    if bits < 1:
        raise ValueError(f"a layer of {width} neurons is too wide for the partition's hash")
    n_digits = -(-_HASH_BITS // bits)
    w = torch.randint(0, 2 ** _HASH_BITS, (width,), generator=gen)                # (M,) int64
    shifts = torch.arange(n_digits) * bits                                        # (D,)
    digits = (w.unsqueeze(1) >> shifts) & (2 ** bits - 1)                        # (M, D)
    return digits.to(torch.float32), (2.0 ** shifts).to(torch.float64)


@dataclass
class PartitionSlice:
    """The partition of a model on a plane through three points, sampled on an R x R grid.

    Row i of every (R, R) map is b_i, column j is a_j (see the module docstring); ``extent`` is
    (a_min, a_max, b_min, b_max) for ``imshow(..., origin="lower", extent=extent)``.
    """
    region: Tensor          # (R, R) int64: region (activation pattern) id, 0..regions-1
    boundary: Tensor        # (R, R) int64: 0, or the 1-based first layer whose pattern changes
    #                         between this pixel and its right or upper neighbour
    decision: Tensor        # (R, R) bool: the argmax differs from the right or upper neighbour's
    prediction: Tensor      # (R, R) int64: argmax class of each pixel
    slope: Tensor | None    # (R, R) float: ||Jacobian restricted to the plane|| (logits/input)
    extent: tuple[float, float, float, float]
    point_coords: Tensor    # (3, 2): (a, b) of the three points: (0,0), (1,0), (0,1)
    regions: int            # distinct activation patterns in the slice
    regions_near_boundary: int
    regions_near_points: int
    layer_names: list[str]

    def metrics(self) -> dict[str, float]:
        """``partition/*`` metric values (what the tracker logs)."""
        return {"partition/regions": float(self.regions),
                "partition/regions_near_boundary": float(self.regions_near_boundary),
                "partition/regions_near_points": float(self.regions_near_points)}


def plane_grid(points: Tensor, resolution: int, margin: float) -> tuple[Tensor, Tensor, Tensor]:
    """Plane coordinates of an R x R grid and the plane's origin and spanning vectors.

    Returns:
        ab: (R*R, 2) (a, b) of every pixel, row-major with b over rows, a over columns.
        origin: (D,) = p0 flattened;  span: (2, D) = (p1 - p0, p2 - p0) flattened.
    """
    flat = points.reshape(3, -1)
    origin, span = flat[0], flat[1:] - flat[:1]                              # (D,), (2, D)
    axis = torch.linspace(-margin, 1 + margin, resolution, dtype=points.dtype,
                          device=points.device)
    b, a = torch.meshgrid(axis, axis, indexing="ij")                         # (R, R) each
    return torch.stack([a.reshape(-1), b.reshape(-1)], dim=1), origin, span


class _PatternHasher(NonlinearityHooks):
    """Per nonlinearity call, a float64 hash of each row's signs."""

    def __init__(self, model: nn.Module, seed: int):
        super().__init__(model)
        self.gen = torch.Generator().manual_seed(seed)
        self.weights: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}   # -> (D, M), (D,)

    def _hook(self, module: nn.Module, args: tuple) -> None:
        pre = args[0].reshape(args[0].shape[0], -1)                              # (B, M)
        # the comparison written straight into float32 (4x faster than bool, then float32)
        active = torch.gt(pre, 0, out=torch.empty(pre.shape, device=pre.device))  # (B, M) 0/1
        key = (len(self.values), active.shape[1])
        if key not in self.weights:
            digits, places = _hash_digits(active.shape[1], self.gen)
            self.weights[key] = digits.T.contiguous().to(pre.device), places.to(pre.device)
        digits_t, places = self.weights[key]                                    # (D, M), (D,)
        # (D, M) @ (M, B): the same exact sums, ~1.5x faster than the skinny (B, M) @ (M, D)
        sums = digits_t @ active.T                               # (D, B) exact integers < 2^24
        self.values.append(places @ sums.to(torch.float64))                     # (B,)
        self.modules.append(module)


def count_regions(codes: Tensor) -> tuple[Tensor, int]:
    """Label every pixel by its activation pattern: (labels (R, C) int64, number of patterns).

    Args:
        codes: (R, C, L) per-pixel, per-layer pattern hashes (``_PatternHasher``'s). Their sum
            over the layers is itself such a hash over every neuron (each with its own random
            weight: the same collision bound), so one sort labels the whole pattern, not 2L - 1.
    """
    _, labels = torch.unique(codes.sum(-1).reshape(-1), return_inverse=True)
    return labels.view(codes.shape[:2]), int(labels.max()) + 1


def _dilate(mask: Tensor, reach: int) -> Tensor:
    """(R, C) bool -> pixels with a True pixel within ``reach`` pixels in each direction (a square).

    A box sum from an integral image: O(R*C) whatever ``reach`` (max_pool2d is O(reach^2) per
    pixel: 5 s for a 1024x1024 slice on the CPU).
    """
    padded = F.pad(mask.to(torch.int32), (reach + 1, reach, reach + 1, reach))   # (R+2k+1, ...)
    integral = padded.cumsum(0).cumsum(1)
    k = 2 * reach + 1
    window = (integral[k:, k:] - integral[:-k, k:] - integral[k:, :-k] + integral[:-k, :-k])
    return window > 0


def _changes(values: Tensor) -> Tensor:
    """(R, C, ...) -> (R, C) bool: the value differs from the right or upper neighbour's."""
    diff = torch.zeros(values.shape[:2], dtype=torch.bool, device=values.device)
    right = values[:, 1:] != values[:, :-1]
    up = values[1:] != values[:-1]
    if values.dim() > 2:
        right, up = right.flatten(2).any(-1), up.flatten(2).any(-1)
    diff[:, :-1] |= right
    diff[:-1] |= up
    return diff


def _slope_norm(logits: Tensor, span: Tensor, cell: float) -> Tensor:
    """The norm of the Jacobian restricted to the plane, per pixel: J = A [u v] (C x 2) from
    finite differences along a and b; in input units it is J R^-1 with [u v] = Q R, whose
    Frobenius norm is returned.                                                      (R, R)"""
    d_a = torch.zeros_like(logits)                                             # (R, R, C)
    d_b = torch.zeros_like(logits)
    d_a[:, :-1] = (logits[:, 1:] - logits[:, :-1]) / cell
    d_a[:, -1] = d_a[:, -2]
    d_b[:-1] = (logits[1:] - logits[:-1]) / cell
    d_b[-1] = d_b[-2]
    _, r = torch.linalg.qr(span.double().T)                                     # (2, 2)
    r_inv = torch.linalg.inv(r).float()
    jac = torch.stack([d_a, d_b], dim=-1) @ r_inv                               # (R, R, C, 2)
    return jac.flatten(2).norm(dim=-1)


def partition_slice(model: nn.Module, points: Tensor, *, resolution: int = 512,
                    margin: float = 0.5, near: float = 0.1, slope: bool = True, seed: int = 0,
                    max_batch_points: int | None = None,
                    input_module: str | None = None) -> PartitionSlice:
    """Activation regions and decision boundary of ``model`` on the plane through three points.

    Args:
        model: a classifier whose nonlinearities are modules (as for ``local_complexity``); run in
            eval mode (restored afterwards), plain float32, no gradients.
        points: (3, *input_shape) in the model's input units; they must not be collinear.
        resolution: R >= 2, pixels per side (R*R forward rows). Default 512 as in the issue.
        margin: >= 0, how far the square extends beyond the points' triangle, in plane units.
        near: > 0, neighbourhood size in plane units for ``regions_near_boundary`` and
            ``regions_near_points`` (see the module docstring).
        slope: also return the norm of the Jacobian restricted to the plane (costs the logits'
            memory, (R, R, classes) floats).
        seed: seed of the pattern-hash weights (results do not depend on it barring collisions).
        max_batch_points: grid rows per forward chunk; default from free memory as for LC.
        input_module: for token inputs, the module whose output is the input space (as for
            ``local_complexity``): the plane goes through the three points' embeddings there.

    Returns:
        ``PartitionSlice`` (maps on the model's device).

    Example:
        s = partition_slice(model, x_train[:3], resolution=256)
        s.regions, s.regions_near_boundary
    """
    if not isinstance(points, Tensor) or points.dim() < 2 or points.shape[0] != 3:
        raise ValueError("points must be a (3, *input_shape) tensor, got "
                         f"{tuple(points.shape) if isinstance(points, Tensor) else type(points)}")
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}")
    if margin < 0 or near <= 0:
        raise ValueError(f"margin must be >= 0 and near > 0, got {margin}, {near}")
    if not has_nonlinearity(model):
        raise ValueError(f"{type(model).__name__} has no recognised nonlinearity module")
    run, points = prepare_input(model, points, input_module, "points")   # (3, *S_in) or (3, *E)
    device, input_shape = points.device, points.shape[1:]
    ab, origin, span = plane_grid(points, resolution, margin)                   # (R*R, 2) ...
    if torch.linalg.matrix_rank(span.double()) < 2:
        raise ValueError("the three points are collinear: they do not span a plane")

    hasher = _PatternHasher(model, seed)
    try:
        with evaluating(model), torch.no_grad(), full_float32():
            plan = plan_for(model) if run is model else Plan(head=None, body=run)
            # The first layer is affine in the input: its pre-activations on the plane are
            # g(p0) + a (g(p1) - g(p0)) + b (g(p2) - g(p0)), so the (R*R, D) inputs never exist.
            if plan.head is not None:
                g = plan.head(points)                                           # (3, *S_1)
                g0, g_span = g[:1], torch.stack([g[1] - g[0], g[2] - g[0]])    # (1|2, *S_1)
            else:
                g0, g_span = origin.view(1, *input_shape), span.view(2, *input_shape)
            widest = widest_activation(model, points[:1], run)
            hasher.take()
            if max_batch_points is None:
                max_batch_points = default_max_vertices(
                    device, 4 * max(widest, math.prod(input_shape)) * points.element_size())
            code_rows: list[Tensor] = []
            logit_rows: list[Tensor] = []
            for start in range(0, len(ab), max(1, max_batch_points)):
                chunk = ab[start:start + max_batch_points]                      # (B, 2)
                rows = torch.addmm(g0.flatten(1), chunk, g_span.flatten(1)      # g0 + a u + b v
                                   ).view(-1, *g0.shape[1:])                    # (B, *S_1)
                out = plan.body(rows)                                           # (B, classes)
                code_rows.append(hasher.take())                                 # (B, L)
                logit_rows.append(out.float())
            layer_names = hasher.layer_names()
    finally:
        hasher.remove()

    R = resolution
    codes = torch.cat(code_rows).view(R, R, -1)                                 # (R, R, L)
    logits = torch.cat(logit_rows).view(R, R, -1)                               # (R, R, C)
    region, n_regions = count_regions(codes)
    # first layer whose pattern changes towards the right or upper neighbour (0 = none)
    boundary = torch.zeros(R, R, dtype=torch.long, device=device)
    for layer in reversed(range(codes.shape[-1])):
        boundary[_changes(codes[..., layer])] = layer + 1
    prediction = logits.argmax(-1)
    decision = _changes(prediction)

    cell = (1 + 2 * margin) / (R - 1)
    reach = int(math.ceil(near / cell))
    near_boundary = _dilate(decision, reach)
    coords = ab.view(R, R, 2)
    point_coords = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], device=device)
    near_points = (torch.cdist(coords.reshape(-1, 2).float(), point_coords).amin(1) <= near
                   ).view(R, R)

    return PartitionSlice(
        region=region, boundary=boundary, decision=decision, prediction=prediction,
        slope=_slope_norm(logits, span, cell) if slope else None,
        extent=(-margin, 1 + margin, -margin, 1 + margin),
        point_coords=point_coords.cpu(), regions=n_regions,
        regions_near_boundary=int(region[near_boundary].unique().numel()),
        regions_near_points=int(region[near_points].unique().numel()),
        layer_names=layer_names)


SNAPSHOT_OVERHEAD = 1.7    # a snapshot / a bare forward over its plane (benchmarks/bench_sweep.py)


def resolution_for(seconds_per_point: float, budget_s: float, *, low: int = 64,
                   high: int = 512, step: int = 32) -> int:
    """The largest plane resolution (a multiple of ``step`` in [low, high]) whose snapshot is
    expected to cost at most ``budget_s``: R^2 points at ``seconds_per_point`` each, times the
    snapshot's overhead over a bare forward (``SNAPSHOT_OVERHEAD``); ``low`` when none fits.

    Example:
        >>> resolution_for(1.2e-6, 4.0), resolution_for(134e-6, 4.0)   # an MLP, a small CNN
        (512, 128)
    """
    if seconds_per_point <= 0:
        return high
    fits = int((budget_s / (SNAPSHOT_OVERHEAD * seconds_per_point)) ** 0.5) // step * step
    return max(low, min(high, fits))
