"""A sweep's trials as Ray Tune runs them: one child run per trial, or one stacked group.

``run_trial`` is the function Ray Tune calls: a ``TrialConfig`` trains by the ordinary ``train``
inside its child run of the sweep's parent; a ``TrialGroup`` (trials that stack) by
``train_stacked``, one child run per member. A restarted trial (Ray's ``FailureConfig``, or a
resumed sweep) continues its child run(s) from the last checkpoint; a finished one returns at
once. Both report to the driver's live table (``progress.SweepProgress``) and watch the driver's
stop flag (a named Ray actor, ``stop_flag``), so a Ctrl-C of the sweep ends each trial's run
KILLED at a step boundary with a checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from typing import Any, Iterator, Mapping

import ray
from ray import tune

from ..runner.training import train, train_stacked
from ..settings import Settings, apply_values
from ..store.sweep_runs import child_run, run_statuses, trial_run_id
from ..store.tracking_store import tag_run, use_tracking_uri
from ..tracker.tracking import StepBoundaryInterrupt
from .spec import SweepSpec, trial_name

__all__ = ["TrialConfig", "TrialGroup", "run_trial", "stop_flag", "trial_configs"]


@dataclasses.dataclass(frozen=True)
class TrialConfig:
    """One trial as Ray Tune hands it to ``run_trial``: its name and grid values (``overrides``),
    the sweep's resolved base settings as params, and where its child run goes."""

    name: str
    overrides: dict[str, Any]
    base: dict[str, str]
    tracking_uri: str
    parent_run_id: str
    experiment_id: str
    sweep: str

    def __str__(self) -> str:                    # Tune's tables and trial names
        return self.name


@dataclasses.dataclass(frozen=True)
class TrialGroup:
    """Trials stacked into one Ray trial (``run_stacked_trial``): one run per member."""

    name: str
    members: list[TrialConfig]

    def __str__(self) -> str:
        return self.name


def _trial_settings(config: TrialConfig) -> Settings:
    """A trial's settings: the sweep's resolved base and its overrides."""
    base = dict(config.base)
    preset = base.pop("preset")  # already resolved into the values; trials run in another cwd
    return apply_values(dataclasses.replace(Settings.from_strings(base), preset=preset),
                        config.overrides)


def _trial_tags(config: TrialConfig) -> dict[str, str]:
    return {"mlflow.parentRunId": config.parent_run_id, "grok_mlflow.sweep": config.sweep,
            "grok_mlflow.trial": config.name}


def run_trial(space: dict[str, Any]) -> None:
    """One Ray Tune trial: a child run of the sweep's parent, trained by the ordinary ``train``;
    a stacked group (``members``) goes to ``run_stacked_trial``."""
    config = space["trial"]
    os.environ.pop("MLFLOW_RUN_ID", None)   # inherited from `mlflow run`: would resume the parent
    if isinstance(config, TrialGroup):
        return run_stacked_trial(config)
    use_tracking_uri(config.tracking_uri)
    settings = _trial_settings(config)
    tags = _trial_tags(config)
    report = _Reporter(_stop_asked(config.parent_run_id), settings.steps)
    if report.stop_asked(force=True):          # the sweep is being stopped: do not start
        return
    # A restarted trial (FailureConfig) continues its own child run from its last checkpoint.
    node = _ray_node()
    earlier = trial_run_id(config.experiment_id, config.parent_run_id, config.name)
    if earlier:
        if run_statuses([earlier]) == ["FINISHED"]:   # a resumed sweep: this trial is done
            return
        tag_run(earlier, {"grok_mlflow.ray_node_resumed": node})   # where it continued
        with report.stop_asked.ends_trial():
            result = train(settings, run_name=config.name, progress=False, resume=earlier,
                           on_progress=report.progress, progress_every_s=1.0)
    else:
        with report.stop_asked.ends_trial(), child_run(config.name, config.experiment_id,
                                                       {**tags, "grok_mlflow.ray_node": node}):
            result = train(settings, run_name=config.name, progress=False,
                           on_progress=report.progress, progress_every_s=1.0)
    if report.stop_asked.stopped:            # stopped mid-run: no result to report
        return report.end({})
    # the end: every final metric but LC per layer (Ray's result table)
    report.end({k.replace("/", "_"): v for k, v in result.metrics.items()
                if not k.startswith("lc") or k.count("/") == 1})


class _Reporter:
    """What a trial (one run, or a stacked group's members) tells the driver's live table
    (``progress.SweepProgress``) through ``ray.tune.report``: its step and the shown metrics at
    every measured step (``progress``: the ``on_progress`` of ``train`` and ``train_stacked``,
    where the sweep's stop flag is also looked at), then STOPPED or its last report (``end``)."""

    SHOWN = ("acc/test", "lc/train")

    def __init__(self, stop_asked: _StopAsked, steps: int, stacked: bool = False):
        self.stop_asked, self.steps, self.stacked = stop_asked, steps, stacked

    def shown(self, latest: Mapping[str, Any]) -> dict[str, Any]:
        """The shown metrics: of the run, or of every member under ``members``."""
        def pick(metrics: Mapping[str, float]) -> dict[str, float]:
            return {k.replace("/", "_"): v for k, v in metrics.items() if k in self.SHOWN}
        if self.stacked:
            return {"members": {name: pick(metrics) for name, metrics in latest.items()}}
        return pick(latest)

    def progress(self, step: int, latest: Mapping[str, Any]) -> None:
        self.stop_asked.at(step)
        tune.report({"step": step, "steps": self.steps, **self.shown(latest)})

    def end(self, final: Mapping[str, Any]) -> None:
        if self.stop_asked.stopped:
            tune.report({"stopped": 1})        # the live table: STOPPED at its step
        else:
            tune.report({"step": self.steps, "steps": self.steps, **final})


class _StopAsked:
    """A trial's view of the driver's stop flag (``_StopFlag``, a named Ray actor: it reaches
    trials on every node): called at most once a second; ``at(step)`` raises, between two
    steps, the ``KeyboardInterrupt`` that makes the tracker end its run(s) KILLED with a
    checkpoint of that step; ``ends_trial()`` turns it into the trial's normal return."""

    def __init__(self, actor: Any):
        self.actor, self.last, self.stopped = actor, 0.0, False

    def __call__(self, force: bool = False) -> bool:
        if self.actor is None or (not force and time.monotonic() - self.last < 1.0):
            return False
        self.last = time.monotonic()
        try:
            return bool(ray.get(self.actor.get.remote(), timeout=10))
        except Exception:  # noqa: BLE001 - the driver is gone: Ray ends this trial anyway
            return False

    def at(self, step: int) -> None:
        if self():
            # the tracker checkpoints this step
            raise StepBoundaryInterrupt(f"the sweep was stopped after step {step}")

    @contextlib.contextmanager
    def ends_trial(self) -> Iterator[None]:
        try:
            yield
        except KeyboardInterrupt:
            if self.actor is None:
                raise
            self.stopped = True


def _stop_asked(parent_id: str) -> _StopAsked:
    try:
        return _StopAsked(ray.get_actor(f"grok_mlflow_stop_{parent_id}"))
    except Exception:  # noqa: BLE001 - no flag (a sweep started by an older driver)
        return _StopAsked(None)


def stop_flag(parent_id: str) -> Any:
    """The driver's stop flag for its trials: a named Ray actor holding one bool."""
    @ray.remote(num_cpus=0)
    class StopFlag:
        def __init__(self):
            self.value = False

        def set(self) -> None:
            self.value = True

        def get(self) -> bool:
            return self.value

    return StopFlag.options(  # type: ignore[attr-defined]  # ray.remote made it an ActorClass
        name=f"grok_mlflow_stop_{parent_id}").remote()


def _ray_node() -> str:
    """The id of the Ray node this trial runs on (tagged on its child run)."""
    return ray.get_runtime_context().get_node_id()


def run_stacked_trial(group: TrialGroup) -> None:
    """One Ray Tune trial that trains a stacked group (``training.train_stacked``): one child
    run per member. A restarted group continues its members' runs from their checkpoints
    (members that already ended, FINISHED or FAILED, are not trained again)."""
    first = group.members[0]
    use_tracking_uri(first.tracking_uri)
    earlier = [trial_run_id(m.experiment_id, m.parent_run_id, m.name) for m in group.members]
    known = [r for r in earlier if r]
    status = dict(zip(known, run_statuses(known)))
    todo = [(m, r) for m, r in zip(group.members, earlier)
            if r is None or status[r] not in ("FINISHED", "FAILED")]
    if not todo:
        return
    settings = [_trial_settings(m) for m, _ in todo]
    names = [m.name for m, _ in todo]
    steps = settings[0].steps

    report = _Reporter(_stop_asked(first.parent_run_id), steps, stacked=True)
    if report.stop_asked(force=True):          # the sweep is being stopped: do not start
        return
    with report.stop_asked.ends_trial():
        results = train_stacked(
            settings, run_names=names, experiment_id=first.experiment_id,
            tags=[{**_trial_tags(m), "grok_mlflow.stack": group.name} for m, _ in todo],
            resume=[r for _, r in todo] if any(r for _, r in todo) else None, progress=False,
            on_progress=report.progress, progress_every_s=1.0)
    if report.stop_asked.stopped:            # stopped mid-run: no results to report
        return report.end({})
    report.end(report.shown({name: r.metrics for name, r in zip(names, results)}))


def _group_name(members: list[dict[str, Any]], index: int, groups: int) -> str:
    """``stack 1/2 (4 runs)``: a stacked group's name in Ray and in the members' tags."""
    return f"stack {index}/{groups} ({len(members)} runs)"


def trial_configs(spec: SweepSpec, groups: list[list[dict[str, Any]]], uri: str,
                   parent_id: str, experiment_id: str
                   ) -> tuple[list[TrialConfig], list[TrialConfig | TrialGroup]]:
    """Every trial's config, and Ray Tune's trials: a trial's config, or a stacked group."""
    # relative paths would resolve inside each trial's own directory
    base = dataclasses.replace(spec.base, data_root=os.path.abspath(spec.base.data_root)
                               ).to_params()
    configs = [TrialConfig(name=trial_name(o), overrides=o, base=base, tracking_uri=uri,
                           parent_run_id=parent_id, experiment_id=experiment_id,
                           sweep=spec.name) for o in spec.trials()]
    by_name = {c.name: c for c in configs}
    trials = [by_name[trial_name(g[0])] if len(g) == 1 else
              TrialGroup(_group_name(g, i, len(groups)), [by_name[trial_name(o)] for o in g])
              for i, g in enumerate(groups, start=1)]
    return configs, trials
