"""Measuring one step: model + probes -> metric tensors. Pure: no MLflow, no host sync.

``measure_step`` computes everything the tracker logs at a measured step, keyed as in MLflow:

==============================  =========================================================
``loss/{split}``, ``acc/{split}``   mean loss and clean accuracy on ``probes.accuracy``
``lc/{set}``                    mean local complexity over ``probes.lc[set]`` (train, test,
                                random); ``.../ci_low``, ``.../ci_high``: 99% CI;
                                ``.../layer_{i}``: mean LC of nonlinearity i (1-based).
                                With several radii: ``lc_r{radius}/{set}``.
``lc/boundary``, ``boundary/*``  LC around points on the decision boundary, bisected between
                                pairs of the test LC points of different predicted classes
                                (``lc_boundary``; classification of continuous inputs only):
                                ``boundary/pairs`` crossed, ``boundary/margin`` the mean top-two
                                output gap there, ``boundary/test_margin`` the same at the test
                                points
``adv/acc/eps_{eps}``           accuracy under l-inf PGD with budget eps (``adversarial``);
                                regression: ``adv/loss/eps_{eps}``, the loss under PGD that
                                maximises it (no ``acc/*`` at all for regression)
``deform/{stat}/layer_{i}``     mean over ``probes.lc["train"]`` of the neighbourhood graph's
                                eccentricity / diameter at the output of nonlinearity i,
                                relative to the input (``deform``; first radius; see
                                ``grok_mlflow.measures.deformation``); ``.../ci_low``, ``ci_high``
==============================  =========================================================

Every value is a 0-dim tensor on the model's device; the recorder moves them to the host in one
transfer.

Example:
    metrics = measure_step(model, probes, TrackerSettings(), adversarial=True)
    metrics["lc/train"]                      # tensor(7.31, dtype=torch.float64)
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.distributed as dist
from matplotlib.figure import Figure
from torch import Tensor, nn

from ..findings.plots import partition_figure
from ..measures.boundary import boundary_points, top_two_gap
from ..measures.complexity import LocalComplexity, local_complexity
from ..measures.deformation import deformation
from ..measures.evaluation import accuracy_and_loss, label_accuracy
from ..measures.flags import evaluating
from ..measures.partition import partition_slice
from ..measures.robustness import robust_accuracy, robust_loss, robust_multilabel_accuracy
from ..settings import TrackerSettings
from .costs import MeasureCosts
from .distributed import Shards
from .probes import Probes

__all__ = ["adv_budgets", "has_boundary", "lc_prefix", "measure_step"]


def lc_prefix(radius: float, radii: tuple[float, ...]) -> str:
    """``lc`` for a single configured radius, else ``lc_r{radius}`` (e.g. ``lc_r0.05``)."""
    return "lc" if len(radii) == 1 else f"lc_r{radius:g}"


def adv_budgets(settings: TrackerSettings, domain: tuple[float, float]) -> tuple[float, ...]:
    """The PGD budgets: ``adv_eps`` when given, else 0.05, 0.1 and 0.2 times the width of the
    input range (``domain``; 0.05, 0.1, 0.2 for [0, 1] pixels)."""
    if settings.adv_eps:
        return settings.adv_eps
    width = domain[1] - domain[0]
    return tuple(round(f * width, 12) for f in (0.05, 0.1, 0.2))


def measure_step(model: nn.Module, probes: Probes, settings: TrackerSettings, *,
            adversarial: bool = False, deform: bool = False, task: str = "multiclass",
            loss_fn=None, shards: Shards | None = None,
            costs: MeasureCosts | None = None) -> dict[str, Tensor]:
    """Accuracy, loss and LC (and PGD accuracy with ``adversarial``) of ``model`` on ``probes``.

    The model runs in eval mode; its modes, gradients and the global RNG are left as they were
    (each measure's own guarantee). PGD keeps adversarial inputs in the probes' input box
    (``probes.domain``: [0, 1] for pixels, else the data's); budgets from ``adv_budgets``.
    ``task``: ``multiclass`` (a binary model as ``tasks.TwoLogits``), ``multilabel``
    (exact-match ``acc/*`` and per-label ``acc_label/*``; PGD on the summed binary
    cross-entropy) or ``regression`` (no accuracy; PGD reports the loss it reaches);
    ``loss_fn``: the user's loss, else the task's.
    ``shards`` (``distributed.Shards``, under ``torch.distributed``): each rank measures its share
    of the accuracy and LC points and every rank gets the whole values; PGD and the deformation
    run on rank 0 alone, and only rank 0's metrics hold them. PGD stays in the probes' input
    box (``probes.domain``: [0, 1] for pixels, else the data's).
    """
    s, shards = settings, shards or Shards()
    metrics: dict[str, Tensor] = {}
    for split, (x, y) in probes.accuracy.items():
        acc, loss = _accuracy_and_loss(model, x, y, s.loss, task, loss_fn, shards)
        metrics[f"loss/{split}"] = loss
        if acc is not None:
            metrics[f"acc/{split}"] = acc
        if task == "multilabel" and shards.size == 1:     # per label, next to exact match
            metrics[f"acc_label/{split}"] = label_accuracy(model, x, y)
    for set_name, points in probes.lc.items():
        metrics.update(_lc_metrics(model, points, set_name, s, shards))
    if s.lc_boundary and has_boundary(probes, task):
        metrics.update(_boundary(model, probes.lc["test"], s, shards))
    if not shards.main:            # PGD, the deformation: the writing rank's alone
        return metrics
    if deform:
        d = deformation(model, probes.lc["train"], radius=s.lc_radius[0],
                        n_directions=max(2, s.lc_directions), seed=s.seed,
                        input_module=s.lc_input or None)
        for stat in ("eccentricity", "diameter"):
            mean, low, high = d.summary(stat)
            for i in range(1, len(mean)):
                key = f"deform/{stat}/layer_{i}"
                metrics[key], metrics[f"{key}/ci_low"], metrics[f"{key}/ci_high"] = (
                    mean[i], low[i], high[i])
    budgets = adv_budgets(s, probes.domain)
    if adversarial and budgets:
        with costs.timed("pgd", probes.adv[0].device) if costs else nullcontext():
            metrics.update(_adversarial(model, probes, s, budgets, task, loss_fn))
    return metrics


def _lc_metrics(model, points: Tensor, set_name: str, s: TrackerSettings,
                shards: Shards) -> dict[str, Tensor]:
    """``lc/{set}`` (per radius), its 99% interval and its per-layer means, for one point set."""
    metrics: dict[str, Tensor] = {}
    for radius, lc in _local_complexity(model, points, s, shards).items():
        key = f"{lc_prefix(radius, s.lc_radius)}/{set_name}"
        metrics[key] = lc.mean()
        metrics[f"{key}/ci_low"], metrics[f"{key}/ci_high"] = lc.confidence_interval(0.99)
        for i, layer_mean in enumerate(lc.layer_mean(), start=1):
            metrics[f"{key}/layer_{i}"] = layer_mean
    return metrics


def has_boundary(probes: Probes, task: str) -> bool:
    """Whether a run has a decision boundary to measure LC at: a classification (multiclass, a
    binary model counts) of continuous inputs, with at least one pair of test points."""
    test = probes.lc.get("test")
    return (task == "multiclass" and test is not None and test.is_floating_point()
            and len(test) >= 2)


def _boundary(model, test: Tensor, s: TrackerSettings, shards: Shards) -> dict[str, Tensor]:
    """``boundary/pairs`` (the pairs of test LC points, first half against second, whose ends
    the model classifies differently), ``boundary/margin`` (mean top-two gap at the points
    bisected between them, ``boundary.boundary_points``) beside ``boundary/test_margin`` (the
    same at the test points), and LC around the boundary points as the set ``boundary``."""
    half = len(test) // 2
    found = boundary_points(model, test[:half], test[half:2 * half])
    metrics = {"boundary/pairs": torch.tensor(float(found.pairs), dtype=torch.float64,
                                              device=test.device)}
    if not found.pairs:
        return metrics
    with evaluating(model), torch.no_grad():
        test_margin = top_two_gap(model(test[:2 * half]))
    metrics["boundary/margin"] = found.margin.double().mean()
    metrics["boundary/test_margin"] = test_margin.double().mean()
    metrics.update(_lc_metrics(model, found.points, "boundary", s, shards))
    return metrics


def _adversarial(model, probes: Probes, s: TrackerSettings, budgets, task,
                 loss_fn) -> dict[str, Tensor]:
    """PGD's metrics: ``adv/loss/eps_*`` for regression, else ``adv/acc/eps_*``."""
    x, y = probes.adv
    if task == "regression":
        return {f"adv/loss/eps_{eps:g}": loss for eps, loss in robust_loss(
            model, x, y, eps=list(budgets), steps=s.adv_steps, seed=s.seed, loss_fn=loss_fn,
            domain=probes.domain).items()}
    attack = robust_multilabel_accuracy if task == "multilabel" else robust_accuracy
    return {f"adv/acc/eps_{eps:g}": acc for eps, acc in attack(
        model, x, y, eps=list(budgets), steps=s.adv_steps, seed=s.seed,
        domain=probes.domain).items()}


def _accuracy_and_loss(model, x, y, loss, task, loss_fn, shards: Shards):
    """``accuracy_and_loss`` over all of (x, y), each rank on its share."""
    if shards.size == 1:
        return accuracy_and_loss(model, x, y, loss, task=task, loss_fn=loss_fn)
    xs, ys = shards.part(x), shards.part(y)
    acc = mean_loss = None
    if len(xs):
        acc, mean_loss = accuracy_and_loss(model, xs, ys, loss, task=task, loss_fn=loss_fn)
    zero = torch.zeros((), dtype=torch.float64, device=x.device)
    total_loss = shards.sum(zero if mean_loss is None else mean_loss * len(xs))
    correct = shards.sum(zero if acc is None else (acc * len(xs)).round())
    return (None if task == "regression" else correct / len(x)), total_loss / len(x)


def _local_complexity(model, points: Tensor, s: TrackerSettings,
                      shards: Shards) -> dict[float, LocalComplexity]:
    """LC of every point of ``points`` at every radius, each rank on its share (the per-point
    counts gathered in rank order: exactly a single process's)."""
    mine = shards.part(points)
    if len(mine):
        by_radius = local_complexity(model, mine, radius=list(s.lc_radius),
                                     n_directions=s.lc_directions, seed=s.seed,
                                     input_module=s.lc_input or None)
    else:                          # more ranks than points: this one has none
        by_radius = {r: None for r in s.lc_radius}  # type: ignore[misc]  # filled by the gather
    if shards.size == 1:
        return by_radius
    any_lc = next(iter(by_radius.values()))
    names = [n for n in _gather_names(any_lc, shards) if n][0]   # the same at every radius
    out = {}
    for r, lc in by_radius.items():
        rows = shards.gather_rows(lc.per_layer if lc is not None else torch.empty(0, 0,
                                                                                   dtype=torch.long))
        out[r] = LocalComplexity(rows, names, r, s.lc_directions)
    return out


def _gather_names(lc, shards: Shards) -> list:
    names: list = [None] * shards.size
    dist.all_gather_object(names, lc.layer_names if lc is not None else None)
    return names


def partition_snapshot(net: nn.Module, probes: Probes, settings: TrackerSettings, task: str,
                       title: str) -> tuple[Figure, dict[str, float]]:
    """The partition on the probes' plane (``partition.partition_slice``) drawn as a figure,
    and its ``partition/*`` metrics (a regression has no decision boundary to be near)."""
    part = partition_slice(net, probes.partition_x, resolution=settings.partition_resolution,
                           seed=settings.seed, input_module=settings.lc_input or None)
    metrics = part.metrics()
    if task == "regression":
        metrics.pop("partition/regions_near_boundary", None)
    return partition_figure(part, probes.partition_labels, title), metrics
