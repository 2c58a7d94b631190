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
import operator
import statistics
import weakref
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.fx as fx
from torch import Tensor, nn

from ._modes import evaluating, full_float32

__all__ = [
    "DEFAULT_DIRECTIONS",
    "LocalComplexity",
    "default_directions",
    "FromModule",
    "NONLINEARITIES",
    "embedded",
    "local_complexity",
    "register_nonlinearity",
    "sample_directions",
]

# Modules whose *input* is a pre-activation. Smooth saturating functions (tanh, sigmoid, softmax)
# are left out on purpose: they have no kink, and output heads often end in them.
NONLINEARITIES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ReLU6, nn.RReLU, nn.GELU, nn.SiLU, nn.ELU, nn.SELU,
    nn.CELU, nn.Mish, nn.Softplus, nn.Hardtanh, nn.Hardswish,
)


def register_nonlinearity(module_type: type[nn.Module]) -> None:
    """Count the input of ``module_type`` as a pre-activation too (for a custom activation module).

    Example:
        >>> class Abs(nn.Module):
        ...     def forward(self, x): return x.abs()
        >>> register_nonlinearity(Abs)
    """
    global NONLINEARITIES
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise TypeError(f"expected an nn.Module subclass, got {module_type!r}")
    if module_type not in NONLINEARITIES:
        NONLINEARITIES = NONLINEARITIES + (module_type,)
    _PLANS.clear()


# Modules that are affine maps of their input in eval mode, applied row by row.
_AFFINE_MODULES: tuple[type[nn.Module], ...] = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Flatten, nn.Unflatten, nn.Identity,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.BatchNorm1d, nn.BatchNorm2d,
    nn.BatchNorm3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d,
)
# Shape-only operations (affine, and independent across rows).
_RESHAPES = {"flatten", "reshape", "view", "permute", "transpose", "contiguous", "unsqueeze",
             "squeeze", "unflatten", "float", "to", "type_as"}
_LINEAR_COMBINATIONS = {operator.add, operator.sub, torch.add, torch.sub, operator.neg, torch.neg}
_SCALINGS = {operator.mul, torch.mul, operator.truediv, torch.div}

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
        return _mean_confidence_interval(self.total.double(), level)


def _mean_confidence_interval(values: Tensor, level: float) -> tuple[Tensor, Tensor]:
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


# --------------------------------------------------------------------------------------------
# Splitting the model at its first nonlinearity (torch.fx)
# --------------------------------------------------------------------------------------------

class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, NONLINEARITIES + _AFFINE_MODULES) or super().is_leaf_module(m, qualname)


@dataclass
class _Plan:
    """How to run a model for LC: ``head`` maps inputs to the first pre-activations (affine), and
    ``body`` maps first pre-activations (or, without a head, inputs) to the output."""
    head: nn.Module | None
    body: nn.Module
    # Feed the body channels-last first pre-activations (4-D only; decided on first use: ~20%
    # faster convolutions on CPU, and refused when the model's own code needs NCHW strides).
    channels_last: bool | None = None


_PLANS: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], _Plan]]" = (
    weakref.WeakKeyDictionary())


def _is_affine_node(node: fx.Node, module_of: Callable[[str], nn.Module],
                    depends_on_input: set[fx.Node]) -> bool:
    """True when ``node`` is an affine, row-independent function of the input-dependent nodes."""
    inputs = [a for a in node.all_input_nodes if a in depends_on_input]
    if node.op == "call_module":
        return isinstance(module_of(node.target), _AFFINE_MODULES)
    if node.op == "call_method" and node.target in _RESHAPES:
        return True
    if node.op == "call_function":
        if node.target in (torch.flatten, torch.reshape, torch.permute, torch.transpose,
                           torch.unsqueeze, torch.squeeze):
            return True
        if node.target in _LINEAR_COMBINATIONS:
            return True
        if node.target in _SCALINGS:
            # x * c, c * x and x / c are affine; x * x and c / x are not.
            if len(inputs) != 1:
                return False
            return node.target not in (operator.truediv, torch.div) or node.args[0] in inputs
    return False


def _build_plan(model: nn.Module) -> _Plan:
    """Split ``model`` at its first nonlinearity when the part before it is provably affine."""
    try:
        graph = _Tracer().trace(model)
    except Exception:  # noqa: BLE001 - any untraceable model takes the plain path
        return _Plan(head=None, body=model)
    module_of = model.get_submodule
    nodes = list(graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    first_act = next((n for n in nodes if n.op == "call_module"
                      and isinstance(module_of(n.target), NONLINEARITIES)), None)
    if len(placeholders) != 1 or first_act is None or not first_act.args:
        return _Plan(head=None, body=model)
    pre = first_act.args[0]
    if not isinstance(pre, fx.Node):
        return _Plan(head=None, body=model)

    # Everything the first pre-activation depends on must be affine in the input.
    depends: set[fx.Node] = set()
    for node in nodes:
        if node.op == "placeholder" or any(a in depends for a in node.all_input_nodes):
            depends.add(node)
    ancestors = _ancestors(pre)
    for node in ancestors:
        if node in depends and node.op != "placeholder" and not _is_affine_node(
                node, module_of, depends):
            return _Plan(head=None, body=model)

    # Head: input -> first pre-activation.
    head_graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for node in nodes:
        if node in ancestors:
            env[node] = head_graph.node_copy(node, lambda a: env[a])
    head_graph.output(env[pre])

    # Body: first pre-activation -> output. The input itself must not be used again (no skip
    # connection from the raw input), otherwise the split is not valid.
    output = next(n for n in nodes if n.op == "output")
    needed = _ancestors(output, stop=pre)
    if placeholders[0] in needed:
        return _Plan(head=None, body=model)
    body_graph = fx.Graph()
    env = {pre: body_graph.placeholder("pre_activation")}
    for node in nodes:
        if node in needed and node is not pre:
            env[node] = body_graph.node_copy(node, lambda a: env[a])
    # GraphModule shares (does not copy) the submodules and parameters of ``model``.
    return _Plan(head=fx.GraphModule(model, head_graph), body=fx.GraphModule(model, body_graph))


def _ancestors(node: fx.Node, stop: fx.Node | None = None) -> set[fx.Node]:
    """``node`` and every node it depends on; the walk does not go past ``stop``."""
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        if n is not stop:
            todo.extend(n.all_input_nodes)
    return seen


def _plan_for(model: nn.Module) -> _Plan:
    signature = tuple(id(m) for m in model.modules())
    cached = _PLANS.get(model)
    if cached is not None and cached[0] == signature:
        return cached[1]
    plan = _build_plan(model)
    _PLANS[model] = (signature, plan)
    return plan


# --------------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------------

def call_names(names: dict[nn.Module, str], calls: list[nn.Module]) -> list[str]:
    """Layer names of nonlinearity calls in order; a module's k-th call (k > 1) gets ``#k``."""
    seen: dict[nn.Module, int] = {}
    out = []
    for module in calls:
        seen[module] = seen.get(module, 0) + 1
        out.append(names[module] + (f"#{seen[module]}" if seen[module] > 1 else ""))
    return out


class NonlinearityHooks:
    """Forward pre-hooks on every nonlinearity of ``model``: a subclass's ``_hook`` appends one
    (B,) tensor per call to ``values`` (and the module to ``modules``); ``take`` stacks those of
    the forward just run into (B, L), L = nonlinearity calls. Shared by LC's cut counts and the
    partition's sign-pattern hashes. With ``on_output`` the hooks see each call's output instead
    (as ``args[0]``; the deformation's embedded vertices)."""

    on_output = False

    def __init__(self, model: nn.Module):
        self.values: list[Tensor] = []
        self.modules: list[nn.Module] = []       # modules called in the forward under way
        self.last_modules: list[nn.Module] = []  # ... and in the last one taken
        self._names = {m: name or type(m).__name__ for name, m in model.named_modules()
                       if isinstance(m, NONLINEARITIES)}
        self._handles = [m.register_forward_hook(lambda mod, _args, out: self._hook(mod, (out,)))
                         if self.on_output else m.register_forward_pre_hook(self._hook)
                         for m in self._names]

    def _hook(self, module: nn.Module, args: tuple) -> None:
        raise NotImplementedError

    def take(self, first: Tensor | None = None) -> Tensor:
        """(B, L) values of the forward just run (``first``: the first layer's, when skipped)."""
        values = torch.stack(([first] if first is not None else []) + self.values, dim=1)
        self.values, self.last_modules, self.modules = [], self.modules, []
        return values

    def layer_names(self) -> list[str]:
        """Names of the layers of the last forward taken, in call order."""
        return call_names(self._names, self.last_modules)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


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


def _default_max_vertices(device: torch.device, bytes_per_vertex: int) -> int:
    """Vertices per chunk: a quarter of free CUDA memory; 32 MiB on CPU, where chunks that stay
    in cache run 2-3x faster than large ones (measured in benchmarks/bench_complexity.py)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = free // 4
    else:
        budget = 32 << 20
    return max(1, budget // max(1, bytes_per_vertex))


def find_module(model: nn.Module, name: str) -> nn.Module:
    """``model``'s submodule ``name``; else ``ValueError`` listing the first module names."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        raise ValueError(f"lc_input: {type(model).__name__} has no module {name!r}; modules: "
                         + ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")) from None


def input_module_of(model: nn.Module, name: str = "") -> str:
    """The module LC starts from: ``name`` when given, else the model's own ``lc_input``
    attribute (the transformer's ``embed``), else "" (the model's input)."""
    return name or getattr(model, "lc_input", "") or ""


class FromModule(nn.Module):
    """``model`` run from the output of its submodule ``name``: ``forward(z)`` runs ``model`` on
    fixed input rows with that submodule's output replaced by ``z`` (B, *E). The model is held,
    not registered, so this wrapper has no submodules of its own.

    Example:
        >>> run = FromModule(transformer, "embed", tokens[:1])
        >>> torch.allclose(run(transformer.embed(tokens[:1])), transformer(tokens[:1]))
        True
    """

    def __init__(self, model: nn.Module, name: str, like: Tensor):
        super().__init__()
        self._target = find_module(model, name)
        self.__dict__["_model"] = model            # not a submodule
        self.name, self._row, self._z = name, like[:1], None

    def _replace(self, _module, _args, _out):
        return self._z

    def embed(self, x: Tensor) -> Tensor:
        """The submodule's output at inputs ``x``.                             (N, *E)"""
        out: list[Tensor] = []
        handle = self._target.register_forward_hook(lambda m, a, o: out.append(o))
        try:
            self._model(x)
        finally:
            handle.remove()
        if not out or not isinstance(out[0], Tensor) or not out[0].is_floating_point():
            raise ValueError(f"lc_input: module {self.name!r} must return a float tensor")
        return out[0]

    def forward(self, z: Tensor) -> Tensor:
        self._z = z
        handle = self._target.register_forward_hook(self._replace)
        try:
            return self._model(self._row.expand(len(z), *self._row.shape[1:]))
        finally:
            handle.remove()
            self._z = None


def embedded(model: nn.Module, name: str, x: Tensor) -> tuple[FromModule, Tensor]:
    """``(FromModule(model, name), e(x))``: the model from ``name`` on, and the points there.

    Checks that the model's output depends on ``x`` only through ``name``: the model on ``x`` and
    from ``e(x)`` (with other input rows) must agree, else ``ValueError``."""
    run = FromModule(model, name, x[-1:])
    z = run.embed(x)
    k = min(len(x), 8)
    direct, through = model(x[:k]), run(z[:k])
    if not torch.allclose(direct, through, rtol=1e-4, atol=1e-5 * (1 + float(direct.abs().max()))):
        raise ValueError(f"lc_input: {type(model).__name__}'s output depends on its input other "
                         f"than through {name!r}; choose the module where the input enters")
    return run, z


DEFAULT_DIRECTIONS = 25     # the paper's P


def default_directions(dim: int) -> int:
    """LC's default number of directions P for inputs of dimension ``dim``: min(25, dim)."""
    return min(DEFAULT_DIRECTIONS, dim)


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
    ``grok_mlflow._modes.full_float32``).

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
    radii = _check_radii(radius)
    if not isinstance(x, Tensor) or x.dim() < 2 or x.shape[0] == 0:
        raise ValueError("x must be a tensor of shape (N, *input_shape) with N >= 1, got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else x.device
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    run: nn.Module = model                   # what the vertices go through
    if input_module:
        with evaluating(model), torch.no_grad(), full_float32():
            run, x = embedded(model, input_module, x.to(device))       # x: (N, *E) embedded
    elif not x.is_floating_point():
        raise ValueError("x holds integers (token ids?): give input_module, the module whose "
                         "output is continuous (e.g. the embedding)")
    x = x.to(device=device, dtype=dtype)
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
    if not any(isinstance(m, NONLINEARITIES) for m in model.modules()):
        raise ValueError(f"{type(model).__name__} has no recognised nonlinearity module "
                         "(ReLU, GELU, ...); functional activations are not seen "
                         "(see grok_mlflow.complexity.register_nonlinearity)")
    if directions is None and not per_point:
        directions = sample_directions(dim, n_directions, seed=seed).to(device=device, dtype=dtype)
    n_vertices = 2 * n_directions

    counter = _CutCounter(model, n_vertices)
    try:
        with evaluating(model), torch.no_grad(), full_float32():
            plan = _plan_for(model) if run is model else _Plan(head=None, body=run)
            # Probe: one point's worth of rows through the whole model checks the input shape and
            # measures the widest activation per row, to size the chunks.
            try:
                widest = _widest_activation(model, x[:1].expand(n_vertices, *input_shape), run)
            except Exception as err:  # noqa: BLE001 - re-raised with the shape that was rejected
                raise ValueError(f"{type(model).__name__} rejected input of shape "
                                 f"{tuple(input_shape)} (per point): {err}") from err
            counter.take()
            layer_names = counter.layer_names()
            if max_batch_vertices is None:
                # input + output of a layer, plus min/max temporaries, in the compute dtype
                max_batch_vertices = _default_max_vertices(
                    device, 4 * max(dim, widest) * x.element_size())
            if max_batch_vertices < 1:
                raise ValueError(f"max_batch_vertices must be >= 1, got {max_batch_vertices}")
            chunk = max(1, max_batch_vertices // n_vertices)

            # With shared directions the vertex offsets r * (+-A v_p) are the same for every
            # chunk: compute them once per radius.                         (2P, *S_1) each
            shared_offsets: dict[float, Tensor] = {}
            if plan.head is not None and not per_point:
                shift = _head_shift(plan.head, directions.view(-1, *input_shape), x)
                shared_offsets = {r: r * torch.cat([shift, -shift]) for r in radii}
                shared_reach = shift.abs().amax(dim=0)                       # (*S_1)
            if plan.head is not None and plan.channels_last is None:
                first_pre = plan.head(x[:1])
                plan.channels_last = _accepts_channels_last(
                    plan.body, first_pre.expand(n_vertices, *first_pre.shape[1:]))
                counter.values, counter.modules = [], []
            channels_last = bool(plan.channels_last)
            if channels_last and not per_point:
                shared_offsets = {r: o.permute(0, 2, 3, 1).contiguous()   # (2P, H, W, C)
                                  for r, o in shared_offsets.items()}
            counter.skip_first = plan.head is not None

            results: dict[float, list[Tensor]] = {r: [] for r in radii}
            for start in range(0, n_points, chunk):
                stop = min(start + chunk, n_points)
                xb = x[start:stop]                                           # (B, *S_in)
                if per_point:
                    vb = (directions[start:stop] if directions is not None else
                          _point_directions(dim, n_directions, seed, range(start, stop),
                                            dtype).to(device))              # (B, P, D)
                else:
                    vb = directions.unsqueeze(0)                             # (1, P, D)
                if plan.head is not None:
                    centre = plan.head(xb).unsqueeze(1)                      # (B, 1, *S_1)
                    if per_point:
                        shift = _head_shift(plan.head, vb.reshape(-1, *input_shape), xb).view(
                            stop - start, n_directions, *centre.shape[2:])   # (B, P, *S_1)
                    reach = (shared_reach.unsqueeze(0) if not per_point else
                             shift.abs().amax(dim=1))                        # (B|1, *S_1)
                    for r in radii:
                        # layer 1, closed form: |g(x)| <= r max_p |A v_p|      (B,)
                        first = (centre.squeeze(1).abs() <= r * reach).flatten(1).sum(1)
                        offsets = (shared_offsets[r].unsqueeze(0) if not per_point else
                                   r * torch.cat([shift, -shift], dim=1))    # (B|1, 2P, *S_1)
                        # first pre-activations at the vertices: g(x) +- r A v_p   (B, 2P, *S_1)
                        if channels_last:  # built as (B, 2P, H, W, C), seen as (B*2P, C, H, W)
                            if per_point:
                                offsets = offsets.permute(0, 1, 3, 4, 2)
                            b, _, c, h, w = centre.shape
                            pre = torch.empty((b, n_vertices, h, w, c), device=device, dtype=dtype)
                            torch.add(centre.permute(0, 1, 3, 4, 2).contiguous(), offsets, out=pre)
                            pre = pre.flatten(0, 1).permute(0, 3, 1, 2)
                        else:
                            pre = (centre + offsets).flatten(0, 1)
                        plan.body(pre)
                        results[r].append(counter.take(first))
                else:
                    flat = xb.reshape(stop - start, 1, dim)                  # (B, 1, D)
                    for r in radii:
                        vertices = flat + r * torch.cat([vb, -vb], dim=1)    # (B, 2P, D)
                        run(vertices.view(-1, *input_shape))
                        results[r].append(counter.take())
    finally:
        counter.remove()
    out = {r: LocalComplexity(torch.cat(parts).long(), layer_names, r, n_directions)
           for r, parts in results.items()}
    return out if isinstance(radius, Sequence) else out[radii[0]]


def _accepts_channels_last(body: nn.Module, pre: Tensor) -> bool:
    """Whether ``body`` runs on 4-D channels-last input (a ``.view`` in user code may refuse)."""
    if pre.dim() != 4:
        return False
    try:
        body(pre.contiguous(memory_format=torch.channels_last))
    except RuntimeError:
        return False
    return True


def _check_radii(radius: float | Sequence[float]) -> list[float]:
    radii = list(radius) if isinstance(radius, Sequence) else [radius]
    if not radii:
        raise ValueError("radius: give at least one radius")
    for r in radii:
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or r <= 0:
            raise ValueError(f"radius must be a finite number > 0 (input units), got {r!r}")
    return [float(r) for r in radii]


def _head_shift(head: nn.Module, directions: Tensor, like: Tensor) -> Tensor:
    """A v_p for the affine head g: g(v_p) - g(0), in one batched call.  (P, *S_1)"""
    zero = torch.zeros_like(like[:1])
    out = head(torch.cat([zero, directions.to(like.dtype)]))
    return out[1:] - out[:1]


def _widest_activation(model: nn.Module, rows: Tensor, run: nn.Module | None = None) -> int:
    """Run ``model`` (or ``run``, which runs it) on ``rows``; return the largest per-row size of
    any leaf module's output."""
    widest = 0

    def keep(_module, _args, out):
        nonlocal widest
        if isinstance(out, Tensor) and out.dim() > 0:
            widest = max(widest, out[0].numel())

    handles = [m.register_forward_hook(keep) for m in model.modules() if not list(m.children())]
    try:
        (run or model)(rows)
    finally:
        for handle in handles:
            handle.remove()
    return widest
