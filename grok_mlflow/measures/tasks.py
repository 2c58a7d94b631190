"""What a model's output means: the task (multi-class, binary, regression) and the output tensor.

The tracker measures any model; this module says how to read its output (issue #27):

==============  ===============================  ============================  =================
task            output, labels                   loss (``loss/*``)             accuracy (``acc/*``)
==============  ===============================  ============================  =================
``multiclass``  (N, C) logits, C >= 2;           cross-entropy (or ``mse`` on  argmax == label
                (N,) integer labels              one-hot targets)
``binary``      (N,) or (N, 1) one logit;        binary cross-entropy on the   logit > 0 ==
                (N,) labels 0 / 1 (any dtype)    logit                         (label > 0.5)
``multilabel``  (N, k) logits, k >= 2; (N, k)     binary cross-entropy         exact match (every
                labels 0 / 1 (any dtype)         (``BCEWithLogitsLoss``)      label right);
                                                                              per label too
``regression``  any shape; float targets of      mean squared error            none
                the output's size per sample
==============  ===============================  ============================  =================

``infer_task`` picks one from a batch of outputs and labels (integer labels and >= 2 outputs:
multiclass; one output and labels all 0 or 1: binary; (N, k) labels all 0 or 1 beside (N, k)
outputs: multilabel; else float labels: regression; multi-output regression with 0/1 targets
needs ``task="regression"``); a ``task=`` given to the tracker overrides it. A user's own
``loss_fn(output, labels)`` replaces the loss of any task. A binary model is measured as
``TwoLogits`` (logits [0, z]) with labels 0 / 1 as integers: its cross-entropy is exactly the
binary cross-entropy on z and its argmax is z > 0, so accuracy, PGD and the partition's boundary
read it as a 2-class model.

Outputs: a model may return a tensor, a dict (or a Hugging Face ``ModelOutput``), a tuple or a
dataclass. ``select_output`` takes the tensor that ``output`` names (a key, an index or a
callable), by default ``logits`` when present, else the first tensor. ``TensorOutput`` wraps a
model so that every measure sees that tensor, with the model's own submodule names (so LC's layer
names do not change) and its own parameters.

Example:
    net = TensorOutput(hf_model, output="logits")      # net(x) -> the logits tensor
    infer_task(net(x[:8]), y[:8])
    # -> 'multiclass'
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Union

import torch
from torch import Tensor, nn

from .flags import evaluating

__all__ = ["TASKS", "MeasuredModel", "OutputSpec", "TensorOutput", "TwoLogits",
           "describe_output", "infer_task", "measured_model", "select_output"]

TASKS = ("multiclass", "binary", "multilabel", "regression")
OutputSpec = Union[str, int, Callable[[Any], Tensor], None]


def _items(out: Any) -> list[tuple[Any, Any]]:
    """(key, value) pairs of a structured output, in its own order."""
    if isinstance(out, dict) or hasattr(out, "keys") and hasattr(out, "__getitem__"):
        return [(k, out[k]) for k in out.keys()]
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return [(f.name, getattr(out, f.name)) for f in dataclasses.fields(out)]
    if isinstance(out, (tuple, list)):
        return list(enumerate(out))
    return []


def select_output(out: Any, output: OutputSpec = None) -> Tensor:
    """The tensor of a model's output ``out`` that the measures read.

    Args:
        out: what the model returned.
        output: a key (dict, ``ModelOutput``, dataclass field), an index (tuple, list), a
            callable ``output(out) -> Tensor``, or None: ``out`` itself when it is a tensor, else
            its ``logits`` when present, else its first tensor.
    Raises:
        ValueError: one line naming what was asked for and what the output holds.
    """
    chosen: Any
    if callable(output):
        chosen = output(out)
    elif output is None:
        if isinstance(out, Tensor):
            return out
        items = _items(out)
        chosen = next((v for k, v in items if k == "logits" and isinstance(v, Tensor)), None)
        if chosen is None:
            chosen = next((v for _, v in items if isinstance(v, Tensor)), None)
        if chosen is None:
            raise ValueError(f"output: the model returned a {type(out).__name__} with no tensor "
                             "in it; pass output= (a key, an index or a callable)")
    else:
        keyed = dict(_items(out))
        if output not in keyed:
            raise ValueError(f"output: {output!r} is not in the model's {type(out).__name__} "
                             f"output; it has: {', '.join(map(repr, keyed)) or 'nothing'}")
        chosen = keyed[output]
    if not isinstance(chosen, Tensor):
        raise ValueError(f"output: {output!r} gives a {type(chosen).__name__}, not a tensor")
    return chosen


def describe_output(out: Any, output: OutputSpec = None) -> str:
    """One line saying which tensor ``select_output`` took (for the log), or "" for a tensor."""
    if isinstance(out, Tensor) and output is None:
        return ""
    if callable(output):
        return "the tensor output= returns"
    if output is not None:
        return f"output {output!r}"
    keys = [k for k, v in _items(out) if isinstance(v, Tensor)]
    which = "logits" if "logits" in keys else keys[0] if keys else "?"
    part = f"element {which}" if isinstance(which, int) else repr(which)
    return (f"the model returns a {type(out).__name__}; measuring its {part} "
            f"(pass output= to choose another of {', '.join(map(repr, keys))})")


class _SameNames(nn.Module):
    """A view of ``model`` whose children, parameters and buffers are registered under their own
    names, so ``named_modules`` lists the same layer names (``hidden1.act``, not
    ``model.hidden1.act``) and every measure sees the very same modules; the model itself stays
    outside the module tree and its forward is called as it is, hooks and all."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self._inner = [model]                     # a list: not a submodule
        for name, child in model.named_children():
            self.add_module(name, child)
        for name, p in model.named_parameters(recurse=False):
            self.register_parameter(name, p)
        for name, b in model.named_buffers(recurse=False):
            self.register_buffer(name, b)
        if hasattr(model, "lc_input"):
            self.lc_input = model.lc_input

    def train(self, mode: bool = True) -> "_SameNames":
        self._inner[0].train(mode)
        return super().train(mode)


class TensorOutput(_SameNames):
    """``model`` with its output reduced to one tensor (``select_output``), same names."""

    def __init__(self, model: nn.Module, output: OutputSpec = None):
        super().__init__(model)
        self.output = output

    def forward(self, *args, **kwargs) -> Tensor:
        return select_output(self._inner[0](*args, **kwargs), self.output)


class TwoLogits(_SameNames):
    """A one-logit binary classifier as two logits ``[0, z]``: softmax([0, z])[1] = sigmoid(z), so
    cross-entropy over the two equals binary cross-entropy on z and argmax equals z > 0. Lets
    torchattacks' PGD (which maximises cross-entropy) and the partition's argmax boundary read a
    binary model exactly. Same names as the model."""

    def forward(self, x: Tensor) -> Tensor:
        z = self._inner[0](x).reshape(len(x), 1)                       # (N, 1)
        return torch.cat([torch.zeros_like(z), z], dim=1)              # (N, 2)


def infer_task(out: Tensor, labels: Tensor) -> str:
    """The task of a batch of outputs (N, ...) and labels (N, ...) (see the module table)."""
    per_sample = out[0].numel() if len(out) else 0
    integer = not labels.is_floating_point()
    binary_labels = bool(((labels == 0) | (labels == 1)).all()) if labels.numel() else False
    if per_sample == 1 and labels.dim() <= 1 + (labels.dim() == 2 and labels.shape[-1] == 1) \
            and binary_labels:
        return "binary"
    if integer and labels.dim() == 1 and per_sample >= 2 and out.dim() == 2:
        return "multiclass"
    if (binary_labels and labels.dim() == 2 and out.dim() == 2 and labels.shape == out.shape
            and labels.shape[1] >= 2):
        return "multilabel"
    if not integer:
        return "regression"
    raise ValueError(f"task: cannot tell the task from outputs of shape {tuple(out.shape)} and "
                     f"{labels.dtype} labels of shape {tuple(labels.shape)}; pass task= "
                     f"({', '.join(TASKS)})")


@dataclasses.dataclass(frozen=True)
class MeasuredModel:
    """How the tracker measures a user's model (``measured_model``).

    Attributes:
        net: the module every measure runs (the model itself, ``TensorOutput`` or ``TwoLogits``).
        task: the user's task (``TASKS``), as ``config.json`` records it.
        measure_task: the task ``measure_step`` computes: ``multiclass`` for a binary model (as
            ``TwoLogits``), else ``task``.
        note: one line on which output tensor is measured ("" for a model returning a tensor).
        relabel: labels -> the labels ``net`` is measured against (binary: 0/1 integers), or None.
    """
    net: nn.Module
    task: str
    measure_task: str
    note: str
    relabel: Callable[[Tensor], Tensor] | None = None


def measured_model(model: nn.Module, x: Tensor, y: Tensor, task: str | None = None,
                   output: OutputSpec = None) -> MeasuredModel:
    """Read ``model``'s output on a few inputs ``x`` (labels ``y``) and decide how to measure it.

    A model returning anything but one tensor is wrapped in ``TensorOutput``; a binary one in
    ``TwoLogits`` with its labels as 0/1 integers (cross-entropy over [0, z] is its binary
    cross-entropy). Raises ``ValueError`` (one line) for a bad ``output`` or ``task``.
    """
    with evaluating(model), torch.no_grad():
        out = model(x)
    tensor = select_output(out, output)
    note = describe_output(out, output)
    net = model if note == "" else TensorOutput(model, output)
    task = task or infer_task(tensor, y)
    if task == "multiclass" and (tensor.dim() != 2 or tensor.shape[1] < 2
                                 or y.is_floating_point()):
        raise ValueError(f"task: multiclass needs (N, classes >= 2) logits and integer labels; "
                         f"got outputs {tuple(tensor.shape)} and {y.dtype} labels")
    if task == "multilabel" and (tensor.dim() != 2 or y.dim() != 2
                                 or tensor.shape[1] != y.shape[1]):
        raise ValueError(f"task: multilabel needs (N, k) logits and (N, k) 0/1 labels; got "
                         f"outputs {tuple(tensor.shape)} and labels {tuple(y.shape)}")
    if task == "binary":
        if tensor[0].numel() != 1:
            raise ValueError(f"task: binary needs one logit per sample; the output is "
                             f"{tuple(tensor.shape)}")
        return MeasuredModel(TwoLogits(net), task, "multiclass", note,
                             lambda labels: (labels > 0.5).long())
    return MeasuredModel(net, task, task, note)
