"""What a tracked run records when it opens: its params (a value MLflow already holds
differently kept as a tag), its tags, ``config.json`` (what the run measured and how) and
``analysis/points.pt`` (what ``grok-mlflow partition``, ``radius`` and ``compare-regions``
rebuild a run from). Everything here is written through the ``Recorder``.
"""

from __future__ import annotations

import dataclasses
import platform
import re
import sys
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from .._context import package_version
from ..settings import TrackerSettings, format_value
from ..store.recorder import Recorder
from .preparing import Prepared
from .probes import Probes
from .schedule import MeasureSchedule

__all__ = ["POINTS_CAP_BYTES", "analysis_points", "open_run", "run_config_json",
           "settings_params"]


def open_run(recorder: Recorder, model: nn.Module, ready: Prepared, *, params: dict[str, str],
             run_name: str, extra_config: Mapping[str, Any], output: Any) -> None:
    """Params (stale ones kept as tags), tags, ``config.json`` and the analysis points; the
    notes a user should see on stderr (PGD off for tokens, the data's own box)."""
    s = ready.settings
    if ready.tokens and s.adv_points:
        print("grok-mlflow: PGD off: the inputs are token ids; robustness is measured only "
              "for continuous inputs in [0, 1]", file=sys.stderr)
    elif tuple(ready.domain) != (0.0, 1.0) and s.adv_points:
        print(f"grok-mlflow: the inputs lie outside [0, 1]: PGD and LC's random points use "
              f"their box {tuple(round(v, 6) for v in ready.domain)} (budgets "
              f"{', '.join(f'{e:g}' for e in ready.adv_eps)} in input units)", file=sys.stderr)
    existing = recorder.params()
    device = next(model.parameters()).device
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
        print(f"grok-mlflow: warning: MLflow logged {', '.join(stale)} before the preset was "
              "applied; the true values are in the tags setting.<name> and config.json. Use "
              "`mlflow run . -e preset -P preset=...` for exact params.", file=sys.stderr)
    recorder.log_params({k: v for k, v in params.items() if k not in existing})
    recorder.set_tags(tags)
    if ready.output_note:
        print(f"grok-mlflow: {ready.output_note}", file=sys.stderr)
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


