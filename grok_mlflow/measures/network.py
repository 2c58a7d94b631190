"""The network machinery that local complexity, the partition slice and the deformation share.

- Nonlinearities: ``NONLINEARITIES`` (the modules whose input is a pre-activation),
  ``register_nonlinearity`` for a custom one, ``has_nonlinearity``; ``NonlinearityHooks`` collects
  one value per nonlinearity call and names the layers (``call_names``).
- The fx plan: ``plan_for(model)`` splits a model at its first nonlinearity when everything before
  it is provably affine (``Plan``: ``head`` input -> first pre-activations, ``body`` the rest), so
  the measures can push g(x) +- r A v_p through the body instead of N*2P input rows.
- Tokens: ``embedded`` / ``FromModule`` run a model from the output of one of its modules (the
  embedding), where a token model's input space is continuous.
- ``prepare_input``: one input set-up for every measure (the model's device and dtype, the
  token-embedding path, the integer-input error).
- Chunk sizes: ``default_max_vertices`` (memory per forward chunk), ``widest_activation``.

Example:
    run, x = prepare_input(model, x, input_module=None)   # x on the model's device and dtype
    plan = plan_for(model)                                 # plan.head is None: no affine head
"""

from __future__ import annotations

import math
import operator
import weakref
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.fx as fx
from torch import Tensor, nn

from .flags import evaluating, full_float32

__all__ = ["FromModule", "NONLINEARITIES", "NonlinearityHooks", "Plan", "call_names",
           "check_radii", "default_max_vertices", "embedded", "find_module", "has_nonlinearity",
           "input_module_of", "plan_for", "prepare_input", "register_nonlinearity",
           "widest_activation"]


# Modules whose *input* is a pre-activation. Smooth saturating functions (tanh, sigmoid, softmax)
# are left out on purpose: they have no kink, and output heads often end in them.
NONLINEARITIES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ReLU6, nn.RReLU, nn.GELU, nn.SiLU, nn.ELU, nn.SELU,
    nn.CELU, nn.Mish, nn.Softplus, nn.Hardtanh, nn.Hardswish,
)


def register_nonlinearity(module_type: type[nn.Module]) -> None:
    """Count the input of ``module_type`` as a pre-activation too (for a custom activation module).

    Example:
        class Abs(nn.Module):
            def forward(self, x): return x.abs()
        register_nonlinearity(Abs)
    """
    global NONLINEARITIES
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise TypeError(f"expected an nn.Module subclass, got {module_type!r}")
    if module_type not in NONLINEARITIES:
        NONLINEARITIES = NONLINEARITIES + (module_type,)
        _PLANS.clear()                   # plans were split at the nonlinearities known then



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


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, NONLINEARITIES + _AFFINE_MODULES) or super().is_leaf_module(m, qualname)


@dataclass
class Plan:
    """How to run a model for LC: ``head`` maps inputs to the first pre-activations (affine), and
    ``body`` maps first pre-activations (or, without a head, inputs) to the output."""
    head: nn.Module | None
    body: nn.Module
    # Feed the body channels-last first pre-activations (4-D only; decided on first use: ~20%
    # faster convolutions on CPU, and refused when the model's own code needs NCHW strides).
    channels_last: bool | None = None



_PLANS: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], Plan]]" = (
    weakref.WeakKeyDictionary())


def _is_affine_node(node: fx.Node, module_of: Callable[[str], nn.Module],
                    depends_on_input: set[fx.Node]) -> bool:
    """True when ``node`` is an affine, row-independent function of the input-dependent nodes."""
    inputs = [a for a in node.all_input_nodes if a in depends_on_input]
    if node.op == "call_module":
        return isinstance(module_of(str(node.target)), _AFFINE_MODULES)
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


def _build_plan(model: nn.Module) -> Plan:
    """Split ``model`` at its first nonlinearity when the part before it is provably affine."""
    try:
        graph = _Tracer().trace(model)
    except Exception:  # noqa: BLE001 - any untraceable model takes the plain path
        return Plan(head=None, body=model)
    module_of = model.get_submodule
    nodes = list(graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    first_act = next((n for n in nodes if n.op == "call_module"
                      and isinstance(module_of(n.target), NONLINEARITIES)), None)
    if len(placeholders) != 1 or first_act is None or not first_act.args:
        return Plan(head=None, body=model)
    pre = first_act.args[0]
    if not isinstance(pre, fx.Node):
        return Plan(head=None, body=model)

    ancestors = _ancestors(pre)
    if not _affine_in_input(nodes, ancestors, module_of):
        return Plan(head=None, body=model)

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
        return Plan(head=None, body=model)
    body_graph = fx.Graph()
    env = {pre: body_graph.placeholder("pre_activation")}
    for node in nodes:
        if node in needed and node is not pre:
            env[node] = body_graph.node_copy(node, lambda a: env[a])
    # GraphModule shares (does not copy) the submodules and parameters of ``model``.
    return Plan(head=fx.GraphModule(model, head_graph), body=fx.GraphModule(model, body_graph))


def _affine_in_input(nodes: list[fx.Node], ancestors: set[fx.Node], module_of) -> bool:
    """Whether every node among ``ancestors`` that depends on the input is affine in it."""
    depends: set[fx.Node] = set()
    for node in nodes:
        if node.op == "placeholder" or any(a in depends for a in node.all_input_nodes):
            depends.add(node)
    return all(node not in depends or node.op == "placeholder"
               or _is_affine_node(node, module_of, depends) for node in ancestors)


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


def plan_for(model: nn.Module) -> Plan:
    signature = tuple(id(m) for m in model.modules())
    cached = _PLANS.get(model)
    if cached is not None and cached[0] == signature:
        return cached[1]
    plan = _build_plan(model)
    _PLANS[model] = (signature, plan)
    return plan


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


def default_max_vertices(device: torch.device, bytes_per_vertex: int) -> int:
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
        run = FromModule(transformer, "embed", tokens[:1])
        torch.allclose(run(transformer.embed(tokens[:1])), transformer(tokens[:1]))
        # -> True
    """

    _model: nn.Module                              # set in __dict__: not a submodule
    _z: Tensor | None

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


def accepts_channels_last(body: nn.Module, pre: Tensor) -> bool:
    """Whether ``body`` runs on 4-D channels-last input (a ``.view`` in user code may refuse)."""
    if pre.dim() != 4:
        return False
    try:
        body(pre.contiguous(memory_format=torch.channels_last))
    except RuntimeError:
        return False
    return True


def check_radii(radius: float | Sequence[float]) -> list[float]:
    radii = list(radius) if isinstance(radius, Sequence) else [radius]
    if not radii:
        raise ValueError("radius: give at least one radius")
    for r in radii:
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or r <= 0:
            raise ValueError(f"radius must be a finite number > 0 (input units), got {r!r}")
    return [float(r) for r in radii]


def widest_activation(model: nn.Module, rows: Tensor, run: nn.Module | None = None) -> int:
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


def has_nonlinearity(model: nn.Module) -> bool:
    """Whether ``model`` has a module of ``NONLINEARITIES`` (as registered now)."""
    return any(isinstance(m, NONLINEARITIES) for m in model.modules())


def prepare_input(model: nn.Module, x: Tensor, input_module: str | None = None,
                  what: str = "x") -> tuple[nn.Module, Tensor]:
    """The one input set-up of every measure: ``(run, x)`` with ``x`` on the model's device in
    its floating dtype (float32 for a model without float parameters) and ``run`` what the rows
    go through: the model itself, or with ``input_module`` the model from that module on
    (``embedded``; ``x`` are then the points there, (N, *E)). Integer inputs without
    ``input_module`` raise ``ValueError`` naming ``what``."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else x.device
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    run: nn.Module = model
    if input_module:
        with evaluating(model), torch.no_grad(), full_float32():
            run, x = embedded(model, input_module, x.to(device))           # (N, *E) embedded
    elif not x.is_floating_point():
        raise ValueError(f"{what} holds integers (token ids?): give input_module, the module "
                         "whose output is continuous (e.g. the embedding)")
    return run, x.to(device=device, dtype=dtype)
