"""``GrokTracker``: what a researcher adds to a training loop (a short facade over named parts).

    with GrokTracker(model, train=train_loader, test=(x_te, y_te),
                     settings=TrackerSettings(steps=10_000)) as tracker:
        for step in range(1, 10_001):
            ...optimizer step...
            tracker.step(step, loss=loss)   # measures and logs only what is due at this step

The parts, each with its own module and tests:

=====================  ===========================================================================
when to measure        ``schedule.MeasureSchedule``: log-spaced eval steps, sparser PGD and
                       deformation subsets, partition snapshots every N-th eval step
what points            ``probes.draw_probes``: fixed seeded LC / accuracy / PGD / partition points
                       from tensors, a Dataset or a DataLoader, drawn once
measuring              ``measure.measure`` (accuracy, loss, LC, PGD) and
                       ``partition.partition_slice``: pure, tensors in, tensors out
recording              ``recorder.Recorder``: the run, params, config, batched metrics with
                       retries, checkpoints, artifacts (the tracker's only MLflow caller)
saying what it showed  ``phases.detect_phases`` and ``report.reproduction_report`` at the end
=====================  ===========================================================================

Metric keys are ``measure``'s (``acc/*``, ``loss/*``, ``lc/*``, ``adv/acc/eps_*``), plus
``partition/*`` at snapshot steps and ``grok/*`` phase steps at the end (also as tags).
Artifacts: ``config.json`` (settings, the model's class, size and measured layers, data shapes,
the schedule), ``history.csv``, ``figures/grokking.png`` (both refreshed every
``artifact_every_s`` during long runs), ``report.md``, ``partition/step_*.png`` with their
weights and ``partition/partition.gif``, and the model (``mlflow.pytorch``, on a clean exit).
"""

from __future__ import annotations

import dataclasses
import math
import platform
import re
import signal
import sys
import threading
import time
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from ..measures._modes import evaluating
from ..measures.complexity import default_directions, local_complexity
from ..measures.network import embedded, input_module_of
from .measure import adv_budgets, lc_prefix, measure
from ..findings.phases import PHASE_KEYS, detect_phases
from .._context import package_version
from .probes import Data, Probes, draw_probes
from ..findings.history import history_csv
from .distributed import Shards, unwrap
from ..store.recorder import MetricBuffer, NullRecorder, Recorder, TrackingUnavailable, tracking_uri
from ..findings.report import report_markdown, reproduction_report
from .schedule import MeasureSchedule
from .settle import Settling, in_tune_trial, report_to_tune
from ..settings import Settings, TrackerSettings, format_value
from ..measures.tasks import TASKS, OutputSpec, measured_model
from .terminal import step_bar

__all__ = ["DivergenceError", "GrokTracker", "model_run_name", "settings_params"]


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite; the run ends FAILED, its last good checkpoint
    (from before the divergence) kept."""


def model_run_name(model: nn.Module) -> str:
    """A run name from the model: its class and parameter count, e.g. ``TinyResNet_12.3k``."""
    n = sum(p.numel() for p in model.parameters())
    size = f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}k" if n >= 1e3 else str(n)
    return f"{type(model).__name__}_{size}"


class GrokTracker:
    """Measure local complexity, accuracy and PGD robustness on a schedule; log them to MLflow.

    Args:
        model: the network being trained (measured on its own device, in eval mode; its modes,
            gradients and the global RNG are left as they were).
        train, test: the data as you have it: ``(x, y)`` tensors, a ``Dataset`` of
            ``(input, label)`` items or a ``DataLoader`` (see ``grok_mlflow.probes``); inputs in
            the model's input units, standardized or not (see ``domain``).
        settings: a ``TrackerSettings`` (schedule, LC, PGD, partition, writing); a project
            ``Settings`` is reduced to its tracker settings.
        domain: (low, high) box of the inputs: LC's random points are drawn in it, PGD stays in
            it and its default budgets are 0.05, 0.1, 0.2 of its width. None (default): the
            data's own, (0, 1) for inputs in [0, 1], else the training and test inputs' global
            (min, max) (``robustness.data_box``). A given box is checked: inputs outside it are
            refused in one line before any run exists (never clamped).
        run_name: name of a new run (default: the model's class and size, ``model_run_name``).
        experiment: experiment of a new run (default ``$MLFLOW_EXPERIMENT_NAME`` or
            ``grok_mlflow``).
        params: params to log (default: the tracker settings); a value the run already holds
            differently (``mlflow run`` logs its defaults first) is kept as tag
            ``setting.<name>`` and listed in ``grok_mlflow.stale_params``.
        log_model: log the trained model with ``mlflow.pytorch`` on a clean exit.
        progress: show a progress bar on stderr.
        artifact_every_s: during long runs, refresh ``history.csv`` and the figure this often.
        extra_config: more entries for ``config.json``.
        checkpoint: returns the training state to save; called at every metric flush (every
            ``checkpoint_every_s`` at a measured step, and at a clean end). Saved as the run's
            artifact ``checkpoints/last.pt`` with the tracker's own state under ``"tracker"``.
        resume: a checkpoint to continue from: no step-0 measurement, the history restored.
        run_id: continue this existing run (and end it at exit); steps whose metrics already
            reached its store are measured again but not logged twice.
        recorder: write through this ``Recorder`` instead (e.g. one attached to another
            integration's run, as the Lightning callback does).
        task: ``multiclass``, ``binary`` or ``regression`` (``grok_mlflow.tasks``); default:
            inferred from the model's outputs and the labels. Sets which metrics exist: no
            ``acc/*`` for regression, whose PGD reports ``adv/loss/eps_*``.
        output: which tensor of a model that returns a dict, ``ModelOutput``, tuple or
            dataclass to measure: a key, an index or a callable; default ``logits`` when present,
            else the first tensor (said once on stderr).
        loss_fn: your ``loss_fn(output, labels)`` (a batch mean) for ``loss/*`` and a
            regression's PGD, instead of the task's (cross-entropy, binary cross-entropy, MSE).

    Everything that can be checked before training (the settings, the output choice, the task,
    LC's P against the input dimension, the first LC probe) is checked on entering, before the
    MLflow run exists: a bad value raises ``ValueError`` with one line and leaves no run. A
    failure after the run started ends it FAILED with the tag ``grok_mlflow.failure`` saying
    why in one line.

    Entering the context measures step 0 (the network before training); leaving it measures the
    last step seen if it was not measured, flushes, writes the report, ``history.csv`` and the
    model, and ends the run if the tracker started it (FINISHED, FAILED on an exception, KILLED
    on Ctrl-C).

    Attributes:
        run_id: the MLflow run.   history: {step: {key: value}} of everything measured.
    """

    def __init__(self, model: nn.Module, train: Data, test: Data,
                 settings: TrackerSettings | Settings | None = None, *,
                 domain: tuple[float, float] | None = None, run_name: str | None = None,
                 experiment: str | None = None, params: Mapping[str, str] | None = None,
                 log_model: bool = True, progress: bool = True, artifact_every_s: float = 300.0,
                 extra_config: Mapping[str, Any] | None = None,
                 checkpoint: Callable[[], dict[str, Any]] | None = None,
                 resume: Mapping[str, Any] | None = None, run_id: str | None = None,
                 recorder: Recorder | None = None, task: str | None = None,
                 output: OutputSpec = None,
                 loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
                 tune_report: bool | None = None):
        if task is not None and task not in TASKS:
            raise ValueError(f"task: unknown value {task!r}; valid: {', '.join(TASKS)} (or "
                             "None: inferred from the outputs and labels)")
        if not (output is None or callable(output) or isinstance(output, (str, int))):
            raise ValueError(f"output: must be a key (str), an index (int) or a callable, got "
                             f"{type(output).__name__}")
        self.task, self.output, self.loss_fn = task, output, loss_fn
        if isinstance(settings, Settings):
            settings = settings.tracker_settings()
        s = self.settings = settings or TrackerSettings()
        model = unwrap(model)                 # a DistributedDataParallel wrapper: its replica
        self.shards = Shards.current()        # under torch.distributed: this rank's share
        self.model, self.train_data, self.test_data, self.domain = model, train, test, domain
        self.run_name = run_name or model_run_name(model)
        self.params = dict(params) if params is not None else settings_params(s)
        self._own_params = params is None          # the loss param then follows the task
        self.log_model, self.progress = log_model, progress and self.shards.main
        self.artifact_every_s = artifact_every_s
        self.extra_config = dict(extra_config or {})
        self.checkpoint_fn, self.resume = checkpoint, resume
        # one run, written by rank 0; the other ranks measure their shares and write nothing
        self.recorder = recorder or (Recorder(self.run_name, experiment, run_id,
                                              s.checkpoint_every_s)
                                     if self.shards.main else NullRecorder())
        self.adv_eps: tuple[float, ...] = ()       # the PGD budgets, once the box is known
        # step 0 (initialisation) is measured on entering the context
        self.schedule = MeasureSchedule.from_settings(s)
        self.history: dict[int, dict[str, float]] = {}
        self.phases: dict[str, int] = {}
        self.stop_note = ""                 # why training stopped before its last step (report)
        self.settling = Settling(self, f"{lc_prefix(s.lc_radius[0], s.lc_radius)}/train")
        # inside a Ray Tune trial: every measured step is reported to Tune (grok_mlflow.settle)
        self.tune_report = (in_tune_trial() if tune_report is None else tune_report) and (
            self.shards.main)
        self._carried: dict[str, float] = {}    # every metric's last measured value (Tune)
        self._ended = False
        self._logged: dict[str, int] = {}   # key -> last step already in the store (on resume)
        self.last_step: int | None = None   # the last step seen (``step``), None before any
        self._terminate: _Termination | None = None   # SIGTERM handling under torch.distributed
        self._bar = None
        self._artifacts_written = time.monotonic()

    @property
    def run_id(self) -> str | None:
        return self.recorder.run_id

    # ------------------------------------------------------------------ start
    def __enter__(self) -> "GrokTracker":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.finish(exc)
        return False

    def start(self) -> "GrokTracker":
        """What entering the context does (for integrations that cannot use ``with``: the
        Lightning callback, ``StackedTracker``): the checks, the run, step 0's measurement."""
        self._prepare()                 # every check that can fail, before the run exists
        self._terminate = _Termination() if self.shards.size > 1 else None
        self.recorder.start()
        try:
            self._log_setup()
            if self.recorder.continue_run is not None:
                self._logged = self.recorder.logged_steps()
            if self.resume is None:
                self.measure(0)  # the network at initialisation, before the first step
            else:
                state = self.resume["tracker"]
                self.history = {int(k): dict(v) for k, v in state["history"].items()}
                self.last_step = int(self.resume["step"])
        except BaseException as err:
            self._fail(err)
            self._end("FAILED")
            raise
        if self.progress:
            self._bar = step_bar(self.settings.steps, self.run_name, self.last_step or 0)
        return self

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the tracker: ``{"history", "step"}``; ``resume=`` takes
        it back as ``{"tracker": {"history": ...}, "step": ...}``."""
        return {"history": self.history, "step": self.last_step or 0}

    def _prepare(self) -> None:
        """Probes, the measured model (output tensor, task), LC's input and P, and the first LC
        probe: everything that can fail on the user's model or data, before any run exists."""
        device = next(self.model.parameters()).device
        self.probes = draw_probes(self.train_data, self.test_data, self.settings, device,
                                  self.domain)
        self.domain = self.probes.domain            # the data's box when none was given
        self.adv_eps = adv_budgets(self.settings, self.domain)
        lc_input = input_module_of(self.model, self.settings.lc_input)
        self.tokens = not self.probes.lc["train"].is_floating_point()
        if self.tokens and not lc_input:
            raise ValueError("the inputs are integers (token ids): set lc_input to the module "
                             "whose output is continuous (the embedding), e.g. "
                             "TrackerSettings(lc_input='embed')")
        if self.tokens:            # PGD in input units needs a continuous input
            self.adv_eps, self.schedule = (), self.schedule.without_adversarial()
        dtype = next(self.model.parameters()).dtype
        if self.probes.lc["train"].is_floating_point() and self.probes.lc["train"].dtype != dtype:
            print(f"grok-mlflow: the inputs are {self.probes.lc['train'].dtype} and the model "
                  f"{dtype}: the measured points are cast to {dtype}", file=sys.stderr)
            self.probes = self.probes.to_dtype(dtype)
        x, y = self.probes.accuracy["train"]
        chosen = measured_model(self.model, x[:8], y[:8], self.task, self.output)
        if chosen.measure_task == "multiclass" and not chosen.relabel:
            with evaluating(chosen.net), torch.no_grad():
                classes = chosen.net(x[:1]).shape[-1]
            self.probes.check_labels(classes)
        self.net, self.task, self.measured_task = chosen.net, chosen.task, chosen.measure_task
        if self._own_params and (self.loss_fn is not None
                                 or self.task in ("regression", "multilabel")):
            # the loss loss/* really is: the user's, a regression's mean squared error, or a
            # multi-label task's binary cross-entropy
            self.params["loss"] = ("loss_fn: " + getattr(self.loss_fn, "__name__", "custom")
                                   if self.loss_fn is not None else
                                   "mse" if self.task == "regression" else "bce")
        self.output_note = chosen.note
        if chosen.relabel is not None:
            self.probes = self.probes.with_labels(chosen.relabel)
        x = self.probes.lc["train"][:1]
        with evaluating(self.net), torch.no_grad():     # LC's input space: the embedding's
            dim = (embedded(self.net, lc_input, x)[1][0].numel() if lc_input
                   else math.prod(x.shape[1:]))
        p = self.settings.lc_directions
        if p > dim:
            raise ValueError(f"lc_directions: must be <= the input dimension {dim} (LC's "
                             f"directions span the input), got {p}; 0 = min(25, {dim})")
        self.settings = dataclasses.replace(self.settings, lc_input=lc_input,
                                            lc_directions=p or default_directions(dim))
        probe = local_complexity(self.net, self.probes.lc["train"][:1],
                                 radius=self.settings.lc_radius[0],
                                 n_directions=self.settings.lc_directions,
                                 input_module=self.settings.lc_input or None)
        self.lc_layers = probe.layer_names

    def _fail(self, err: BaseException) -> None:
        """Say on the run why it failed, in one line (tag ``grok_mlflow.failure``)."""
        if (isinstance(err, KeyboardInterrupt) and not isinstance(err, Terminated)
                or not self.recorder.run_id):
            return
        line = f"{type(err).__name__}: {err}".splitlines()[0][:500]
        if isinstance(err, DivergenceError):
            line = f"diverged: {err}"
        try:
            self.recorder.set_tags({"grok_mlflow.failure": line,
                                    "grok_mlflow.failure_step": str(self.last_step)})
        except Exception:  # noqa: BLE001 - the store may be the reason; the error itself wins
            pass

    def _log_setup(self) -> None:
        """Params (stale ones kept as tags), tags and ``config.json``."""
        if not self.shards.main:
            return
        if self.tokens and self.settings.adv_points:
            print("grok-mlflow: PGD off: the inputs are token ids; robustness is measured only "
                  "for continuous inputs in [0, 1]", file=sys.stderr)
        elif tuple(self.domain) != (0.0, 1.0) and self.settings.adv_points:
            print(f"grok-mlflow: the inputs lie outside [0, 1]: PGD and LC's random points use "
                  f"their box {tuple(round(v, 6) for v in self.domain)} (budgets "
                  f"{', '.join(f'{e:g}' for e in self.adv_eps)} in input units)", file=sys.stderr)
        existing = self.recorder.params()
        device = next(self.model.parameters()).device
        tags = {"seed": str(self.settings.seed),
                # the model is on this device already: naming it initialises nothing new
                "grok_mlflow.device": (torch.cuda.get_device_name(device)
                                       if device.type == "cuda" else
                                       f"cpu ({platform.machine()})")}
        # MLflow params cannot change. `mlflow run -P preset=...` logs every main parameter at its
        # default first: keep the true values visible (tags, config.json) and say so.
        stale = sorted(k for k, v in self.params.items()
                       if k in existing and not _same_value(existing[k], v))
        if not self.recorder.attach:     # a run another integration owns keeps its name
            tags["mlflow.runName"] = self.run_name
        if stale:
            tags["grok_mlflow.stale_params"] = ",".join(stale)
            tags.update({f"setting.{k}": self.params[k] for k in stale})
            print(f"grok-mlflow: warning: MLflow logged {', '.join(stale)} before the preset was "
                  "applied; the true values are in the tags setting.<name> and config.json. Use "
                  "`mlflow run . -e preset -P preset=...` for exact params.", file=sys.stderr)
        self.recorder.log_params({k: v for k, v in self.params.items() if k not in existing})
        self.recorder.set_tags(tags)
        if self.output_note:
            print(f"grok-mlflow: {self.output_note}", file=sys.stderr)
        config = run_config_json(self.model, self.settings, self.probes, self.schedule,
                                 layers=self.lc_layers, adv_eps=self.adv_eps, task=self.task,
                                 output=self.output_note or "the model's tensor",
                                 extra=self.extra_config,
                                 output_key=self.output if isinstance(self.output, (str, int))
                                 else None)
        self.recorder.log_dict(config, "config.json")
        self.recorder.log_tensors(analysis_points(self.probes), "analysis/points.pt")

    # ------------------------------------------------------------------ per step
    def step(self, step: int, loss: Tensor | float | None = None) -> dict[str, float] | None:
        """Call once per optimisation step; measures and logs when ``step`` is due.

        Between due steps this is a set lookup and a progress-bar tick (no host sync).

        Args:
            step: the optimisation step just taken (0 = before training).
            loss: the minibatch loss, shown on the progress bar at measured steps.
        Returns:
            The metrics measured at this step, or None when nothing was due.
        """
        if self._ended:                       # ended on settling, inside a Tune trial
            return None
        if self._bar is not None and step > 0:
            self._bar.update(step - (self.last_step or 0))
        self.last_step = step
        if not self.schedule.due(step):
            return None
        if loss is not None:   # a host sync only at measured steps; NaN weights keep it NaN
            value = float(loss.detach() if isinstance(loss, Tensor) else loss)
            if not math.isfinite(value):
                raise DivergenceError(f"training loss is {value} at step {step}")
        values = self.measure(step)
        self.settling.check(step)
        if self.tune_report:
            self._carried.update(values)
            if self.settling.settled:          # end the run before Tune may stop the trial
                self.finish()
            report_to_tune(step, self._carried, self.settling.settled, self.settings.until)
        if self._bar is not None:
            shown = {k: values[k] for k in ("acc/train", "acc/test", "lc/train") if k in values}
            if loss is not None:
                shown["loss"] = value
            self._bar.set_postfix({k.replace("/", "_"): f"{v:.3g}" for k, v in shown.items()},
                                  refresh=False)
        return values

    def log_metrics(self, metrics: Mapping[str, float | Tensor], step: int) -> dict[str, float]:
        """Your own metrics at ``step``, through the same batched writes (numbers or 0-dim
        tensors; they also go into ``history.csv``). Returns them as floats."""
        return self._record(dict(metrics), step)

    def measure(self, step: int, adversarial: bool | None = None) -> dict[str, float]:
        """Measure at ``step`` now, whatever the schedule, and buffer the metrics.

        Args:
            adversarial: run PGD too; default when ``step`` is on the PGD schedule.
        """
        if adversarial is None:
            adversarial = step in self.schedule.adv_steps
        metrics = measure(self.net, self.probes, self.settings,
                          adversarial=adversarial and bool(self.adv_eps),
                          deform=step in self.schedule.deform_steps, task=self.measured_task,
                          loss_fn=self._loss_fn(), shards=self.shards)
        if step in self.schedule.partition_steps and self.shards.main:
            metrics.update(self.partition_snapshot(step))
        values = self._record(metrics, step)
        if self.recorder.flush_due():
            self._flush(step)
        if time.monotonic() - self._artifacts_written > self.artifact_every_s:
            try:
                self._write_artifacts()
            except Exception as err:  # noqa: BLE001 - a refresh may wait for an unreachable store
                self._artifacts_written = time.monotonic()
                print(f"grok-mlflow: warning: artifacts not refreshed ({type(err).__name__})",
                      file=sys.stderr)
        return values

    def _record(self, metrics: dict[str, Any], step: int) -> dict[str, float]:
        """Buffer what the store does not hold yet (a resumed run measures some steps again);
        everything goes into the history."""
        fresh = {k: v for k, v in metrics.items() if step > self._logged.get(k, -1)}
        values = self.recorder.add_metrics(fresh, step) if fresh else {}
        if len(fresh) < len(metrics):
            values.update(MetricBuffer.to_floats({k: v for k, v in metrics.items()
                                                  if k not in fresh}))
        self.history.setdefault(step, {}).update(values)
        return {k: values[k] for k in metrics}

    def partition_snapshot(self, step: int) -> dict[str, Tensor]:
        """Draw and log the partition snapshot at ``step`` now (``partition/step_*.png`` and its
        weights), whatever the schedule; returns its ``partition/*`` metrics."""
        from ..measures.partition import partition_slice
        from ..findings.plots import partition_figure

        part = partition_slice(self.net, self.probes.partition_x,
                               resolution=self.settings.partition_resolution,
                               seed=self.settings.seed,
                               input_module=self.settings.lc_input or None)
        fig = partition_figure(part, self.probes.partition_labels, f"{self.run_name}, step {step}")
        self.recorder.log_snapshot(f"step_{step:08d}", fig, self.model.state_dict())
        metrics = part.metrics()
        if self.task == "regression":           # no decision boundary to be near
            metrics.pop("partition/regions_near_boundary", None)
        return metrics

    def _loss_fn(self) -> Callable[[Tensor, Tensor], Tensor] | None:
        """The user's loss as the measured model's outputs need it (a binary model's two logits
        [0, z] back to z), or None (the task's own)."""
        fn = self.loss_fn
        if fn is None or self.task != "binary":
            return fn
        return lambda two, labels: fn(two[:, 1], labels.to(two.dtype))

    def flush(self, step: int) -> None:
        """Write the buffered metrics and the checkpoint at ``step`` now, whatever the clock
        (``StackedTracker`` flushes its members together)."""
        self._flush(step)

    def _flush(self, step: int | None, retry_s: float = 0.0) -> None:
        """Write buffered metrics, then (with a checkpoint function) the checkpoint at ``step``.

        During training (``retry_s`` 0) an unreachable store is not waited for: the points stay
        buffered and go out with a later flush; the checkpoint waits for the metrics.
        """
        if not self.recorder.flush(retry_s):
            return
        if self.checkpoint_fn is not None and step is not None:
            if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
                # never overwrite the last good checkpoint with a diverged state
                raise DivergenceError(f"parameters are not finite at step {step}")
            state = self.checkpoint_fn()
            state["step"] = step
            state["tracker"] = {"history": self.history}
            self.recorder.save_checkpoint(state, retry=bool(retry_s))

    def _write_artifacts(self) -> None:
        """history.csv and the figure (refreshed during long runs, final at the end)."""
        from ..findings.plots import grokking_figure

        if not self.shards.main:
            return
        self.recorder.log_text(history_csv(self.history), "history.csv")
        self.recorder.log_figure(grokking_figure(self.history, self.phases, title=self.run_name),
                                 "figures/grokking.png")
        self._artifacts_written = time.monotonic()

    @property
    def settled(self) -> bool:
        """With ``until="settled"``: whether the run's phases are settled (``phases.settled``),
        asked at every measured step from ``min_steps`` on; your loop may stop there."""
        return self.settling.settled

    def stopped(self, note: str, tags: Mapping[str, str]) -> None:
        """Record why training stopped where it did (``until: settled``, a sweep's stopper):
        ``note`` opens the run's report, ``tags`` go on the run."""
        self.stop_note = note
        self.recorder.set_tags({**tags, "grok_mlflow.stop_note": note})

    def detect_phases(self) -> dict[str, int]:
        """Grokking phases of the history so far (see ``grok_mlflow.phases``)."""
        key = f"{lc_prefix(self.settings.lc_radius[0], self.settings.lc_radius)}/train"
        return detect_phases(self.history, lc_key=key)

    # ------------------------------------------------------------------ end
    def finish(self, exc: BaseException | None = None) -> None:
        """What leaving the context does: measure the last step if it was not, flush, write the
        report, history and model, end an owned run (FINISHED; with ``exc``: KILLED for a
        KeyboardInterrupt or Ray Tune's stop (SystemExit), FAILED otherwise). Once only."""
        if self._ended:
            return
        self._ended = True
        status = ("FINISHED" if exc is None else
                  "KILLED" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "FAILED")
        if exc is None:
            self.settling.at_the_cap()
        if self._bar is not None:
            self._bar.close()
        terminate, self._terminate = self._terminate, None
        if terminate is not None:
            terminate.defer()           # a launcher's SIGTERM now waits for the run's end
        # Ctrl-C caught at a step boundary (``train`` does that): the state is consistent there
        consistent = exc is None or getattr(exc, "at_step_boundary", False)
        try:
            if exc is None and self.last_step is not None and (
                    self.last_step not in self.history):
                # the loop stopped before settings.steps: its last step is measured all the same
                self.measure(self.last_step, adversarial=bool(self.schedule.adv_steps))
            if exc is not None:
                self._fail(exc)
        finally:
            try:
                self._end(status, clean=exc is None, checkpoint=consistent)
            finally:
                if terminate is not None:
                    terminate.restore()

    def _end(self, status: str, clean: bool = False, checkpoint: bool = False) -> None:
        """Flush metrics (and checkpoint when the state is consistent); at a clean end the
        phases, the report, the history and the model; end an owned run."""
        try:
            try:
                self._flush(self.last_step if checkpoint else None,
                            retry_s=self.settings.tracking_retry_s)
            except TrackingUnavailable:
                self.recorder.save_unsent()
                raise
            if clean and self.history:
                self.phases = self.detect_phases()
                if self.phases:
                    self.recorder.add_metrics(self.phases, max(self.history))
                    self.recorder.flush()
                self.recorder.set_tags({k: str(v) for k, v in self.phases.items()
                                        if k in PHASE_KEYS})
                self._write_report()
            if self.history:
                self._write_artifacts()
            if clean and self.schedule.partition_steps:
                self.recorder.log_partition_gif()
            if clean and self.log_model:
                self.recorder.log_model(self.model, self.probes.accuracy["train"][0][:2],
                                        tensor_output=not self.output_note)
            if clean and self.shards.main:
                print(f"\nRun {self.run_id} recorded. To look at it:\n"
                      f"  mlflow ui --backend-store-uri {self.recorder.uri or tracking_uri()}",
                      file=sys.stderr)
        finally:
            self.recorder.end(status)

    def _write_report(self) -> None:
        """What the run showed (``grok_mlflow.report``): the run's MLflow description, the
        artifact ``report.md``, and its headline on stderr."""
        if not self.shards.main:
            return
        findings = reproduction_report(self.history)
        text = report_markdown(findings, title=self.run_name, stopped=self.stop_note)
        self.recorder.set_tags({"mlflow.note.content": text})
        self.recorder.log_text(text, "report.md")
        seen = [f.phase for f in findings if f.seen]
        print(f"\nWhat run {self.run_id} showed: "
              + (", ".join(seen) if seen else "none of the paper's phases")
              + " (report.md has every phase, seen or not, and why)", file=sys.stderr)


class Terminated(KeyboardInterrupt):
    """SIGTERM under ``torch.distributed`` (the launcher stopping this rank): the run ends KILLED,
    its points written, and tagged ``grok_mlflow.failure`` (a Ctrl-C is not)."""


class _Termination:
    """Under ``torch.distributed``: the launcher (torchrun) stops the other ranks with SIGTERM when
    one dies. While training, SIGTERM raises ``KeyboardInterrupt`` (the run ends KILLED, its
    points written); while the run is being ended it is held until that is done, then delivered.
    Installed only in the main thread; the previous handler is put back."""

    def __init__(self) -> None:
        self.previous, self.pending = None, False
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._interrupt)

    def _interrupt(self, signum, frame) -> None:
        raise Terminated("terminated (SIGTERM): the launcher stops every rank when one dies")

    def _hold(self, signum, frame) -> None:
        self.pending = True

    def defer(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self._hold)

    def restore(self) -> None:
        if self.previous is None:
            return
        signal.signal(signal.SIGTERM, self.previous)
        if self.pending:
            signal.raise_signal(signal.SIGTERM)


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


