"""K networks of one architecture trained as one: parameters stacked on a leading member axis.

The paper's ablations are grids of small networks; one of them leaves a GPU (or the CPU's vector
units) mostly idle, its step time spent launching kernels. ``StackedModules`` stacks K models
(the PyTorch "model ensembling" recipe: ``torch.func.stack_module_state`` + ``vmap``), so one
forward, one backward and one optimizer step serve every member; ``StackedAdamW`` is that
optimizer, with each member's own learning rate, betas and weight decay.

Each member stays an ordinary ``nn.Module`` whose parameters and buffers are *views* of the
stacked tensors: whatever measures, snapshots or checkpoints a single model does the same to a
member, and sees its weights as they are after the last stacked step. Nothing here logs.
Which runs may be stacked together: ``STACKABLE``, ``stack_key``, ``check_stackable``.

Example:
    stack = StackedModules([build(seed) for seed in range(8)])
    opt = StackedAdamW(stack, lr=[1e-3] * 8, weight_decay=[0.0, 0.01] * 4)
    losses = stack.losses(x, y, ["cross_entropy"] * 8)     # x (8, B, ...), y (8, B) -> (8,)
    opt.zero_grad(); losses.sum().backward(); opt.step()   # members are independent
    stack.members[3]                                       # member 3, an nn.Module
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from ..measures.evaluation import loss_function
from ..settings import Settings, SettingsError
from .data import dataset_spec

__all__ = ["STACKABLE", "StackedAdamW", "StackedModules", "check_stackable", "member_views",
           "stack_key"]


def _set_tensor(module: nn.Module, name: str, value: Tensor, parameter: bool) -> None:
    """Rebind ``module``'s parameter or buffer ``name`` (dotted) to ``value``."""
    owner, _, leaf = name.rpartition(".")
    target = module.get_submodule(owner) if owner else module
    if parameter:
        target._parameters[leaf] = nn.Parameter(value, requires_grad=True)
    else:
        target._buffers[leaf] = value


def _bind(models: list[nn.Module], params: dict[str, Tensor],
          buffers: dict[str, Tensor]) -> list[nn.Module]:
    """Make model k's parameters and buffers views of slice k of the stacked tensors."""
    for k, m in enumerate(models):
        for name, p in params.items():
            _set_tensor(m, name, p.detach()[k], parameter=True)
        for name, b in buffers.items():
            _set_tensor(m, name, b[k], parameter=False)
    return models


def member_views(base: nn.Module, params: dict[str, Tensor],
                 buffers: dict[str, Tensor] | None = None) -> list[nn.Module]:
    """K ordinary modules over stacked tensors you train yourself (``torch.func`` ensembles):
    module k is a copy of ``base`` whose parameters and buffers are views of ``params[name][k]``
    and ``buffers[name][k]`` (storage shared: after your optimizer step they hold the new
    weights). What ``tracker.stacked.StackedTracker`` measures.

    Args:
        base: one module of the architecture (its own weights are not used; ``meta`` is fine
            only if it has no buffers to copy).
        params, buffers: {name: (K, *shape)}, e.g. from ``torch.func.stack_module_state``.
    Example:
        params, buffers = torch.func.stack_module_state(models)
        members = member_views(models[0], params, buffers)        # K nn.Modules
    """
    k = len(next(iter(params.values())))
    return _bind([copy.deepcopy(base) for _ in range(k)], params, buffers or {})


class StackedModules:
    """K models of one architecture as one stacked model.

    Args:
        models: K >= 1 modules with the same parameter and buffer names and shapes (e.g. one
            builder called with K seeds). They are modified: afterwards each one's parameters
            and buffers are views of the stacked tensors (storage shared; no copy).

    Attributes:
        params: {name: (K, *shape)} leaf tensors that the optimizer updates in place.
        buffers: {name: (K, *shape)} (batch norm's running statistics).
        members: the K models, each reading its slice of ``params`` and ``buffers``.
    Raises:
        ValueError: no models, or models whose parameters differ in name or shape.
    """

    def __init__(self, models: Sequence[nn.Module]):
        models = list(models)
        if not models:
            raise ValueError("StackedModules needs at least one model")
        first = {n: p.shape for n, p in models[0].named_parameters()}
        for k, m in enumerate(models[1:], start=1):
            mine = {n: p.shape for n, p in m.named_parameters()}
            if mine != first:
                raise ValueError(f"member {k} differs from member 0 in its parameters' names or "
                                 "shapes: only models of one architecture can be stacked")
        params, buffers = stack_module_state(models)            # {name: (K, ...)}
        self.params = {n: p.detach().requires_grad_(True) for n, p in params.items()}
        self.buffers = dict(buffers)
        self.members = _bind(models, self.params, self.buffers)
        # the architecture alone (no storage): what functional_call runs with the stacked tensors
        self._base = copy.deepcopy(models[0]).to("meta")
        self._forward = vmap(self._member_forward, randomness="different")

    def __len__(self) -> int:
        return len(self.members)

    def _member_forward(self, params, buffers, x):
        return functional_call(self._base, (params, buffers), (x,))

    def train(self, mode: bool = True) -> "StackedModules":
        """Training mode for the stacked forward (batch norm uses and updates batch statistics)."""
        self._base.train(mode)
        return self

    def __call__(self, x: Tensor) -> Tensor:
        """Every member on its own inputs: (K, B, *input) -> (K, B, *output)."""
        return self._forward(self.params, self.buffers, x)

    def losses(self, x: Tensor, y: Tensor, losses: Sequence[str],
               float64: bool = False) -> Tensor:
        """Each member's mean minibatch loss on its own batch: (K,).

        Args:
            x: (K, B, *input).  y: (K, B) labels.
            losses: K loss names (``evaluation.loss_function``: cross_entropy, mse); members with
                different losses each get their own (every distinct loss is computed for all and
                selected by an exact 0/1 weight).
            float64: each loss computed from float64 logits (``loss_function``).
        """
        out = self(x)                                             # (K, B, C)
        names = sorted(set(losses))
        by_name = {n: vmap(loss_function(n, float64))(out, y) for n in names}   # {name: (K,)}
        if len(names) == 1:
            return by_name[names[0]]
        total = torch.zeros_like(by_name[names[0]])
        for n in names:
            weight = torch.tensor([float(kind == n) for kind in losses], device=out.device,
                                  dtype=total.dtype)
            total = total + weight * by_name[n]
        return total


class StackedAdamW:
    """AdamW (decoupled weight decay) or Adam (L2 added to the gradient) for stacked members, each
    member with its own hyperparameters: exactly K independent ``torch.optim.AdamW``/``Adam``
    updates written as elementwise operations on the stacked tensors (the same formulas, in the
    same order; float64 results agree with torch's to rounding, ~1e-16).

    Args:
        stack: the ``StackedModules`` whose ``params`` are updated in place.
        lr, beta1, beta2, weight_decay: K values each (one per member); lr > 0, 0 <= beta < 1,
            weight_decay >= 0.
        decoupled: K booleans: True = AdamW's decay (``p *= 1 - lr * wd``), False = Adam's L2
            (``grad += wd * p``).
        eps: the denominator's epsilon (torch's default 1e-8).

    ``member_state_dict(k, optimizer)`` / ``load_member_state_dict`` convert member k's slice to
    and from a torch optimizer's own ``state_dict`` (so a member's checkpoint is a single run's).
    """

    def __init__(self, stack: StackedModules, lr: Sequence[float], beta1: Sequence[float],
                 beta2: Sequence[float], weight_decay: Sequence[float],
                 decoupled: Sequence[bool], eps: float = 1e-8):
        k = len(stack)
        hyper = {"lr": lr, "beta1": beta1, "beta2": beta2, "weight_decay": weight_decay,
                 "decoupled": decoupled}
        for name, values in hyper.items():
            if len(values) != k:
                raise ValueError(f"{name}: {len(values)} values for {k} members")
        self.stack, self.eps, self.steps = stack, eps, 0
        self.lr, self.beta1, self.beta2 = list(map(float, lr)), list(map(float, beta1)), \
            list(map(float, beta2))
        self.weight_decay, self.decoupled = list(map(float, weight_decay)), list(decoupled)
        self.exp_avg = {n: torch.zeros_like(p) for n, p in stack.params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in stack.params.items()}
        p0 = next(iter(stack.params.values()))
        self._column = lambda values: torch.tensor(values, dtype=torch.float64).to(
            device=p0.device, dtype=p0.dtype)        # computed in float64, then the params' type
        # per member, fixed over training: decoupled decay factor, L2 coefficient, 1 - beta's
        self._decay = self._column([1 - lr_ * wd if d else 1.0 for lr_, wd, d in
                                    zip(self.lr, self.weight_decay, self.decoupled)])
        self._l2 = self._column([0.0 if d else wd for wd, d in zip(self.weight_decay,
                                                                    self.decoupled)])
        self._any_l2 = any(not d and wd for wd, d in zip(self.weight_decay, self.decoupled))
        self._b1c = self._column([1 - b for b in self.beta1])
        self._b2 = self._column(self.beta2)
        self._b2c = self._column([1 - b for b in self.beta2])
        # two scratch tensors per parameter, reused every step (no allocation per step)
        self._scratch = {n: (torch.empty_like(p), torch.empty_like(p))
                         for n, p in stack.params.items()}

    @staticmethod
    def _shaped(column: Tensor, like: Tensor) -> Tensor:
        return column.reshape(-1, *([1] * (like.dim() - 1)))      # (K, 1, ..., 1)

    def zero_grad(self) -> None:
        for p in self.stack.params.values():
            p.grad = None

    @torch.no_grad()
    def step(self, lr_scale: float = 1.0) -> None:
        """One update of every member (torch's single-tensor Adam(W), member-wise), each member's
        learning rate times ``lr_scale`` (a warm-up's factor, as ``train`` sets a torch
        optimizer's ``lr``)."""
        self.steps += 1
        t = self.steps
        # bias corrections in float64 per member, as torch computes them on Python floats
        lrs = [lr_ * lr_scale for lr_ in self.lr]
        step_size = self._column([-lr_ / (1 - b1 ** t) for lr_, b1 in zip(lrs, self.beta1)])
        decay = self._decay if lr_scale == 1.0 else self._column(
            [1 - lr_ * wd if d else 1.0 for lr_, wd, d in zip(lrs, self.weight_decay,
                                                               self.decoupled)])
        bc2_sqrt = self._column([math.sqrt(1 - b2 ** t) for b2 in self.beta2])
        for name, p in self.stack.params.items():
            grad = p.grad
            if grad is None:
                continue
            shape = lambda c, p=p: self._shaped(c, p)             # noqa: E731
            if self._any_l2:
                grad = grad + p * shape(self._l2)                 # Adam: grad += wd * p
            # torch's single-tensor Adam(W), each product in its order; two scratch tensors
            tmp, denom = self._scratch[name]
            p.mul_(shape(decay))                                  # AdamW: p *= 1 - lr * wd
            m, v = self.exp_avg[name], self.exp_avg_sq[name]
            m.lerp_(grad, shape(self._b1c))                       # m += (1 - b1)(g - m)
            torch.mul(grad, shape(self._b2c), out=tmp)
            v.mul_(shape(self._b2)).addcmul_(tmp, grad)           # v = b2 v + ((1 - b2) g) g
            torch.sqrt(v, out=denom).div_(shape(bc2_sqrt)).add_(self.eps)
            torch.div(m, denom, out=tmp)
            p.add_(tmp.mul_(shape(step_size)))                    # p -= lr / bc1 * (m / denom)

    # ---------------------------------------------------------------- per-member state
    def member_optimizer(self, k: int) -> torch.optim.Optimizer:
        """A torch optimizer over member k's parameters with its hyperparameters (never stepped:
        the form its state is saved and loaded in)."""
        cls = torch.optim.AdamW if self.decoupled[k] else torch.optim.Adam
        return cls(self.stack.members[k].parameters(), lr=self.lr[k],
                   betas=(self.beta1[k], self.beta2[k]), weight_decay=self.weight_decay[k],
                   eps=self.eps)

    def member_state_dict(self, k: int, optimizer: torch.optim.Optimizer) -> dict:
        """Member k's optimizer state as ``optimizer.state_dict()`` (``member_optimizer(k)``):
        what the same member trained alone would have saved."""
        names = [n for n, _ in self.stack.members[k].named_parameters()]
        optimizer.state.clear()
        if self.steps:
            for name, p in zip(names, optimizer.param_groups[0]["params"]):
                optimizer.state[p] = {
                    "step": torch.tensor(float(self.steps)),
                    "exp_avg": self.exp_avg[name][k].clone(),
                    "exp_avg_sq": self.exp_avg_sq[name][k].clone()}
        return optimizer.state_dict()

    def load_member_state_dict(self, k: int, optimizer: torch.optim.Optimizer,
                               state: dict) -> None:
        """Member k's slice from a saved ``state_dict`` (every member must be at one step)."""
        optimizer.load_state_dict(state)
        names = [n for n, _ in self.stack.members[k].named_parameters()]
        steps = set()
        with torch.no_grad():
            for name, p in zip(names, optimizer.param_groups[0]["params"]):
                saved = optimizer.state.get(p)
                if not saved:
                    continue
                steps.add(int(saved["step"]))
                self.exp_avg[name][k].copy_(saved["exp_avg"])
                self.exp_avg_sq[name][k].copy_(saved["exp_avg_sq"])
        optimizer.state.clear()
        self.steps = steps.pop() if steps else 0


# Settings that stacked members may differ in: every tensor keeps its shape. Everything else
# (dataset, model, depth, width, activation, batchnorm, dtype, device, steps, batch size, ...)
# must be equal within a stacked group.
STACKABLE = frozenset({
    "seed", "lr", "weight_decay", "adam_beta1", "adam_beta2", "optimizer", "init_scale",
    "train_size", "random_labels", "train_fraction", "loss", "eval_size", "eval_points",
    "eval_every", "checkpoint_every_s", "tracking_retry_s", "lc_radius", "lc_directions",
    "lc_samples", "adv_eps", "adv_steps", "adv_samples", "adv_points", "deform_points",
    "partition_every", "partition_resolution", "preset", "data_root", "download",
    "data_workers"})


def stack_key(settings: Settings) -> tuple | None:
    """What must be equal for runs to train as one stacked model (``train_stacked``), or None
    for a run that cannot be stacked (a streamed dataset: each member would need its own
    stream). Full-batch runs (``batch_size`` 0) also need equal training sets."""
    if dataset_spec(settings.dataset).streamed:
        return None
    params = settings.to_params()
    key = {k: v for k, v in params.items() if k not in STACKABLE}
    if settings.batch_size == 0:
        key.update(train_size=params["train_size"], train_fraction=params["train_fraction"])
    return tuple(sorted(key.items()))


def check_stackable(members: Sequence[Settings]) -> None:
    """``SettingsError`` naming the first setting that differs between members in a way that
    changes a tensor's shape (see ``STACKABLE``)."""
    if not members:
        raise SettingsError("stacked training needs at least one member")
    keys = [stack_key(s) for s in members]
    if any(key is None for key in keys):
        raise SettingsError(f"dataset: {members[0].dataset} is streamed; stacked training needs "
                            "a dataset held as tensors (use ensemble: off)")
    first = dict(keys[0] or ())
    for key in keys[1:]:
        for k, v in key or ():
            if first.get(k) != v:
                raise SettingsError(f"{k}: stacked members must share it (it changes a tensor's "
                                    f"shape), got {first.get(k)!r} and {v!r}")
