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
checks first           ``starting.prepare``: the model's output and task, labels, LC's input and
                       P, one LC probe: every failure before the run exists
opening the run        ``starting.open_run``: params, tags, ``config.json``, analysis points
measuring              ``step.measure_step`` (accuracy, loss, LC, PGD) and
                       ``partition.partition_slice``: pure, tensors in, tensors out
the record             ``run_log.RunLog``: history, batched metrics, checkpoints, artifacts and
                       the end (phases, ``report.md``, the model) through ``store.Recorder``
settling               ``stopping.Settling``: ``until: settled``, reports to Ray Tune
=====================  ===========================================================================

Metric keys are ``measure_step``'s (``acc/*``, ``loss/*``, ``lc/*``, ``adv/acc/eps_*``), plus
``partition/*`` at snapshot steps and ``grok/*`` phase steps at the end (also as tags).
Artifacts: ``config.json`` (settings, the model's class, size and measured layers, data shapes,
the schedule), ``history.csv``, ``figures/grokking.png`` (both refreshed every
``artifact_every_s`` during long runs), ``report.md``, ``partition/step_*.png`` with their
weights and ``partition/partition.gif``, and the model (``mlflow.pytorch``, on a clean exit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Literal, Mapping

from torch import Tensor, nn

from ..findings.phases import detect_phases
from ..measures.tasks import OutputSpec
from ..settings import Settings, TrackerSettings
from ..store.recorder import NullRecorder, Recorder
from .costs import MeasureCosts
from .distributed import Shards, Termination, unwrap
from .probes import Data
from .progress_bar import step_bar
from .run_log import DivergenceError, RunLog, StepBoundaryInterrupt
from .schedule import MeasureSchedule
from .starting import Prepared, check_choices, open_run, prepare, settings_params
from .step import lc_prefix, measure_step, partition_snapshot
from .stopping import Decision, Settling, in_tune_trial, report_to_tune

__all__ = ["DivergenceError", "GrokTracker", "RunOptions", "StepBoundaryInterrupt",
           "model_run_name", "refuse_earlier_options", "settings_params"]


@dataclass(frozen=True)
class RunOptions:
    """Where and how a tracker writes its MLflow run: one typed group (cleanrl's ``Args``).

    Example:
        GrokTracker(model, train, test, settings,
                    run=RunOptions(name="wide", experiment="ablations", log_model=False))

    Attributes:
        name: name of a new run (default: the model's class and size, ``model_run_name``).
        experiment: experiment of a new run (default ``$MLFLOW_EXPERIMENT_NAME`` or
            ``grok_mlflow``).
        tags: more tags for the run (the package's own, e.g. ``seed``, take precedence).
        params: params to log (default: the tracker settings); a value the run already holds
            differently (``mlflow run`` logs its defaults first) is kept as tag
            ``setting.<name>`` and listed in ``grok_mlflow.stale_params``.
        run_id: continue this existing run (and end it at exit); steps whose metrics already
            reached its store are measured again but not logged twice.
        recorder: write through this ``Recorder`` instead (e.g. one attached to another
            integration's run, as the Lightning callback does).
        extra_config: more entries for ``config.json``.
        log_model: log the trained model with ``mlflow.pytorch`` on a clean exit.
        progress: show a progress bar on stderr.
        artifact_every_s: during long runs, refresh ``history.csv`` and the figure this often.
        checkpoint: returns the training state to save; called at every metric flush (every
            ``checkpoint_every_s`` at a measured step, and at a clean end). Saved as the run's
            artifact ``checkpoints/last.pt`` with the tracker's own state under ``"tracker"``.
        resume: a checkpoint to continue from: no step-0 measurement, the history restored.
        tune_report: report every measured step to Ray Tune (default: inside a Tune trial).
    """

    name: str | None = None
    experiment: str | None = None
    tags: Mapping[str, str] | None = None
    params: Mapping[str, str] | None = None
    run_id: str | None = None
    recorder: Recorder | None = None
    extra_config: Mapping[str, Any] | None = None
    log_model: bool = True
    progress: bool = True
    artifact_every_s: float = 300.0
    checkpoint: Callable[[], dict[str, Any]] | None = None
    resume: Mapping[str, Any] | None = None
    tune_report: bool | None = None


_EARLIER_NAMES = {**{f.name: f.name for f in fields(RunOptions)}, "run_name": "name",
                  "run_names": "name", "run_ids": "run_id"}


def refuse_earlier_options(owner: str, earlier: Mapping[str, Any]) -> None:
    """One line for a keyword an earlier version took: where it went (``RunOptions``), or
    Python's own error for a name that never existed."""
    for key in earlier:
        field = _EARLIER_NAMES.get(key)
        if field is None:
            raise TypeError(f"{owner}.__init__() got an unexpected keyword argument {key!r}")
        where = ("runs=[RunOptions(" + field + "=...) for each member]"
                 if owner == "StackedTracker" else f"run=RunOptions({field}=...)")
        raise TypeError(f"{owner}: {key}= is now a run option: {where}")


def model_run_name(model: nn.Module) -> str:
    """A run name from the model: its class and parameter count, e.g. ``TinyResNet_12.3k``."""
    n = sum(p.numel() for p in model.parameters())
    size = f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}k" if n >= 1e3 else str(n)
    return f"{type(model).__name__}_{size}"


def _settled(name: str, given: str = "") -> property:
    """A tracker attribute that the checks settle (``starting.Prepared``): read from
    ``tracker.ready``, its one holder; before the checks, the value the caller gave (``given``)."""
    def get(tracker: "GrokTracker") -> Any:
        if tracker.ready is not None:
            return getattr(tracker.ready, name)
        if given:
            return getattr(tracker, given)
        raise AttributeError(f"{name}: known once the tracker has started")
    return property(get, doc=f"``Prepared.{name}``")


class GrokTracker:
    """Measure local complexity, accuracy and PGD robustness on a schedule; log them to MLflow.

    Args:
        model: the network being trained (measured on its own device, in eval mode; its modes,
            gradients and the global RNG are left as they were).
        train, test: the data as you have it: ``(x, y)`` tensors, a ``Dataset`` of
            ``(input, label)`` items or a ``DataLoader`` (see ``grok_mlflow.tracker.probes``); inputs in
            the model's input units, standardized or not (see ``domain``).
        settings: a ``TrackerSettings`` (schedule, LC, PGD, partition, writing); a project
            ``Settings`` is reduced to its tracker settings.
        domain: (low, high) box of the inputs: LC's random points are drawn in it, PGD stays in
            it and its default budgets are 0.05, 0.1, 0.2 of its width. None (default): the
            data's own, (0, 1) for inputs in [0, 1], else the training and test inputs' global
            (min, max) (``robustness.data_box``). A given box is checked: inputs outside it are
            refused in one line before any run exists (never clamped).
        run: where and how the run is written (``RunOptions``: name, experiment, tags, params,
            an existing run or recorder, checkpoints and resuming, the model, the progress bar).
        task: ``multiclass``, ``binary`` or ``regression`` (``grok_mlflow.measures.tasks``); default:
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
                 domain: tuple[float, float] | None = None, task: str | None = None,
                 output: OutputSpec = None,
                 loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
                 run: RunOptions | None = None, **earlier: Any):
        refuse_earlier_options("GrokTracker", earlier)
        check_choices(task, output)
        self._task, self.output, self.loss_fn = task, output, loss_fn
        if isinstance(settings, Settings):
            settings = settings.tracker_settings()
        s = self._settings = settings or TrackerSettings()
        model = unwrap(model)                 # a DistributedDataParallel wrapper: its replica
        self.shards = Shards.current()        # under torch.distributed: this rank's share
        self.model, self.train_data, self.test_data, self._domain = model, train, test, domain
        self.ready: Prepared | None = None    # what the checks settled: set by ``start``
        run = self.run_options = run or RunOptions()
        self.run_name = run.name or model_run_name(model)
        self.params = dict(run.params) if run.params is not None else settings_params(s)
        self._own_params = run.params is None      # the loss param then follows the task
        # one run, written by rank 0; the other ranks measure their shares and write nothing
        self.recorder = run.recorder or (Recorder(self.run_name, run.experiment, run.run_id,
                                                  s.checkpoint_every_s) if self.shards.main
                                         else NullRecorder())
        self.log = RunLog(self.recorder, main=self.shards.main, run_name=self.run_name,
                          checkpoint=run.checkpoint, artifact_every_s=run.artifact_every_s)
        self._schedule, self._adv_eps = MeasureSchedule.from_settings(s), ()
        self.stop_note = ""                 # why training stopped before its last step (report)
        self.lc_key = f"{lc_prefix(s.lc_radius[0], s.lc_radius)}/train"
        # inside a Ray Tune trial: every measured step is reported to Tune (grok_mlflow.tracker.stopping)
        self.settling = Settling(self.lc_key, tune_report=(
            in_tune_trial() if run.tune_report is None else run.tune_report) and self.shards.main)
        self._ended, self._bar = False, None
        self.last_step: int | None = None   # the last step seen (``step``), None before any
        self._terminate: Termination | None = None   # SIGTERM handling under torch.distributed
        self.costs = MeasureCosts()         # what measuring costs: a forecast, the totals

    # what the checks settled, held once (``self.ready``); before them, what the caller gave
    settings, schedule = _settled("settings", "_settings"), _settled("schedule", "_schedule")
    domain, task = _settled("domain", "_domain"), _settled("task", "_task")
    adv_eps, probes, net = _settled("adv_eps", "_adv_eps"), _settled("probes"), _settled("net")
    measured_task, output_note = _settled("measured_task"), _settled("output_note")
    lc_layers, tokens = _settled("lc_layers"), _settled("tokens")
    measured_loss_fn = _settled("loss_fn")      # the user's loss_fn, as measured
    # the run, and its record so far (``run_log.RunLog``)
    run_id = property(lambda self: self.recorder.run_id, doc="The MLflow run's id.")
    history = property(lambda self: self.log.history, doc="{step: {key: value}} measured.")
    phases = property(lambda self: self.log.phases, doc="The phases found at the end.")

    # ------------------------------------------------------------------ start
    def __enter__(self) -> "GrokTracker":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        self.finish(exc)
        return False

    def start(self) -> "GrokTracker":
        """What entering the context does (for integrations that cannot use ``with``: the
        Lightning callback, ``StackedTracker``): the checks, the run, step 0's measurement."""
        ready = self._prepare()         # every check that can fail, before the run exists
        self._terminate = Termination() if self.shards.size > 1 else None
        self.recorder.start()
        try:
            if self.shards.main:
                open_run(self.recorder, self.model, ready, params=self.params,
                         run_name=self.run_name, extra_config=self.run_options.extra_config or {},
                         output=self.output, tags=self.run_options.tags)
            if self.recorder.continue_run is not None:
                self.log.logged = self.recorder.logged_steps()
            resume = self.run_options.resume
            if resume is None:
                self.measure(0)  # the network at initialisation, before the first step
            else:
                state = resume["tracker"]
                self.log.restore(state["history"])
                self.last_step = int(resume["step"])
        except BaseException as err:
            self.log.fail(err, self.last_step)
            self._close("FAILED")
            raise
        if self.run_options.progress and self.shards.main:
            self._bar = step_bar(self.settings.steps, self.run_name, self.last_step or 0)
        return self

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the tracker: ``{"history", "step"}``;
        ``RunOptions(resume=...)`` takes it back as ``{"tracker": {"history": ...}, "step": ...}``."""
        return {"history": self.history, "step": self.last_step or 0}

    def _prepare(self) -> Prepared:
        """``starting.prepare``: everything that can fail on the user's model or data, before
        any run exists; then the loss param names the loss ``loss/*`` really is."""
        ready = self.ready = prepare(self.model, self.train_data, self.test_data, self.settings,
                             self.schedule, domain=self.domain, task=self.task,
                             output=self.output, loss_fn=self.loss_fn)
        if self._own_params and (self.loss_fn is not None
                                 or self.task in ("regression", "multilabel")):
            self.params["loss"] = ("loss_fn: " + getattr(self.loss_fn, "__name__", "custom")
                                   if self.loss_fn is not None else
                                   "mse" if self.task == "regression" else "bce")
        return ready

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
        self._settle(step, values)       # until: settled; a Ray Tune trial's report
        if self._bar is not None:
            shown = {k: values[k] for k in ("acc/train", "acc/test", "lc/train") if k in values}
            if loss is not None:
                shown["loss"] = value
            self._bar.set_postfix({k.replace("/", "_"): f"{v:.3g}" for k, v in shown.items()},
                                  refresh=False)
        return values

    def _settle(self, step: int, values: Mapping[str, float]) -> None:
        """Act on ``stopping.Settling``'s decision at measured ``step`` (see ``settled``)."""
        self._record_stop(self.settling.decide(step, self.history, self.settings))
        if self.settling.tune_report:       # a Ray Tune trial: the step reported, the run ended
            if self.settling.settled:       # first when settled (Tune may stop the trial then)
                self.finish()
            report_to_tune(step, self.settling.carry(values), self.settling.settled,
                           self.settings.until)

    def log_metrics(self, metrics: Mapping[str, float | Tensor], step: int) -> dict[str, float]:
        """Your own metrics at ``step``, through the same batched writes (numbers or 0-dim
        tensors; they also go into ``history.csv``). Returns them as floats."""
        return self.log.record(dict(metrics), step)

    def measure(self, step: int, adversarial: bool | None = None) -> dict[str, float]:
        """Measure at ``step`` now, whatever the schedule, and buffer the metrics.

        Args:
            adversarial: run PGD too; default when ``step`` is on the PGD schedule.
        """
        if adversarial is None:
            adversarial = step in self.schedule.adv_steps
        device = self.probes.accuracy["train"][0].device
        with self.costs.timed("measure", device):
            metrics: dict[str, Tensor | float] = {**measure_step(
                self.net, self.probes, self.settings,
                adversarial=adversarial and bool(self.adv_eps),
                deform=step in self.schedule.deform_steps, task=self.measured_task,
                loss_fn=self.measured_loss_fn, shards=self.shards, costs=self.costs)}
        if step in self.schedule.partition_steps and self.shards.main:
            with self.costs.timed("partition", device):
                metrics.update(self.partition_snapshot(step))
        self.costs.say_forecast(self.schedule, self.shards.main)
        values = self.log.record(metrics, step)
        self.log.after_measure(step, self.model)
        return values

    def partition_snapshot(self, step: int) -> dict[str, float]:
        """Draw and log the partition snapshot at ``step`` now (``partition/step_*.png`` and its
        weights), whatever the schedule; returns its ``partition/*`` metrics."""
        fig, metrics = partition_snapshot(self.net, self.probes, self.settings, self.task,
                                          f"{self.run_name}, step {step}")
        self.recorder.log_snapshot(f"step_{step:08d}", fig, self.model.state_dict(), step=step)
        return metrics

    def flush(self, step: int) -> None:
        """Write the buffered metrics and the checkpoint at ``step`` now, whatever the clock."""
        self.log.flush(step, self.model)

    @property
    def settled(self) -> bool:
        """With ``until="settled"``: whether the run's phases are settled (``phases.settled``),
        asked at every measured step from ``min_steps`` on; your loop may stop there."""
        return self.settling.settled

    def _record_stop(self, decision: Decision | None) -> None:
        """Why training stopped where it did (``stopping.Decision``): its note opens the run's
        report, its tags go on the run."""
        if decision is not None:
            self.stop_note = decision.note
            self.recorder.set_tags({**decision.tags, "grok_mlflow.stop_note": decision.note})

    def detect_phases(self) -> dict[str, float]:
        """Grokking phases of the history so far (see ``grok_mlflow.findings.phases``)."""
        return detect_phases(self.history, lc_key=self.lc_key)

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
            self._record_stop(self.settling.at_the_cap(self.last_step or 0, self.history,
                                                       self.settings))
        if self._bar is not None:
            self._bar.close()
        terminate, self._terminate = self._terminate, None
        if terminate is not None:
            terminate.defer()           # a launcher's SIGTERM now waits for the run's end
        # Ctrl-C caught at a step boundary (``train`` does that): the state is consistent there
        consistent = exc is None or isinstance(exc, StepBoundaryInterrupt)
        try:
            if exc is None and self.last_step is not None and (
                    self.last_step not in self.history):
                # the loop stopped before settings.steps: its last step is measured all the same
                self.measure(self.last_step, adversarial=bool(self.schedule.adv_steps))
            if exc is not None:
                self.log.fail(exc, self.last_step)
        finally:
            try:
                self._close(status, checkpoint=consistent)
            finally:
                if terminate is not None:
                    terminate.restore()

    def _close(self, status: str, checkpoint: bool = False) -> None:
        """``RunLog.close``: flush (and checkpoint when the state is consistent); at a clean end
        the phases, the report, the history and the model; end an owned run."""
        self.log.close(status, step=self.last_step if checkpoint else None, model=self.model,
                       retry_s=self.settings.tracking_retry_s, lc_key=self.lc_key,
                       final_metrics=self.costs.metrics(),
                       stop_note=self.stop_note, partition=bool(self.schedule.partition_steps),
                       model_example=(self.probes.accuracy["train"][0][:2]
                                      if self.run_options.log_model else None),
                       tensor_output=not self.output_note)
