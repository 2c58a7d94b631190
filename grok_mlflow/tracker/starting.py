"""Starting a tracked run: everything about the user's model and data that can fail, checked
before any run exists (``prepare``), then what the run records when it opens (``open_run``).

``prepare`` draws the fixed points (``probes.draw_probes``), settles the input box and the PGD
budgets, chooses the measured tensor and the task (``tasks.measured_model``), checks the labels
against the model's classes, resolves LC's input and its number of directions P, and measures
one LC probe: a bad value raises ``ValueError`` in one line, and the tracker has not yet
started its MLflow run.

``open_run`` writes the run's params (a value MLflow already holds differently kept as a tag),
its tags, ``config.json`` (what the run measured and how) and ``analysis/points.pt`` (what
``grok-mlflow partition``, ``radius`` and ``compare-regions`` rebuild a run from), all through
the ``Recorder``.

Example:
    ready = prepare(model, (x, y), (x_te, y_te), TrackerSettings(), schedule)
    ready.task, ready.settings.lc_directions, ready.lc_layers
    # -> ('multiclass', 25, ['layer_1', 'layer_2'])
"""

from __future__ import annotations

import dataclasses
import math
import platform
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from ..console import logger
from ..measures.complexity import default_directions, local_complexity
from ..measures.flags import evaluating
from ..measures.network import embedded, input_module_of
from ..measures.partition import resolution_for
from ..measures.tasks import TASKS, OutputSpec, measured_model
from ..run_tags import package_version
from ..settings import TrackerSettings, format_value
from ..store.recorder import NullRecorder, Recorder
from .costs import device_sync
from .probes import Data, Probes, draw_probes
from .schedule import MeasureSchedule
from .step import adv_budgets, has_boundary

__all__ = ["POINTS_CAP_BYTES", "SNAPSHOT_BUDGET_S", "Prepared", "analysis_points",
           "auto_resolution", "check_choices", "open_run", "prepare", "run_config_json",
           "settings_params"]

SNAPSHOT_BUDGET_S = 4.0    # partition_resolution 0: a snapshot's forward passes, at most this
_RESOLUTIONS: dict[tuple, int] = {}     # one choice per model and input shape in a process


@dataclass
class Prepared:
    """What the tracker measures with: the points, the box and budgets, the measured model and
    task, the resolved settings (LC's input and P) and schedule (no PGD for token inputs)."""

    probes: Probes
    domain: tuple[float, float]
    adv_eps: tuple[float, ...]
    schedule: MeasureSchedule
    settings: TrackerSettings
    net: nn.Module              # the model, or a view of it returning the measured tensor
    task: str                   # the task of the user's outputs
    measured_task: str          # the task the measured tensor is scored as
    output_note: str            # which tensor of a structured output is measured ("" for one)
    lc_layers: list[str]
    tokens: bool                # the inputs are token ids (LC in the embedding, no PGD)
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None   # the user's, as measured


def check_choices(task: str | None, output: OutputSpec) -> None:
    """The tracker's ``task`` and ``output`` arguments, checked before anything else."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task: unknown value {task!r}; valid: {', '.join(TASKS)} (or "
                         "None: inferred from the outputs and labels)")
    if not (output is None or callable(output) or isinstance(output, (str, int))):
        raise ValueError(f"output: must be a key (str), an index (int) or a callable, got "
                         f"{type(output).__name__}")


def measured_loss(loss_fn: Callable[[Tensor, Tensor], Tensor] | None,
                  task: str) -> Callable[[Tensor, Tensor], Tensor] | None:
    """The user's loss as the measured model's outputs need it (a binary model's two logits
    [0, z] back to z), or None (the task's own)."""
    if loss_fn is None or task != "binary":
        return loss_fn
    return lambda two, labels: loss_fn(two[:, 1], labels.to(two.dtype))


def prepare(model: nn.Module, train: Data, test: Data, settings: TrackerSettings,
            schedule: MeasureSchedule, *, domain: tuple[float, float] | None = None,
            task: str | None = None, output: OutputSpec = None,
            loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None) -> Prepared:
    """The checks and choices above, in order (see the module)."""
    device = next(model.parameters()).device
    probes = draw_probes(train, test, settings, device, domain)
    domain = probes.domain                       # the data's box when none was given
    adv_eps = adv_budgets(settings, domain)
    lc_input = input_module_of(model, settings.lc_input)
    tokens = not probes.lc["train"].is_floating_point()
    if tokens and not lc_input:
        raise ValueError("the inputs are integers (token ids): set lc_input to the module "
                         "whose output is continuous (the embedding), e.g. "
                         "TrackerSettings(lc_input='embed')")
    if tokens:                                   # PGD in input units needs a continuous input
        adv_eps, schedule = (), schedule.without_adversarial()
    dtype = next(model.parameters()).dtype
    if probes.lc["train"].is_floating_point() and probes.lc["train"].dtype != dtype:
        logger.info(f"grok-mlflow: the inputs are {probes.lc['train'].dtype} and the model "
                    f"{dtype}: the measured points are cast to {dtype}")
        probes = probes.to_dtype(dtype)
    x, y = probes.accuracy["train"]
    chosen = measured_model(model, x[:8], y[:8], task, output)
    if chosen.measure_task == "multiclass" and not chosen.relabel:
        with evaluating(chosen.net), torch.no_grad():
            classes = chosen.net(x[:1]).shape[-1]
        probes.check_labels(classes)
    if chosen.relabel is not None:
        probes = probes.with_labels(chosen.relabel)
    if settings.lc_boundary and not has_boundary(probes, chosen.measure_task):
        logger.info(f"grok-mlflow: no decision boundary to measure LC at ("
                    f"{'token inputs' if tokens else f'a {chosen.measure_task} task'}): lc/boundary "
                    f"is not measured")
    x = probes.lc["train"][:1]
    with evaluating(chosen.net), torch.no_grad():     # LC's input space: the embedding's
        dim = (embedded(chosen.net, lc_input, x)[1][0].numel() if lc_input
               else math.prod(x.shape[1:]))
    p = settings.lc_directions
    if p > dim:
        raise ValueError(f"lc_directions: must be <= the input dimension {dim} (LC's "
                         f"directions span the input), got {p}; 0 = min(25, {dim})")
    settings = dataclasses.replace(settings, lc_input=lc_input,
                                   lc_directions=p or default_directions(dim))
    probe = local_complexity(chosen.net, probes.lc["train"][:1], radius=settings.lc_radius[0],
                             n_directions=settings.lc_directions,
                             input_module=settings.lc_input or None)
    if schedule.partition_steps and not settings.partition_resolution:
        settings = dataclasses.replace(settings, partition_resolution=auto_resolution(
            chosen.net, probes.lc["train"][:1], settings.lc_input))
    return Prepared(probes=probes, domain=domain, adv_eps=adv_eps, schedule=schedule,
                    settings=settings, net=chosen.net, task=chosen.task,
                    measured_task=chosen.measure_task, output_note=chosen.note,
                    lc_layers=probe.layer_names, tokens=tokens,
                    loss_fn=measured_loss(loss_fn, chosen.task))


def auto_resolution(net: nn.Module, x: Tensor, lc_input: str = "") -> int:
    """``partition_resolution`` 0: the plane resolution whose snapshot costs about
    ``SNAPSHOT_BUDGET_S`` (``partition.resolution_for``; at most 512, at least 64), from a
    forward over copies of ``x`` (one point) timed here, the best of three. Said once on stderr;
    the settings (``config.json``) record the value. Members of one stacked group, same model
    and input shape, get the first one's choice (one process), so their snapshots compare."""
    key = (type(net).__name__, sum(p.numel() for p in net.parameters()), tuple(x.shape[1:]),
           lc_input)
    if key in _RESOLUTIONS:
        return _RESOLUTIONS[key]
    n = max(16, min(8192, 2 ** 24 // max(1, x[:1].numel())))      # at most 64 MiB of float32
    batch = x[:1].expand(n, *x.shape[1:]).contiguous()
    seconds = []
    sync = device_sync(batch.device)                        # time the kernels, not launches
    with evaluating(net), torch.no_grad():
        for _ in range(3):
            sync()
            start = time.perf_counter()
            net(batch)
            sync()
            seconds.append((time.perf_counter() - start) / n)
    per_point = min(seconds)
    resolution = _RESOLUTIONS[key] = resolution_for(per_point, SNAPSHOT_BUDGET_S)
    logger.info(f"grok-mlflow: partition snapshots at {resolution}x{resolution} (a forward costs "
                f"{per_point * 1e6:.3g} us per point here: ~{SNAPSHOT_BUDGET_S:g} s per snapshot at "
                f"most; partition_resolution sets it)")
    return resolution


def open_run(recorder: Recorder | NullRecorder, model: nn.Module, ready: Prepared, *, params: dict[str, str],
             run_name: str, extra_config: Mapping[str, Any], output: Any,
             tags: Mapping[str, str] | None = None) -> None:
    """Params (stale ones kept as tags), tags (the caller's ``tags`` under the package's own),
    ``config.json`` and the analysis points; the notes a user should see on stderr (PGD off for
    tokens, the data's own box)."""
    s = ready.settings
    if ready.tokens and s.adv_points:
        logger.info("grok-mlflow: PGD off: the inputs are token ids; robustness is measured only "
                    "for continuous inputs in [0, 1]")
    elif tuple(ready.domain) != (0.0, 1.0) and s.adv_points:
        logger.info(f"grok-mlflow: the inputs lie outside [0, 1]: PGD and LC's random points use "
                    f"their box {tuple(round(v, 6) for v in ready.domain)} (budgets "
                    f"{', '.join(f'{e:g}' for e in ready.adv_eps)} in input units)")
    existing = recorder.params()
    device = next(model.parameters()).device
    given = dict(tags or {})
    tags = {"seed": str(s.seed),
            # the model is on this device already: naming it initialises nothing new
            "grok_mlflow.device": (torch.cuda.get_device_name(device)
                                   if device.type == "cuda" else f"cpu ({platform.machine()})")}
    # MLflow params cannot change. `mlflow run -P preset=...` logs every main parameter at its
    # default first: keep the true values visible (tags, config.json) and say so.
    stale = sorted(k for k, v in params.items() if k in existing
                   and not _same_value(existing[k], v))
    if not recorder.attach:              # a run another integration owns keeps its name
        tags["mlflow.runName"] = run_name
    if stale:
        tags["grok_mlflow.stale_params"] = ",".join(stale)
        tags.update({f"setting.{k}": params[k] for k in stale})
        logger.warning(f"grok-mlflow: warning: MLflow logged {', '.join(stale)} before the preset was "
                       "applied; the true values are in the tags setting.<name> and config.json. Use "
                       "`mlflow run . -e preset -P preset=...` for exact params.")
    recorder.log_params({k: v for k, v in params.items() if k not in existing})
    recorder.set_tags({**given, **tags})
    if ready.output_note:
        logger.info(f"grok-mlflow: {ready.output_note}")
    config = run_config_json(model, s, ready.probes, ready.schedule, layers=ready.lc_layers,
                             adv_eps=ready.adv_eps, task=ready.task,
                             output=ready.output_note or "the model's tensor",
                             extra=extra_config,
                             output_key=output if isinstance(output, (str, int)) else None)
    recorder.log_dict(config, "config.json")
    recorder.log_tensors(analysis_points(ready.probes), "analysis/points.pt")


def run_config_json(model: nn.Module, settings: TrackerSettings, probes: Probes,
                    schedule: MeasureSchedule, *, layers: list[str], adv_eps: tuple[float, ...],
                    task: str, output: str, extra: Mapping[str, Any],
                    output_key: str | int | None = None) -> dict[str, Any]:
    """A tracked run's ``config.json``: the task, the resolved tracker settings, the model (class,
    size, measured layers), versions, device, data shapes, the partition points, the PGD budgets
    and the schedule, then ``extra`` (e.g. the project's settings, for rebuilding the run)."""
    p = probes
    return {"task": task, "output": output, "tracker_settings": dataclasses.asdict(settings),
            "model": {"class": f"{type(model).__module__}.{type(model).__name__}",
                      "parameters": sum(q.numel() for q in model.parameters()),
                      "measured_layers": list(layers)},
            "grok_mlflow_version": package_version(), "torch_version": torch.__version__,
            "device": str(next(model.parameters()).device),
            "input_shape": list(p.input_shape), "n_train": p.n_train, "n_test": p.n_test,
            "n_accuracy": {split: len(x) for split, (x, _) in p.accuracy.items()},
            "lc_layers": {f"layer_{i + 1}": name for i, name in enumerate(layers)},
            "partition_points": {"train_index": p.partition_index, "labels": p.partition_labels},
            "domain": list(p.domain), "adv_eps": list(adv_eps), "schedule": schedule.as_dict(),
            # what grok-mlflow partition / radius / compare-regions rebuild a run from
            "analysis": {"points": "analysis/points.pt", "model": "runs:/<run>/model",
                         "output": output_key, "lc_input": settings.lc_input},
            **extra}


POINTS_CAP_BYTES = 16 * 2 ** 20     # the recorded training points: at most 16 MiB, 1,000 points


def analysis_points(probes: Probes) -> dict[str, Tensor]:
    """What the analysis commands start from, recorded with every run
    (``analysis/points.pt``): the partition plane's three points and their labels, and a
    seeded sample of training points with labels (the first of the probes' fixed accuracy
    points: at most 1,000 and ``POINTS_CAP_BYTES``, so an ImageNet run stays small)."""
    x, y = probes.accuracy["train"]
    per_point = max(x[:1].numel() * x.element_size(), 1)
    n = max(1, min(len(x), 1000, POINTS_CAP_BYTES // per_point))
    return {"train_x": x[:n].detach().cpu(), "train_y": y[:n].detach().cpu(),
            "partition_x": probes.partition_x.detach().cpu(),
            "partition_labels": torch.as_tensor(probes.partition_labels)}


def settings_params(settings: TrackerSettings, prefix: str = "") -> dict[str, str]:
    """The tracker settings as MLflow params (``prefix``: e.g. ``grok.`` in a shared run)."""
    return {prefix + f.name: format_value(getattr(settings, f.name))
            for f in dataclasses.fields(settings)}


def _same_value(logged: str, resolved: str) -> bool:
    """Whether a param MLflow already holds (``1e-3``, ``''``, ``True``) means the same as the
    value to log: equal as text (quotes and case aside), or as numbers."""
    a, b = logged.strip("'\"").strip().lower(), resolved.strip().lower()
    if a == b:
        return True
    try:
        return ([float(t) for t in re.split(r"[,\s]+", a) if t] ==
                [float(t) for t in re.split(r"[,\s]+", b) if t])
    except ValueError:
        return False


