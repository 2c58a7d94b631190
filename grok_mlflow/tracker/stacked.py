"""``StackedTracker``: ``GrokTracker`` for K networks trained as one stacked model.

Each member is a full run: its own MLflow run with everything a single tracked run records (LC,
PGD, accuracy, partition snapshots, ``grok/*``, report, checkpoints, model), measured on its own
data by its own ``GrokTracker`` (measurement loops over members; training does not). What the
group adds:

- **one clock**: members write metrics and checkpoints together, at the same step, so that a
  group killed at any moment resumes every member at one common step (``align_checkpoints``;
  each checkpoint also holds the one before it, for a kill between two members' writes);
- **failing alone**: a member whose loss or weights stop being finite ends FAILED (its last good
  checkpoint kept) while the others go on.

For your own ``torch.func`` ensembles::

    params, buffers = torch.func.stack_module_state(models)          # {name: (K, ...)}
    members = stacking.member_views(models[0], params, buffers)      # K nn.Modules (views)
    with StackedTracker(members, train=(x, y), test=(x_te, y_te),
                        settings=TrackerSettings(steps=5000),
                        runs=[RunOptions(name=f"seed={k}") for k in range(K)]) as tracker:
        for step in range(1, 5001):
            losses = ...                                             # (K,) per-member losses
            ...one optimizer step on params...
            tracker.step(step, losses)
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Literal, Mapping, Sequence

from torch import Tensor, nn

from ..console import logger
from ..settings import Settings, SettingsError, TrackerSettings
from ..store.recorder import Recorder
from ..store.tracking_store import create_run, end_runs, reopen_runs, use_experiment
from .probes import Data
from .progress_bar import step_bar
from .run_log import DivergenceError
from .tracking import GrokTracker, RunOptions, refuse_earlier_options

__all__ = ["StackedTracker", "align_checkpoints"]


def _per_member(value: Any, k: int, what: str, one: Callable[[Any], bool]) -> list:
    """``value`` for every member: a list of K, or one value shared by all."""
    if isinstance(value, list) and not one(value):
        if len(value) != k:
            raise ValueError(f"{what}: {len(value)} values for {k} members")
        return list(value)
    return [value] * k


def _is_data(value: Any) -> bool:
    """A list that is itself one dataset: a [x, y] pair of tensors."""
    return len(value) == 2 and all(isinstance(v, Tensor) for v in value)


class StackedTracker:
    """Track K stacked members, one MLflow run each (see the module docstring).

    Args:
        models: the K members as ordinary modules (``stacking.StackedModules.members`` or
            ``stacking.member_views``), measured one after another.
        train, test: one dataset for every member (``(x, y)``, a Dataset or a DataLoader, as
            ``GrokTracker`` takes it), or a ``list`` of K of them.
        settings: one ``TrackerSettings`` (or ``Settings``) for all, or a list of K.
        runs: K ``RunOptions``, one per member: its ``name`` (required), and as
            ``GrokTracker`` takes them its ``tags`` (e.g. a sweep's ``mlflow.parentRunId``),
            ``params``, ``extra_config``, ``run_id`` (continue that run) and ``log_model``; the
            experiment is the first member's (``experiment_id`` instead, when known); each
            member's ``progress`` is off (the group has one bar, ``progress``).
        domain: as ``GrokTracker``'s.
        checkpoint: ``checkpoint(k)`` returns member k's training state to save (as
            ``GrokTracker``'s ``checkpoint``); called for every member at every group flush.
        resume: K checkpoints to continue from (``align_checkpoints``), None for a fresh member.
        progress: one progress bar for the group on stderr.

    Attributes:
        run_ids: the K runs.   trackers: the K ``GrokTracker``s.   failed: {k: the error} of
        members that ended FAILED while the others went on.
    """

    def __init__(self, models: Sequence[nn.Module], train: Data | list, test: Data | list,
                 settings: TrackerSettings | Settings | list | None = None, *,
                 runs: Sequence[RunOptions], experiment_id: str | None = None,
                 domain: tuple[float, float] | None = None,
                 checkpoint: Callable[[int], dict[str, Any]] | None = None,
                 resume: Sequence[Mapping[str, Any] | None] | None = None,
                 progress: bool = True, **earlier: Any):
        refuse_earlier_options("StackedTracker", earlier)
        k = len(models)
        if k < 1 or len(runs) != k or any(not r.name for r in runs):
            raise ValueError(f"StackedTracker: {k} models and {len(runs)} runs; give one "
                             "RunOptions(name=...) per member")
        self.models, self.domain = list(models), domain
        self.runs = list(runs)
        self.run_names = [str(r.name) for r in runs]
        self.train_data = _per_member(train, k, "train", _is_data)
        self.test_data = _per_member(test, k, "test", _is_data)
        settings = _per_member(settings, k, "settings", lambda v: False)
        self.settings = [s.tracker_settings() if isinstance(s, Settings) else
                         (s or TrackerSettings()) for s in settings]
        self.resume = list(resume) if resume is not None else [None] * k
        self.run_ids: list[str | None] = [r.run_id for r in runs]
        self.experiment, self.experiment_id = runs[0].experiment, experiment_id
        self.checkpoint_fn, self.progress = checkpoint, progress
        self.flush_every_s = min(s.checkpoint_every_s for s in self.settings)
        self.trackers: list[GrokTracker] = []
        self.failed: dict[int, BaseException] = {}
        self.settled: dict[int, int] = {}        # member -> the step its run ended, settled
        self._last_flush = time.monotonic()
        self._bar = None

    @property
    def alive(self) -> list[int]:
        """Members still training (not FAILED, not ended settled)."""
        return [k for k in range(len(self.trackers))
                if k not in self.failed and k not in self.settled]

    # ------------------------------------------------------------------ start
    def __enter__(self) -> "StackedTracker":
        if self.experiment_id is None and self.experiment:
            self.experiment_id = use_experiment(self.experiment)
        reopen_runs([r for r in self.run_ids if r])       # continued runs: RUNNING again
        save = self.checkpoint_fn
        try:
            for k, model in enumerate(self.models):
                run_id = self.run_ids[k] or create_run(self.run_names[k], self.experiment_id,
                                                       dict(self.runs[k].tags or {}))
                self.run_ids[k] = run_id
                # the group decides when members flush (one clock): never by themselves
                recorder = Recorder(self.run_names[k], run_id=run_id, flush_every_s=math.inf,
                                    attach=True, end_attached=True, keep_previous=True)
                checkpoint = (lambda k=k: save(k)) if save is not None else None
                run = dataclasses.replace(self.runs[k], run_id=None, recorder=recorder,
                                          tags=None, progress=False, tune_report=False,
                                          checkpoint=checkpoint, resume=self.resume[k])
                tracker = GrokTracker(model, self.train_data[k], self.test_data[k],
                                      self.settings[k], domain=self.domain, run=run)
                self.trackers.append(tracker.start())
        except BaseException as err:
            for tracker in self.trackers:
                tracker.finish(err)
            # runs created for members never entered are not left RUNNING
            end_runs([r for r in self.run_ids[len(self.trackers):] if r], "FAILED")
            raise
        if self.progress:
            self._bar = step_bar(self.settings[0].steps, f"{len(self.trackers)} stacked runs",
                                 max((t.last_step or 0) for t in self.trackers))
        return self

    # ------------------------------------------------------------------ per step
    def step(self, step: int, losses: Tensor | Sequence[float] | None = None
             ) -> dict[int, dict[str, float]]:
        """Call once per optimisation step of the stacked model.

        Args:
            step: the step just taken.
            losses: (K,) the members' minibatch losses (checked for divergence at measured
                steps, as ``GrokTracker.step`` does).
        Returns:
            {member: metrics} of the members measured at this step (empty when none was due).
        """
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
        measured: dict[int, dict[str, float]] = {}
        for k in self.alive:
            try:
                values = self.trackers[k].step(step, None if losses is None else losses[k])
            except DivergenceError as err:
                self._fail(k, err)
                continue
            if values is not None:
                measured[k] = values
            if self.trackers[k].settled:           # until: settled: this member is done
                self.settled[k] = step
                self.trackers[k].finish()           # FINISHED at its own step, checkpointed
        if measured and time.monotonic() - self._last_flush > self.flush_every_s:
            self.flush(step)
        return measured

    def flush(self, step: int) -> None:
        """Every live member's metrics and checkpoint at ``step``, together."""
        for k in self.alive:
            try:
                self.trackers[k].flush(step)
            except DivergenceError as err:
                self._fail(k, err)
        self._last_flush = time.monotonic()

    def _fail(self, k: int, err: DivergenceError) -> None:
        """Member k diverged: its run ends FAILED (last good checkpoint kept); the rest go on."""
        self.failed[k] = err
        logger.info(f"grok-mlflow: {self.run_names[k]} diverged ({err}); its run ends FAILED, "
                    f"{len(self.alive)} other member(s) go on")
        self.trackers[k].finish(err)

    # ------------------------------------------------------------------ end
    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        if self._bar is not None:
            self._bar.close()
        first: BaseException | None = None
        for k in self.alive:          # each member ends as a single run would; all of them
            try:
                self.trackers[k].finish(exc)
            except Exception as err:  # noqa: BLE001 - end the others, then raise the first
                first = first or err
        if first is not None and exc_type is None:
            raise first
        return False

    @property
    def history(self) -> list[dict[int, dict[str, float]]]:
        """Each member's measured history."""
        return [t.history for t in self.trackers]


def align_checkpoints(states: Sequence[Mapping[str, Any] | None],
                      names: Sequence[str]) -> list[Mapping[str, Any] | None]:
    """The members' checkpoints at one common step, to resume a stacked group exactly.

    Members write checkpoints together; a kill between two members' writes leaves some a flush
    ahead. Each checkpoint holds the one before it (``"previous"``; None: there was none, the
    member starts again from step 0), so every member can be taken back to the earliest step.
    A member without a checkpoint (none yet, or a torn one) takes the whole group back to step
    0; each run then logs only the steps it has not logged (exact: training is deterministic).

    Args:
        states: each member's last checkpoint (None: it has none).
        names: the members' names, for the error.
    Returns:
        K checkpoints (or None: start from scratch), all at one step.
    Raises:
        SettingsError: the checkpoints are more than one flush apart.
    """
    present = [s for s in states if s is not None]
    if len(present) < len(states):
        return [None] * len(states)
    steps = [int(s["step"]) for s in present]
    target = min(steps)
    aligned: list[Mapping[str, Any] | None] = []
    for state, step, name in zip(present, steps, names):
        previous = state.get("previous")
        if step == target:
            aligned.append(state)
        elif previous is None and target == 0:
            aligned.append(None)
        elif previous is not None and int(previous["step"]) == target:
            aligned.append(previous)
        else:
            raise SettingsError(
                f"resume: the stacked members' checkpoints are more than one flush apart "
                f"({', '.join(f'{n}: step {s}' for n, s in zip(names, steps))}); {name} "
                f"cannot be taken back to step {target}")
    return aligned
