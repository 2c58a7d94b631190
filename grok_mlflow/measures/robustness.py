"""Adversarial robustness: accuracy under l-inf PGD (torchattacks), at several budgets.

The paper reads "delayed robustness" off this curve over training (sec. 1, fig. 1-3).
Inputs and budgets are in input units, inside the box ``domain`` (default [0, 1]: pixels, e.g.
eps = 8/255). Inputs outside the box are refused (never clamped into it); for another box
(standardized features) the attack runs on the model seen through the map [0, 1] -> box, so
torchattacks' [0, 1] clamp is the box's.

Side effects of torchattacks' ``PGD.__call__`` (3.3): it switches the model to eval mode for the
attack, draws the random start from the *global* RNG and clamps to [0, 1]. Here the RNG is forked
and seeded (so the result is deterministic and training randomness is untouched) and every
submodule's train/eval flag is restored afterwards. Parameter ``.grad`` is never written (the
attack differentiates with respect to the inputs only).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torchattacks
from torch import Tensor, nn

from .evaluation import regression_loss
from .flags import evaluating

__all__ = ["check_box", "data_box", "pgd_attack", "robust_accuracy", "robust_loss",
           "robust_multilabel_accuracy"]


class _InBox(nn.Module):
    """``model`` seen through u -> low + (high - low) u: inputs in [0, 1] for torchattacks."""

    def __init__(self, model: nn.Module, low: float, high: float):
        super().__init__()
        self.model, self.low, self.width = model, low, high - low

    def forward(self, u: Tensor) -> Tensor:
        return self.model(self.low + self.width * u)


def _check(eps: Sequence[float], steps: int, n: int,
           domain: tuple[float, float] = (0.0, 1.0)) -> None:
    width = float(domain[1]) - float(domain[0])
    for e in eps:
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not (0 <= e <= width):
            raise ValueError(f"eps must be in [0, {width:g}] (input units, the width of the "
                             f"domain {tuple(domain)}), got {e!r}")
    if not eps:
        raise ValueError("eps: give at least one budget")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if n == 0:
        raise ValueError("robust_accuracy needs at least one sample, got an empty x")


def pgd_attack(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, steps: int = 10,
               alpha: float | None = None, random_start: bool = True) -> Tensor:
    """l-inf PGD adversarial examples from torchattacks (one batch, model's device).

    Args:
        x: (B, *input_shape) in [0, 1].   y: (B,) int64 labels.
        eps: budget in [0, 1] pixel units.   steps: PGD iterations (>= 1).
        alpha: step size; default 2.5 * eps / steps (Madry et al.).
        random_start: start from a uniform point of the eps-ball (global RNG: seed it first).
    Returns:
        (B, *input_shape) adversarial inputs with |x_adv - x|_inf <= eps and values in [0, 1].
    """
    alpha = 2.5 * eps / steps if alpha is None else alpha
    attack = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)
    return attack(x, y)


def robust_accuracy(model: nn.Module, x: Tensor, y: Tensor, *, eps: float | Sequence[float],
                    steps: int = 10, alpha: float | None = None, random_start: bool = True,
                    seed: int = 0, batch_size: int | None = None,
                    domain: tuple[float, float] = (0.0, 1.0)) -> dict[float, Tensor]:
    """Accuracy of ``model`` on l-inf PGD adversarial examples of (x, y), per budget.

    Args:
        model: a classifier returning logits; runs in eval mode (modes restored afterwards).
        x: (N, *input_shape) inputs in [0, 1], N >= 1 (moved to the model's device).
        y: (N,) int64 labels.
        eps: one budget or a list, each in [0, 1] pixel units (0 gives the clean accuracy).
        steps: PGD iterations (>= 1).
        alpha: step size in pixel units; default 2.5 * eps / steps for each eps.
        random_start: start each attack at a uniform point of the eps-ball.
        seed: seeds the random start; the global RNG state is saved and restored.
        batch_size: samples per attack batch (bounds memory); default all at once up to 1,024.
        domain: (low, high) box the inputs lie in and the attack stays in (default [0, 1]
            pixels; e.g. the range of standardized features).
    Returns:
        {eps: accuracy} with accuracies as float64 0-dim tensors in [0, 1].
    Raises:
        ValueError: x outside ``domain`` (never clamped), eps outside [0, domain width],
            steps < 1, or empty x.

    Example:
        acc = robust_accuracy(net, x_test[:500], y_test[:500], eps=[0.05, 0.1], steps=10)
        {e: round(float(a), 3) for e, a in acc.items()}
    """
    budgets = [float(e) for e in (eps if isinstance(eps, Sequence) else [eps])]
    _check(budgets, steps, len(x), domain)
    check_box(domain, "x", x)
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    low, high = float(domain[0]), float(domain[1])
    if (low, high) != (0.0, 1.0):         # attack in [0, 1] coordinates of the box
        width = high - low
        model, x = _InBox(model, low, high), (x - low) / width
        budgets_in = {e: e / width for e in budgets}
        alpha = None if alpha is None else alpha / width
    else:
        budgets_in = {e: e for e in budgets}
    batch_size = batch_size or min(len(x), 1024)
    rng_devices = [device.index or 0] if device.type == "cuda" else []
    result: dict[float, Tensor] = {}
    # enable_grad: the attack differentiates w.r.t. the inputs even inside a caller's no_grad
    with evaluating(model), torch.random.fork_rng(devices=rng_devices), torch.enable_grad():
        torch.manual_seed(seed)
        for e in budgets:
            correct = torch.zeros((), dtype=torch.float64, device=device)
            for start in range(0, len(x), batch_size):
                xb, yb = x[start:start + batch_size], y[start:start + batch_size]
                adv = pgd_attack(model, xb, yb, eps=budgets_in[e], steps=steps, alpha=alpha,
                                 random_start=random_start)
                with torch.no_grad():
                    correct += (model(adv).argmax(dim=1) == yb).sum()
            result[e] = correct / len(x)
    return result


def robust_loss(model: nn.Module, x: Tensor, y: Tensor, *, eps: float | Sequence[float],
                steps: int = 10, alpha: float | None = None, seed: int = 0,
                loss_fn=None, domain: tuple[float, float] = (0.0, 1.0)) -> dict[float, Tensor]:
    """Mean loss of a regression ``model`` under l-inf PGD that maximises it, per budget.

    torchattacks' PGD maximises cross-entropy, which a regression model has no use for; this is
    the same attack (Madry et al.: a uniform random start in the eps-ball, ``steps`` signed
    gradient steps of ``alpha``, projection onto the ball and onto [0, 1]) on the task's loss.

    Args:
        model: returns (N, ...) predictions; runs in eval mode (modes restored afterwards).
        x: (N, *input_shape) inputs in [0, 1].   y: targets of the output's size per sample.
        eps: one budget or a list, each in [0, 1] input units (0 gives the clean loss).
        steps: PGD iterations (>= 1).   alpha: step size; default 2.5 * eps / steps.
        seed: seeds the random start; the global RNG state is saved and restored.
        loss_fn: ``loss_fn(prediction, target)`` batch mean; default mean squared error.
        domain: (low, high) box the inputs lie in and the attack stays in (default [0, 1]).
    Returns:
        {eps: mean loss under attack} as float64 0-dim tensors (>= the clean loss, up to the
        attack's success).

    Example:
        robust_loss(regressor, x_test[:200], y_test[:200], eps=[0.05, 0.1])
    """
    fn = loss_fn or regression_loss
    return _attack_on_loss(model, x, y, eps, steps, alpha, seed, domain, fn,
                           lambda out, labels: torch.as_tensor(fn(out, labels)).double())


def _attack_on_loss(model, x, y, eps, steps, alpha, seed, domain, fn, score) -> dict:
    """{eps: ``score(model(adv), y)``} for ``_pgd_on_loss``'s adversarial inputs: the checks
    (budgets, x in ``domain``), eval mode and a forked, seeded RNG (as ``robust_accuracy``)."""
    budgets = [float(e) for e in (eps if isinstance(eps, Sequence) else [eps])]
    _check(budgets, steps, len(x), domain)
    check_box(domain, "x", x)
    low, high = float(domain[0]), float(domain[1])
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    rng_devices = [device.index or 0] if device.type == "cuda" else []
    result: dict[float, Tensor] = {}
    with evaluating(model), torch.random.fork_rng(devices=rng_devices), torch.enable_grad():
        torch.manual_seed(seed)
        for e in budgets:
            adv = _pgd_on_loss(model, x, y, e, steps, alpha, fn, low, high)
            with torch.no_grad():
                result[e] = score(model(adv), y)
    return result


def _pgd_on_loss(model, x, y, e, steps, alpha, fn, low, high) -> Tensor:
    """Madry et al.'s l-inf PGD that maximises ``fn(model(x), y)``: a uniform random start in
    the eps-ball (global RNG), ``steps`` signed gradient steps, projection onto the ball and
    the box [low, high]."""
    step = 2.5 * e / steps if alpha is None else alpha
    adv = (x + torch.empty_like(x).uniform_(-e, e)).clamp(low, high).detach()
    for _ in range(steps):
        adv.requires_grad_(True)
        grad, = torch.autograd.grad(fn(model(adv), y), adv)
        adv = adv.detach() + step * grad.sign()
        adv = torch.min(torch.max(adv, x - e), x + e).clamp(low, high).detach()
    return adv


def robust_multilabel_accuracy(model: nn.Module, x: Tensor, y: Tensor, *,
                               eps: float | Sequence[float], steps: int = 10,
                               alpha: float | None = None, seed: int = 0,
                               domain: tuple[float, float] = (0.0, 1.0)) -> dict[float, Tensor]:
    """Multi-label exact-match accuracy (every label right) under l-inf PGD on the summed binary
    cross-entropy of the labels, per budget (the same attack as ``robust_loss``).

    Args:
        x: (N, *input_shape) inputs in ``domain``.   y: (N, k) 0/1 labels.
        eps, steps, alpha, seed, domain: as ``robust_loss``'s.
    Returns:
        {eps: exact-match accuracy} as float64 0-dim tensors in [0, 1].
    """
    def summed_bce(out: Tensor, labels: Tensor) -> Tensor:
        return nn.functional.binary_cross_entropy_with_logits(
            out, labels.reshape(out.shape).to(out.dtype), reduction="sum")

    def exact_match(out: Tensor, labels: Tensor) -> Tensor:
        return ((out > 0) == (labels > 0.5)).flatten(1).all(dim=1).double().mean()

    return _attack_on_loss(model, x, y, eps, steps, alpha, seed, domain, summed_bce,
                           exact_match)


def data_box(*xs: Tensor) -> tuple[float, float]:
    """The input box of continuous inputs: (0, 1) when every value lies in [0, 1] (pixels, the
    paper's setting), else the global (min, max) over every feature of ``xs`` (one box for all
    features: PGD's budgets and LC's random points then share one scale, as pixels do)."""
    low = min(float(x.min()) for x in xs if x.numel())
    high = max(float(x.max()) for x in xs if x.numel())
    if 0.0 <= low and high <= 1.0:
        return (0.0, 1.0)
    return (low, high) if high > low else (low, low + 1.0)


def check_box(domain: tuple[float, float], what: str, *xs: Tensor) -> None:
    """``ValueError`` in one line when ``xs`` lie outside the box ``domain`` (never a silent
    clamp): the range found and the way out."""
    low, high = float(domain[0]), float(domain[1])
    if not high > low:
        raise ValueError(f"domain must be (low, high) with low < high, got {tuple(domain)}")
    tol = 1e-6 * (high - low)
    lo = min(float(x.min()) for x in xs if x.numel())
    hi = max(float(x.max()) for x in xs if x.numel())
    if lo < low - tol or hi > high + tol:
        raise ValueError(f"{what} lie outside domain ({low:g}, {high:g}): min {lo:.4g}, max "
                         f"{hi:.4g}; give the box they lie in (domain=None: the data's own)")
