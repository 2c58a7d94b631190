"""Local complexity (LC): the paper's progress measure (Humayun et al. 2024, sec. 2, fig. 7, app. A).

For a point x we take P orthonormal directions v_1..v_P and the cross-polytope with vertices
{x + r v_p, x - r v_p} (2P vertices; the centre is not a vertex). Every vertex goes through the
network; at every nonlinearity a neuron counts when its pre-activation is not of one sign at all
2P vertices, i.e. its hyperplane cuts the (embedded) neighbourhood. LC of x at layer l is the number
of such neurons; summed over layers it is the point's LC.

Choices where the paper is silent (each is documented where it is made):
- "Neuron" is every element of the pre-activation tensor (a conv layer has C*H*W of them).
- A pre-activation is found as the input of every nonlinearity *module* (``NONLINEARITIES``);
  every call is one layer, so a module used twice in one forward gives two layers. Functional
  calls (``F.relu``) are invisible: write activations as modules.
- "Not of one sign" is ``min <= 0 <= max`` over the 2P vertices, which is exactly the closed form
  of the first layer, ``|w.x + b| <= r * max_p |w.v_p|`` (a hyperplane through a vertex counts).
- The model runs in eval mode (batch norm uses its running statistics, dropout is off), so every
  vertex is pushed through the same function; the mode is restored afterwards.
- Smooth activations (GeLU, SiLU): a neuron counts when its pre-activation changes sign inside
  the neighbourhood, i.e. the zero level set of the pre-activation (where GeLU bends) cuts it,
  as the paper counts for its GeLU networks (figs. 10, 25). For GeLU that set is a hyperplane
  only in the first layer; deeper, it is a curved surface, and the count is of the surfaces
  that separate two vertices. The count is exact for this definition: it only compares signs.

Discrete inputs (tokens). With ``input_module`` the neighbourhoods live where the input becomes
continuous: at that module's output e(x) (an embedding), {e(x) +- r v_p} in the flattened
(T x D) embedding space, and the model runs from there on (the module's output is replaced by
the vertices; everything else sees the point's own tokens). Counted: every nonlinearity after
it (for a transformer, every MLP neuron at every position). A model whose output depends on its
input other than through that module is refused.

Speed. The naive cost is one forward pass over the N*2P vertices. Everything before the first
nonlinearity is affine in the input (Flatten, Linear, Conv, normalisation, eval-mode batch norm),
so its output at the vertices is g(x) +- r*A v_p with A v_p = g(v_p) - g(0): N + P + 1 evaluations
instead of N*2P, and the (N, 2P, D) vertex tensor never exists. The rest of the network runs from
there on (N, 2P, ...) first pre-activations. This uses ``torch.fx`` to split the model; a model that
cannot be traced, or whose prefix is not provably affine, takes the plain path (materialise the
vertices chunk by chunk), which gives the same counts.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence, overload

import torch
from torch import Tensor, nn

from .flags import evaluating, full_float32
from .network import (
    NonlinearityHooks,
    Plan,
    accepts_channels_last,
    check_radii,
    default_max_vertices,
    has_nonlinearity,
    plan_for,
    prepare_input,
    widest_activation,
)

__all__ = ["DEFAULT_DIRECTIONS", "LocalComplexity", "default_directions", "local_complexity",
           "mean_confidence_interval", "sample_directions"]

_Z_CACHE: dict[float, float] = {}


@dataclass(frozen=True)
class LocalComplexity:
    """Per-point, per-layer local complexity at one radius.

    Attributes:
        per_layer: int64 tensor (N, L): neurons of layer l whose hyperplane cuts point n's
            cross-polytope.
        layer_names: L names, the nonlinearity's module path; a module called k>1 times in one
            forward gives ``name``, ``name#2``, ..., ``name#k``.
        radius: the cross-polytope radius r, in input units.
        n_directions: P, the cross-polytope dimension (2P vertices).
    """

    per_layer: Tensor
    layer_names: list[str]
    radius: float
    n_directions: int

    @property
    def total(self) -> Tensor:
        """(N,) int64: LC of each point summed over layers."""
        return self.per_layer.sum(dim=1)

    def mean(self) -> Tensor:
        """Mean total LC over points (float64 scalar tensor)."""
        return self.total.double().mean()

    def layer_mean(self) -> Tensor:
        """(L,) float64: mean LC of each layer over points."""
        return self.per_layer.double().mean(dim=0)

    def confidence_interval(self, level: float = 0.99) -> tuple[Tensor, Tensor]:
        """Normal-approximation CI of the mean total LC over points (the paper plots 99% CIs).

        Args:
            level: coverage in (0, 1).
        Returns:
            (low, high) float64 scalar tensors; both equal the mean when N == 1.
        """
        return mean_confidence_interval(self.total.double(), level)


def mean_confidence_interval(values: Tensor, level: float) -> tuple[Tensor, Tensor]:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    z = _Z_CACHE.setdefault(level, statistics.NormalDist().inv_cdf(0.5 + level / 2))
    mean = values.mean(dim=0)
    n = values.shape[0]
    half = values.std(dim=0) * (z / math.sqrt(n)) if n > 1 else torch.zeros_like(mean)
    return mean - half, mean + half


def sample_directions(dim: int, n_directions: int, *, seed: int = 0,
                      dtype: torch.dtype = torch.float32) -> Tensor:
    """P orthonormal directions in R^dim: rows of Q from the QR of a Gaussian (dim, P) matrix.

    Drawn on the CPU from a private ``torch.Generator`` (the global RNG is untouched, and CPU and
    CUDA runs see the same directions). The signs are fixed by diag(R) > 0, so Q is Haar-distributed.

    Args:
        dim: input dimension D (>= n_directions).
        n_directions: P >= 1.
        seed: generator seed.
    Returns:
        (P, D) tensor with orthonormal rows.

    Example:
        >>> v = sample_directions(64, 25, seed=0)
        >>> torch.allclose(v @ v.T, torch.eye(25), atol=1e-5)
        True
    """
    if not 1 <= n_directions <= dim:
        raise ValueError(f"n_directions must be in [1, input dimension {dim}], got {n_directions}")
    gen = torch.Generator().manual_seed(int(seed))
    gauss = torch.randn(dim, n_directions, generator=gen, dtype=torch.float64)  # (D, P)
    q, r = torch.linalg.qr(gauss)                                               # (D, P), (P, P)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return q.T.contiguous().to(dtype)                                           # (P, D)


def _point_directions(dim: int, n_directions: int, seed: int, indices: range,
                      dtype: torch.dtype) -> Tensor:
    """(B, P, D) per-point directions; point i's draw depends only on (seed, i), not on chunking."""
    return torch.stack([sample_directions(dim, n_directions, seed=hash((int(seed), i)) & (2**62 - 1),
                                          dtype=dtype) for i in indices])


class _CutCounter(NonlinearityHooks):
    """For each nonlinearity call, count cut neurons per point.

    The hooked tensors are (B*2P, ...) with rows grouped point by point, so ``view(B, 2P, -1)``
    puts one point's vertices on dim 1. No host sync: counts stay on the device.
    """

    def __init__(self, model: nn.Module, n_vertices: int):
        super().__init__(model)
        self.n_vertices = n_vertices
        # On the fast path the first layer's counts come from its closed form; its hook then
        # only records the call (this skips the largest reduction of a CNN).
        self.skip_first = False

    def _hook(self, module: nn.Module, args: tuple) -> None:
        if self.skip_first and not self.modules:
            self.modules.append(module)
            return
        pre = args[0]
        if pre.dim() == 4 and not pre.is_contiguous() and pre.is_contiguous(
                memory_format=torch.channels_last):
            pre = pre.permute(0, 2, 3, 1)  # a contiguous view; neuron order does not matter
        per_point = pre.reshape(-1, self.n_vertices, pre[0].numel())                    # (B, 2P, M)
        # separate amin/amax reductions are ~3x faster than aminmax over dim 1 on CPU
        low, high = per_point.amin(dim=1), per_point.amax(dim=1)                         # (B, M)
        self.values.append(((low <= 0) & (high >= 0)).sum(dim=1))                       # (B,)
        self.modules.append(module)


DEFAULT_DIRECTIONS = 25     # the paper's P


def default_directions(dim: int) -> int:
    """LC's default number of directions P for inputs of dimension ``dim``: min(25, dim)."""
    return min(DEFAULT_DIRECTIONS, dim)


@overload
def local_complexity(model: nn.Module, x: Tensor, *, radius: float,
                     n_directions: int | None = ..., directions: Tensor | None = ...,
                     seed: int = ..., per_point: bool = ...,
                     max_batch_vertices: int | None = ...,
                     input_module: str | None = ...) -> LocalComplexity: ...


@overload
def local_complexity(model: nn.Module, x: Tensor, *, radius: Sequence[float],
                     n_directions: int | None = ..., directions: Tensor | None = ...,
                     seed: int = ..., per_point: bool = ...,
                     max_batch_vertices: int | None = ...,
                     input_module: str | None = ...
                     ) -> dict[float, LocalComplexity]: ...


def local_complexity(model: nn.Module, x: Tensor, *, radius: float | Sequence[float],
                     n_directions: int | None = None, directions: Tensor | None = None,
                     seed: int = 0,
                     per_point: bool = False, max_batch_vertices: int | None = None,
                     input_module: str | None = None,
                     ) -> LocalComplexity | dict[float, LocalComplexity]:
    """Local complexity of ``model`` around each point of ``x`` (paper sec. 2, fig. 7).

    Args:
        model: any ``nn.Module`` whose nonlinearities are modules (see ``NONLINEARITIES``).
            Its train/eval mode and gradients are left as they were; it runs in eval mode here.
        x: (N, *input_shape) points, in the model's input units (pixels in [0, 1] for images).
            Moved to the model's device.
        radius: r > 0 in input units, or a sequence of radii (one direction draw serves all).
            The paper uses 0.005 for CNNs (1e-4 for Imagenette ResNets), larger for MLPs.
        n_directions: P in [1, D], the cross-polytope dimension (2P vertices); None (or 0):
            ``default_directions(D)`` = min(25, D) (the paper's 25, fewer for inputs of fewer
            than 25 dimensions, e.g. fig. 6's 2-D toy networks).
        directions: optional (P, D) directions shared by all points, or (N, P, D) per point,
            overriding the sampling (D = prod(input_shape)). Used as given (not re-orthonormalised).
        seed: seed of the private generator that draws the directions (the global RNG is unused).
        per_point: draw fresh directions for every point instead of one set shared by all points
            (the authors' code shares them). Point i's directions depend only on (seed, i).
        max_batch_vertices: vertices per forward chunk; default adapts to free memory (a quarter
            of free CUDA memory, 32 MiB on CPU). Counts do not depend on it.
        input_module: for discrete inputs (token ids): the name of the module whose output is
            the input space (e.g. ``"embed"``); ``x`` are then the model's own inputs, radius and
            directions in that module's output units (D = its output size per point). See the
            module docstring.

    Arithmetic is plain float32 (or the model's dtype) even where the user enabled TF32 or
    autocast: reduced precision flips the sign of radius-sized differences (see
    ``grok_mlflow.measures.flags.full_float32``).

    Returns:
        ``LocalComplexity`` for a single radius, or ``{radius: LocalComplexity}`` for a sequence.

    Raises:
        ValueError: radius <= 0, n_directions outside [1, D], a model without recognised
            nonlinearity, or an x the model rejects.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        >>> lc = local_complexity(net, torch.rand(100, 1, 8, 8), radius=0.05)
        >>> lc.per_layer.shape, lc.mean() >= 0
        (torch.Size([100, 1]), tensor(True))
    """
    radii = check_radii(radius)
    if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[0] == 0:
        raise ValueError("x must be a tensor of shape (N, *input_shape) with N >= 1, got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    run, x = prepare_input(model, x, input_module)          # x: (N, *S_in), embedded for tokens
    device, dtype = x.device, x.dtype
    n_points, input_shape = x.shape[0], x.shape[1:]
    dim = math.prod(input_shape)

    if directions is not None:
        per_point = directions.dim() == 3
        expected = (n_points, directions.shape[1], dim) if per_point else (directions.shape[0], dim)
        if directions.dim() not in (2, 3) or tuple(directions.shape) != expected:
            raise ValueError(f"directions must be (P, {dim}) or ({n_points}, P, {dim}), "
                             f"got {tuple(directions.shape)}")
        n_directions = directions.shape[-2]
        directions = directions.to(device=device, dtype=dtype)
    n_directions = n_directions or default_directions(dim)
    if not 1 <= n_directions <= dim:
        raise ValueError(f"n_directions must be in [1, input dimension {dim}], got {n_directions}")
    if not has_nonlinearity(model):
        raise ValueError(f"{type(model).__name__} has no recognised nonlinearity module "
                         "(ReLU, GELU, ...); functional activations are not seen "
                         "(see grok_mlflow.measures.network.register_nonlinearity)")
    if directions is None and not per_point:
        directions = sample_directions(dim, n_directions, seed=seed).to(device=device, dtype=dtype)
    n_vertices = 2 * n_directions

    counter = _CutCounter(model, n_vertices)
    try:
        with evaluating(model), torch.no_grad(), full_float32():
            plan = plan_for(model) if run is model else Plan(head=None, body=run)
            # Probe: one point's worth of rows through the whole model checks the input shape and
            # measures the widest activation per row, to size the chunks.
            try:
                widest = widest_activation(model, x[:1].expand(n_vertices, *input_shape), run)
            except Exception as err:
                raise ValueError(f"{type(model).__name__} rejected input of shape "
                                 f"{tuple(input_shape)} (per point): {err}") from err
            counter.take()
            layer_names = counter.layer_names()
            if max_batch_vertices is None:
                # input + output of a layer, plus min/max temporaries, in the compute dtype
                max_batch_vertices = default_max_vertices(
                    device, 4 * max(dim, widest) * x.element_size())
            if max_batch_vertices < 1:
                raise ValueError(f"max_batch_vertices must be >= 1, got {max_batch_vertices}")
            job = _Job(x, radii, directions, n_directions, per_point, seed,
                       chunk=max(1, max_batch_vertices // n_vertices))
            count = _count_fast if plan.head is not None else _count_plain
            results = count(job, plan, run, counter)
    finally:
        counter.remove()
    out = {r: LocalComplexity(torch.cat(parts).long(), layer_names, r, n_directions)
           for r, parts in results.items()}
    return out if isinstance(radius, Sequence) else out[radii[0]]


@dataclass
class _Job:
    """What ``local_complexity`` counts: the points, radii and directions, chunked."""
    x: Tensor                      # (N, *S_in) on the device, in the compute dtype
    radii: list[float]
    directions: Tensor | None      # (P, D) shared, (N, P, D) given per point, None: drawn per point
    n_directions: int
    per_point: bool
    seed: int
    chunk: int                     # points per forward chunk

    def chunks(self):
        """(start, stop, (B|1, P, D) directions) per chunk of points."""
        n, dim = self.x.shape[0], math.prod(self.x.shape[1:])
        for start in range(0, n, self.chunk):
            stop = min(start + self.chunk, n)
            if not self.per_point:
                vb = self.directions.unsqueeze(0)                            # (1, P, D)
            elif self.directions is not None:
                vb = self.directions[start:stop]                             # (B, P, D)
            else:
                vb = _point_directions(dim, self.n_directions, self.seed, range(start, stop),
                                       self.x.dtype).to(self.x.device)      # (B, P, D)
            yield start, stop, vb


def _count_plain(job: _Job, plan: Plan, run: nn.Module,
                 counter: "_CutCounter") -> dict[float, list[Tensor]]:
    """The plain path: materialise the 2P vertices of each point, chunk by chunk, and run them."""
    input_shape = job.x.shape[1:]
    dim = math.prod(input_shape)
    results: dict[float, list[Tensor]] = {r: [] for r in job.radii}
    for start, stop, vb in job.chunks():
        flat = job.x[start:stop].reshape(stop - start, 1, dim)              # (B, 1, D)
        for r in job.radii:
            vertices = flat + r * torch.cat([vb, -vb], dim=1)               # (B, 2P, D)
            run(vertices.view(-1, *input_shape))
            results[r].append(counter.take())
    return results


def _count_fast(job: _Job, plan: Plan, run: nn.Module,
                counter: "_CutCounter") -> dict[float, list[Tensor]]:
    """The fast path (module docstring, "Speed"): the affine head's output at the vertices is
    g(x) +- r A v_p, so only the body runs on (N, 2P, ...) first pre-activations, and the first
    layer's count is its closed form."""
    x, per_point, n_vertices = job.x, job.per_point, 2 * job.n_directions
    head = plan.head
    assert head is not None, "the fast path runs only on a plan with an affine head"
    input_shape = x.shape[1:]
    # With shared directions the vertex offsets r * (+-A v_p) are the same for every chunk:
    # compute them once per radius.                                       (2P, *S_1) each
    shared_offsets: dict[float, Tensor] = {}
    if not per_point:
        assert job.directions is not None, "shared directions are drawn once per job"
        shift = _head_shift(head, job.directions.view(-1, *input_shape), x)
        shared_offsets = {r: r * torch.cat([shift, -shift]) for r in job.radii}
        shared_reach = shift.abs().amax(dim=0)                               # (*S_1)
    if plan.channels_last is None:
        first_pre = head(x[:1])
        plan.channels_last = accepts_channels_last(
            plan.body, first_pre.expand(n_vertices, *first_pre.shape[1:]))
        counter.values, counter.modules = [], []
    channels_last = bool(plan.channels_last)
    if channels_last and not per_point:
        shared_offsets = {r: o.permute(0, 2, 3, 1).contiguous()            # (2P, H, W, C)
                          for r, o in shared_offsets.items()}
    counter.skip_first = True
    results: dict[float, list[Tensor]] = {r: [] for r in job.radii}
    for start, stop, vb in job.chunks():
        centre = head(x[start:stop]).unsqueeze(1)                       # (B, 1, *S_1)
        if per_point:
            shift = _head_shift(head, vb.reshape(-1, *input_shape), x[start:stop]).view(
                stop - start, job.n_directions, *centre.shape[2:])           # (B, P, *S_1)
        reach = (shared_reach.unsqueeze(0) if not per_point else
                 shift.abs().amax(dim=1))                                    # (B|1, *S_1)
        for r in job.radii:
            # layer 1, closed form: |g(x)| <= r max_p |A v_p|                (B,)
            first = (centre.squeeze(1).abs() <= r * reach).flatten(1).sum(1)
            offsets = (shared_offsets[r].unsqueeze(0) if not per_point else
                       r * torch.cat([shift, -shift], dim=1))                # (B|1, 2P, *S_1)
            # first pre-activations at the vertices: g(x) +- r A v_p       (B, 2P, *S_1)
            if channels_last:      # built as (B, 2P, H, W, C), seen as (B*2P, C, H, W)
                if per_point:
                    offsets = offsets.permute(0, 1, 3, 4, 2)
                b, _, c, h, w = centre.shape
                pre = torch.empty((b, n_vertices, h, w, c), device=x.device, dtype=x.dtype)
                torch.add(centre.permute(0, 1, 3, 4, 2).contiguous(), offsets, out=pre)
                pre = pre.flatten(0, 1).permute(0, 3, 1, 2)
            else:
                pre = (centre + offsets).flatten(0, 1)
            plan.body(pre)
            results[r].append(counter.take(first))
    return results


def _head_shift(head: nn.Module, directions: Tensor, like: Tensor) -> Tensor:
    """A v_p for the affine head g: g(v_p) - g(0), in one batched call.  (P, *S_1)"""
    zero = torch.zeros_like(like[:1])
    out = head(torch.cat([zero, directions.to(like.dtype)]))
    return out[1:] - out[:1]


