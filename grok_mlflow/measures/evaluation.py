"""Losses and clean accuracy: pure functions of (model, inputs) returning tensors.

Example:
    acc, loss = accuracy_and_loss(net, x, y, "cross_entropy")   # 0-dim tensors
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..settings import SettingsError
from .flags import evaluating

__all__ = ["LOSSES", "accuracy_and_loss", "label_accuracy", "loss_function", "multilabel_loss",
           "regression_loss"]


def _mse_one_hot(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean squared error against one-hot targets (Omnigrok's MNIST setup), mean over elements."""
    return F.mse_loss(logits, F.one_hot(labels, logits.shape[-1]).to(logits.dtype))


LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "cross_entropy": F.cross_entropy,
    "mse": _mse_one_hot,
}


def loss_function(name: str, float64: bool = False) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss called ``name``; an unknown name lists the valid ones.

    ``float64``: the loss computed from the logits cast to float64 (the grokking literature's
    ``cross_entropy_high_precision``): a float64 0-dim loss whose gradient flows back to the
    float32 logits. Near-zero losses keep their digits (float32 log-softmax rounds a loss of
    1e-8 to 0 or to ~6e-8).
    """
    try:
        fn = LOSSES[name]
    except KeyError:
        raise SettingsError(f"loss: unknown value {name!r}; valid: " + ", ".join(LOSSES)) from None
    if not float64:
        return fn
    return lambda logits, labels: fn(logits.double(), labels)


def accuracy_and_loss(model: nn.Module, x: Tensor, y: Tensor, loss: str = "cross_entropy",
                      batch_size: int = 4096, *, task: str = "multiclass",
                      loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
                      ) -> tuple[Tensor | None, Tensor]:
    """Clean accuracy in [0, 1] and mean loss over (x, y), in eval mode, batched.

    Args:
        loss: the loss's name (``LOSSES``) for ``task`` multiclass.
        task: ``multiclass`` (argmax accuracy; a binary model wrapped as ``tasks.TwoLogits`` is
            one), ``multilabel`` (independent logits, (N, k) 0/1 labels: exact-match accuracy,
            every label right; binary cross-entropy) or ``regression`` (no accuracy: None; mean
            squared error).
        loss_fn: the user's own ``loss_fn(output, labels)`` (a batch mean), instead of either.
    The model's train/eval modes are restored afterwards. Returns float64 0-dim tensors on
    the model's device (no host sync), the accuracy None for regression.
    """
    fn = loss_fn or (regression_loss if task == "regression" else multilabel_loss
                     if task == "multilabel" else loss_function(loss))
    correct = torch.zeros((), dtype=torch.float64, device=x.device)
    total_loss = torch.zeros((), dtype=torch.float64, device=x.device)
    with evaluating(model), torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            out = model(xb)
            if task == "multilabel":
                correct += ((out > 0) == (yb > 0.5)).flatten(1).all(dim=1).sum()
            elif task != "regression":
                correct += (out.argmax(dim=1) == yb).sum()
            total_loss += torch.as_tensor(fn(out, yb)).double() * len(xb)
    return (None if task == "regression" else correct / len(x)), total_loss / len(x)


def regression_loss(out: Tensor, y: Tensor) -> Tensor:
    """Mean squared error of a regression output against its targets (reshaped to its shape)."""
    return F.mse_loss(out, y.reshape(out.shape).to(out.dtype))


def multilabel_loss(out: Tensor, y: Tensor) -> Tensor:
    """Binary cross-entropy of independent logits against 0/1 labels, mean over elements
    (``BCEWithLogitsLoss``)."""
    return F.binary_cross_entropy_with_logits(out, y.reshape(out.shape).to(out.dtype))


def label_accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 4096) -> Tensor:
    """Multi-label: the fraction of (sample, label) pairs predicted right (logit > 0 ==
    label > 0.5), in eval mode; a float64 0-dim tensor."""
    correct = torch.zeros((), dtype=torch.float64, device=x.device)
    with evaluating(model), torch.no_grad():
        for start in range(0, len(x), batch_size):
            out = model(x[start:start + batch_size])
            correct += ((out > 0) == (y[start:start + batch_size] > 0.5)).sum()
    return correct / max(y.numel(), 1)
