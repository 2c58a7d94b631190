"""Ray Tune sweeps over any settings: one MLflow parent run, one child run per trial.

A spec is YAML::

    name: width                      # optional; default: the file name
    base:                            # a preset and/or settings shared by every trial
      preset: projects/digits_region_migration.yaml
      steps: 3000
    grid:                            # setting -> values; the trials are the full product
      width: [50, 200, 800]
      seed: [0, 1]
    resources: {cpu: 1, gpu: 0}      # per trial (gpu may be a fraction)
    max_concurrent: 2                # trials at once (default: as many as resources allow)
    max_failures: 2                  # a trial that dies is restarted this often; it continues
                                     # its child run from the run's last checkpoint
    ensemble: auto                   # auto: trials that differ only in shape-keeping settings
                                     # (seed, lr, weight_decay, ...) train as one stacked model;
                                     # off: one process per trial
    max_members: 16                  # at most this many trials in one stacked group
    pending_timeout_s: 600           # an autoscaling cluster: resources no node has yet are a
                                     # warning, and a trial PENDING longer ends the sweep
                                     # (default 0: no autoscaler; refused before any run)
    claims:                          # the paper's claims, judged over the trials at the end
      - text: "Increasing width hastens region migration"
        figure: "5"
        quantity: grok/migration_onset_step
        trend: decreasing            # see grok_mlflow.findings.claims for every field and the rules

With ``ensemble: auto`` (the default) the trials are grouped (``stack_groups``): trials whose
settings differ only in what ``stacking.STACKABLE`` lists train together as one stacked model
in one Ray trial (``training.train_stacked``), each still its own child run with everything a
single trial logs. A group of one trains as an ordinary trial. A CPU sweep is cut into as many
groups as it would run trials at once (``_slots``: the cluster's CPUs over the spec's CPUs per
trial, at most ``max_concurrent``), each group on its share of the CPUs: measuring goes member by
member, and two 1-CPU groups measure in parallel where one 2-CPU group would not.

Every trial runs the same ``train`` as a single run (same tracker, same metrics, ``grok/*``
phases) inside a child run named by its varied settings (``width=200,seed=1``), tagged
``mlflow.parentRunId``. The parent run holds the spec (params and artifact), a CSV of every
trial's phase steps and final metrics, and comparison figures; the experiment gets a saved MLflow
UI view of the trials (``recorder.publish_sweep_view``), linked from its description. With
``claims:`` the parent's description opens with each claim's verdict (``claims.evaluate``), also
in its ``claims.md`` and ``figures/claims.png`` and on the sweep's last terminal lines.

Known traps handled here (seen with Ray 2.60 / MLflow 3.17): trials report with
``ray.tune.report``; ``RunConfig`` gets an absolute ``storage_path``; trials run with their trial
directory as cwd, so the tracking URI is made absolute in the driver and handed to each trial in
its config (workers do not see environment changes made after ``ray.init``); the SQLite database
is created in the driver before trials start (parallel first-time creation races in MLflow's
migrations); ``MLFLOW_RUN_ID`` inherited from ``mlflow run`` is dropped in trials (else every
trial would resume the parent); child runs are ended explicitly. No early-stopping scheduler:
ASHA would stop late-grokking runs.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import itertools
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..settings import Settings, SettingsError, apply_values, load_preset, read_yaml

__all__ = ["SweepSpec", "load_spec", "run_sweep", "select_trials", "trial_name"]


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep spec: base settings, the grid, per-trial resources, concurrency."""

    name: str
    base: Settings
    grid: dict[str, list[Any]]
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1.0, "gpu": 0.0})
    max_concurrent: int = 0
    max_failures: int = 2
    source: str = ""
    ensemble: str = "auto"
    max_members: int = 16
    claims: tuple = ()        # claims.Claim, judged at the end
    pending_timeout_s: float = 0.0   # > 0: an autoscaling cluster; a trial may wait this long
    only: str = ""            # a batch of the grid (``select_trials``): "dtype=float64;loss=mse"

    def trials(self) -> list[dict[str, Any]]:
        """Every combination of the grid, as {setting: value}, in spec order."""
        keys = list(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*self.grid.values())]

    def stack_groups(self, slots: int = 1) -> list[list[dict[str, Any]]]:
        """The trials in the groups that train together (``ensemble: auto``): same
        ``stacking.stack_key``, cut into groups of near-equal size in grid order, at most
        ``max_members`` each; while there are fewer than ``slots`` groups the largest are cut
        again, so that a machine that runs ``slots`` trials at once also runs that many groups
        at once (measuring goes member by member: two 1-CPU groups measure in parallel where
        one 2-CPU group would not). With ``ensemble: off`` every trial alone."""
        from ..runner.stacking import stack_key

        trials = self.trials()
        if self.ensemble == "off":
            return [[t] for t in trials]
        sets: dict[Any, list[int]] = {}
        for i, trial in enumerate(trials):
            key = stack_key(apply_values(self.base, trial))
            sets.setdefault(key if key is not None else ("alone", i), []).append(i)
        members = list(sets.values())
        parts = [-(-len(m) // self.max_members) for m in members]
        while sum(parts) < slots:                       # cut the largest groups again
            cuttable = [k for k, (m, p) in enumerate(zip(members, parts)) if p < len(m)]
            if not cuttable:
                break
            parts[max(cuttable, key=lambda k: len(members[k]) / parts[k])] += 1
        groups: list[list[int]] = []
        for m, p in zip(members, parts):
            size, extra = divmod(len(m), p)
            bounds = [j * size + min(j, extra) for j in range(p + 1)]
            groups += [m[a:b] for a, b in zip(bounds, bounds[1:])]
        return [[trials[i] for i in g] for g in sorted(groups)]


def select_trials(spec: SweepSpec, only: list[str]) -> SweepSpec:
    """The batch of ``spec`` that ``--only KEY=V1,V2`` (repeatable) names: each named swept
    setting narrowed to those of its values, in the spec's order. The batch is its own sweep,
    ``NAME[KEY=V1,V2;...]``, in the spec's experiment, so that a long spec runs in batches
    (one per session) and each batch resumes with the same ``--only``. ``SettingsError`` in
    one line for a setting that is not swept or a value that is not in its list."""
    if not only:
        return spec
    grid = dict(spec.grid)
    for item in only:
        key, sep, text = item.partition("=")
        if not sep or key not in spec.grid:
            raise SettingsError(f"--only {item!r}: must be KEY=VALUE[,VALUE...] with KEY a swept "
                                f"setting: {', '.join(spec.grid)}")
        known = {_fmt(v): v for v in spec.grid[key]}
        wanted = [v.strip() for v in text.split(",")]
        missing = [v for v in wanted if v not in known]
        if missing:
            raise SettingsError(f"--only {item!r}: {', '.join(missing)} not in the grid's {key} "
                                f"values: {', '.join(known)}")
        grid[key] = [v for v in spec.grid[key] if _fmt(v) in wanted]
    label = ";".join(f"{k}={_fmt(v)}" for k, v in grid.items() if v != spec.grid[k])
    return dataclasses.replace(spec, name=f"{spec.name}[{label}]", grid=grid, only=label)


def trial_name(overrides: dict[str, Any]) -> str:
    """``width=200,depth=4``: the varied settings of one trial."""
    return ",".join(f"{k}={_fmt(v)}" for k, v in overrides.items())


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_fmt(v) for v in value)
    return str(value)


def load_spec(path: str) -> SweepSpec:
    """Read and validate a spec file; any problem raises ``SettingsError`` naming the file."""
    data = read_yaml(path, "spec")
    if not isinstance(data, dict) or not isinstance(data.get("grid"), dict) or not data["grid"]:
        raise SettingsError(f"spec {path}: needs a 'grid:' mapping of setting -> list of values")
    unknown = sorted(set(data) - {"name", "base", "grid", "resources", "max_concurrent",
                                  "max_failures", "ensemble", "max_members", "claims", "stop",
                                  "pending_timeout_s"})
    if unknown:
        raise SettingsError(f"spec {path}: unknown key(s) {', '.join(unknown)}; valid: name, "
                            "base, grid, resources, max_concurrent, max_failures, ensemble, "
                            "max_members, claims, stop, pending_timeout_s")
    base_values = data.get("base") or {}
    if not isinstance(base_values, dict):
        raise SettingsError(f"spec {path}: 'base:' must be a mapping of setting: value")
    base_values = {**dict(base_values), **_stop_values(data.get("stop"), path)}
    preset = base_values.pop("preset", "")
    try:
        base = load_preset(preset) if preset else Settings()
        base = apply_values(base, base_values)
        grid = {}
        for key, values in data["grid"].items():
            if not isinstance(values, list) or not values:
                raise SettingsError(f"grid.{key}: must be a non-empty list")
            grid[key] = values
            for value in values:                     # every grid value must make valid settings
                apply_values(base, {key: value})
    except SettingsError as err:
        raise SettingsError(f"spec {path}: {err}") from None
    resources = {"cpu": 1.0, "gpu": 0.0, **(data.get("resources") or {})}
    if set(resources) - {"cpu", "gpu"} or any(
            not isinstance(v, (int, float)) or v < 0 for v in resources.values()):
        raise SettingsError(f"spec {path}: resources must be {{cpu: >= 0, gpu: >= 0}}")
    max_concurrent = data.get("max_concurrent", 0)
    if not isinstance(max_concurrent, int) or max_concurrent < 0:
        raise SettingsError(f"spec {path}: max_concurrent must be an integer >= 0")
    max_failures = data.get("max_failures", 2)
    if not isinstance(max_failures, int) or max_failures < 0:
        raise SettingsError(f"spec {path}: max_failures must be an integer >= 0")
    ensemble = data.get("ensemble", "auto")
    if ensemble is False:            # YAML reads a bare `off` as false
        ensemble = "off"
    if ensemble not in ("auto", "off"):
        raise SettingsError(f"spec {path}: ensemble must be auto or off, got {ensemble!r}")
    max_members = data.get("max_members", 16)
    if isinstance(max_members, bool) or not isinstance(max_members, int) or max_members < 1:
        raise SettingsError(f"spec {path}: max_members must be an integer >= 1")
    pending = data.get("pending_timeout_s", 0)
    if isinstance(pending, bool) or not isinstance(pending, (int, float)) or pending < 0:
        raise SettingsError(f"spec {path}: pending_timeout_s must be a number of seconds >= 0")
    from ..findings.claims import parse_claims

    try:
        claims = tuple(parse_claims(data.get("claims"), grid))
    except SettingsError as err:
        raise SettingsError(f"spec {path}: {err}") from None
    return SweepSpec(name=str(data.get("name") or Path(path).stem), base=base, grid=grid,
                     resources={k: float(v) for k, v in resources.items()},
                     max_concurrent=max_concurrent, max_failures=max_failures,
                     source=str(path), ensemble=ensemble, max_members=max_members,
                     claims=claims, pending_timeout_s=float(pending))


def _stop_values(stop: Any, path: str) -> dict[str, Any]:
    """``stop: settled`` or ``stop: {rule: settled, min_steps: N}`` as settings: every trial
    trains ``until: settled`` (``grok_mlflow.tracker.settle``), ``steps`` its cap."""
    if stop is None:
        return {}
    rule, rest = (stop, {}) if isinstance(stop, str) else (
        (stop.get("rule"), {k: v for k, v in stop.items() if k != "rule"})
        if isinstance(stop, dict) else (None, {}))
    if rule != "settled" or set(rest) - {"min_steps"}:
        raise SettingsError(f"spec {path}: stop must be settled or {{rule: settled, min_steps: "
                            f"N}}; got {stop!r}")
    return {"until": "settled", **rest}


@dataclasses.dataclass(frozen=True)
class TrialConfig:
    """One trial as Ray Tune hands it to ``_trial``: its name and grid values (``overrides``),
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
    """Trials stacked into one Ray trial (``_stacked_trial``): one run per member."""

    name: str
    members: list[TrialConfig]

    def __str__(self) -> str:
        return self.name


def _is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def _trial_settings(config: TrialConfig) -> Settings:
    """A trial's settings: the sweep's resolved base and its overrides."""
    base = dict(config.base)
    preset = base.pop("preset")  # already resolved into the values; trials run in another cwd
    return apply_values(dataclasses.replace(Settings.from_strings(base), preset=preset),
                        config.overrides)


def _trial_tags(config: TrialConfig) -> dict[str, str]:
    return {"mlflow.parentRunId": config.parent_run_id, "grok_mlflow.sweep": config.sweep,
            "grok_mlflow.trial": config.name}


def _trial(space: dict[str, Any]) -> None:
    """One Ray Tune trial: a child run of the sweep's parent, trained by the ordinary ``train``;
    a stacked group (``members``) goes to ``_stacked_trial``."""
    config = space["trial"]
    os.environ.pop("MLFLOW_RUN_ID", None)   # inherited from `mlflow run`: would resume the parent
    if isinstance(config, TrialGroup):
        return _stacked_trial(config)
    from ray import tune

    from ..store.recorder import use_tracking_uri
    from ..store.sweep_runs import child_run, trial_run_id
    from ..runner.training import train

    use_tracking_uri(config.tracking_uri)
    settings = _trial_settings(config)
    tags = _trial_tags(config)
    stop_asked = _stop_asked(config.parent_run_id)
    if stop_asked(force=True):                 # the sweep is being stopped: do not start
        return
    # A restarted trial (FailureConfig) continues its own child run from its last checkpoint.
    def report_progress(step: int, metrics) -> None:   # the driver's live table (progress.py)
        stop_asked.at(step)
        tune.report({"step": step, "steps": settings.steps,
                     **{k.replace("/", "_"): v for k, v in metrics.items()
                        if k in ("acc/test", "lc/train")}})

    node = _ray_node()
    earlier = trial_run_id(config.experiment_id, config.parent_run_id, config.name)
    if earlier:
        from ..store.recorder import tag_run
        from ..store.sweep_runs import run_statuses

        if run_statuses([earlier]) == ["FINISHED"]:   # a resumed sweep: this trial is done
            return
        tag_run(earlier, {"grok_mlflow.ray_node_resumed": node})   # where it continued
        with stop_asked.ends_trial():
            result = train(settings, run_name=config.name, progress=False, resume=earlier,
                           on_progress=report_progress, progress_every_s=1.0)
    else:
        with stop_asked.ends_trial(), child_run(config.name, config.experiment_id,
                                                {**tags, "grok_mlflow.ray_node": node}):
            result = train(settings, run_name=config.name, progress=False,
                           on_progress=report_progress, progress_every_s=1.0)
    if stop_asked.stopped:
        tune.report({"stopped": 1})            # the live table: STOPPED at its step
        return
    tune.report({"step": settings.steps, "steps": settings.steps,
                 **{k.replace("/", "_"): v for k, v in result.metrics.items()
                    if not k.startswith("lc") or k.count("/") == 1}})


class _StopAsked:
    """A trial's view of the driver's stop flag (``_StopFlag``, a named Ray actor: it reaches
    trials on every node): called at most once a second; ``at(step)`` raises, between two
    steps, the ``KeyboardInterrupt`` that makes the tracker end its run(s) KILLED with a
    checkpoint of that step; ``ends_trial()`` turns it into the trial's normal return."""

    def __init__(self, actor: Any):
        self.actor, self.last, self.stopped = actor, 0.0, False

    def __call__(self, force: bool = False) -> bool:
        import time

        import ray

        if self.actor is None or (not force and time.monotonic() - self.last < 1.0):
            return False
        self.last = time.monotonic()
        try:
            return bool(ray.get(self.actor.get.remote(), timeout=10))
        except Exception:  # noqa: BLE001 - the driver is gone: Ray ends this trial anyway
            return False

    def at(self, step: int) -> None:
        if self():
            stop = KeyboardInterrupt(f"the sweep was stopped after step {step}")
            stop.at_step_boundary = True       # the tracker checkpoints this step's state
            raise stop

    @contextlib.contextmanager
    def ends_trial(self) -> Iterator[None]:
        try:
            yield
        except KeyboardInterrupt:
            if self.actor is None:
                raise
            self.stopped = True


def _stop_asked(parent_id: str) -> _StopAsked:
    import ray

    try:
        return _StopAsked(ray.get_actor(f"grok_mlflow_stop_{parent_id}"))
    except Exception:  # noqa: BLE001 - no flag (a sweep started by an older driver)
        return _StopAsked(None)


def _stop_flag(parent_id: str) -> Any:
    """The driver's stop flag for its trials: a named Ray actor holding one bool."""
    import ray

    @ray.remote(num_cpus=0)
    class StopFlag:
        def __init__(self):
            self.value = False

        def set(self) -> None:
            self.value = True

        def get(self) -> bool:
            return self.value

    return StopFlag.options(name=f"grok_mlflow_stop_{parent_id}").remote()


def _ray_node() -> str:
    """The id of the Ray node this trial runs on (tagged on its child run)."""
    import ray

    return ray.get_runtime_context().get_node_id()


def _stacked_trial(group: TrialGroup) -> None:
    """One Ray Tune trial that trains a stacked group (``training.train_stacked``): one child
    run per member. A restarted group continues its members' runs from their checkpoints
    (members that already ended, FINISHED or FAILED, are not trained again)."""
    from ray import tune

    from ..store.recorder import use_tracking_uri
    from ..store.sweep_runs import run_statuses, trial_run_id
    from ..runner.training import train_stacked

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

    stop_asked = _stop_asked(first.parent_run_id)
    if stop_asked(force=True):                 # the sweep is being stopped: do not start
        return

    def report_progress(step: int, latest) -> None:   # the driver's live table (progress.py)
        stop_asked.at(step)
        tune.report({"step": step, "steps": steps, "members": {
            name: {k.replace("/", "_"): v for k, v in metrics.items()
                   if k in ("acc/test", "lc/train")} for name, metrics in latest.items()}})

    with stop_asked.ends_trial():
        results = train_stacked(
            settings, run_names=names, experiment_id=first.experiment_id,
            tags=[{**_trial_tags(m), "grok_mlflow.stack": group.name} for m, _ in todo],
            resume=[r for _, r in todo] if any(r for _, r in todo) else None, progress=False,
            on_progress=report_progress, progress_every_s=1.0)
    if stop_asked.stopped:
        tune.report({"stopped": 1})            # the live table: STOPPED at its step
        return
    tune.report({"step": steps, "steps": steps, "members": {
        name: {k.replace("/", "_"): v for k, v in r.metrics.items()
               if k in ("acc/test", "lc/train")} for name, r in zip(names, results)}})


def _group_name(members: list[dict[str, Any]], index: int, groups: int) -> str:
    """``stack 1/2 (4 runs)``: a stacked group's name in Ray and in the members' tags."""
    return f"stack {index}/{groups} ({len(members)} runs)"


def run_sweep(spec: SweepSpec, *, ray_address: str | None = None,
              storage_path: str | None = None, experiment: str | None = None,
              verbose: bool = False, progress_every_s: float = 30.0,
              resume: str | None = None) -> str:
    """Run every trial of ``spec`` with Ray Tune; returns the parent run's id.

    Ctrl-C, SIGTERM or SIGHUP stop the sweep: Ray Tune stops the running trials, their child
    runs end KILLED (tagged ``grok_mlflow.interrupted`` with the signal and their last logged
    step), the parent ends KILLED and ``SweepInterrupted`` is raised (a second signal stops at
    once). ``resume="latest"`` (or a parent run id) continues an unfinished sweep of this spec
    (``resumable_parent``): the same parent run, a fresh Ray Tune run over every trial in which
    finished trials end at once, interrupted ones continue their child runs from their last
    checkpoints (each scheduled step logged once) and the rest start; then the trial table,
    figures and verdicts over all trials. The MLflow store is the record of what is done, not
    Ray Tune's experiment directory (``Tuner.restore`` needs that directory and the driver's
    Ray session; the store survives both, a kill -9 of the driver included).

    Args:
        experiment: the MLflow experiment of the parent and its children (default
            ``$MLFLOW_EXPERIMENT_NAME``, else the sweep's name: one experiment per sweep).
        verbose: Ray's and Ray Tune's own output too (default: only grok_mlflow's live table,
            ``progress.SweepProgress``, redrawn in place on a terminal or every
            ``progress_every_s`` seconds in a log).
        ray_address: an existing Ray cluster (``ray://...`` or ``host:port``); default
            ``$RAY_ADDRESS`` or a local Ray started for this sweep.
        storage_path: Ray Tune's results directory (default ``./ray_results``, made absolute).
    """
    import ray
    from ray import tune

    from .progress import SweepProgress
    from ..store.recorder import absolute_tracking_uri, use_tracking_uri
    from ..store.sweep_runs import publish_sweep_view, sweep_parent_run

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not verbose:   # Ray 2.60's new output engine prints its configuration box even when silent
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    uri = absolute_tracking_uri()
    use_tracking_uri(uri, create=True)       # creates the SQLite schema here, once
    resumed = resumable_parent(spec, resume, experiment) if resume else None  # before Ray
    address = ray_address or os.environ.get("RAY_ADDRESS") or None
    started_here = not ray.is_initialized()
    stops = _Stops(verbose)
    pending = _PendingTimeout(spec.pending_timeout_s, stops)
    stops.asked = f"{spec.resources['cpu']:g} CPU(s) and {spec.resources['gpu']:g} GPU(s)"
    if started_here:
        import logging
        ray.init(address=address, include_dashboard=False, log_to_driver=verbose,
                 configure_logging=verbose,
                 logging_level=logging.INFO if verbose else logging.WARNING)
    stops.install()           # after ray.init: Ray's driver installs its own SIGTERM handler
    try:
        cpus, slots = _cluster_slots(spec, uri)
        groups = spec.stack_groups(slots)
        tags = _parent_tags(spec, resumed)
        with sweep_parent_run(f"sweep:{spec.name}", _spec_params(spec, groups), tags,
                              spec.source, _experiment_for(spec, experiment),
                              resume=resumed.info.run_id if resumed else None
                              ) as (parent_id, experiment_id):
            again = f"grok-mlflow sweep {spec.source or spec.name} --resume" + (
                f" --experiment {experiment}" if experiment else "") + "".join(
                f" --only {part}" for part in spec.only.split(";") if part)
            print(f"Sweep {spec.name}: parent run {parent_id}"
                  f"{' (resumed)' if resumed else ''}. Ctrl-C stops it; `{again}` continues it.",
                  file=sys.stderr)
            configs, trials = _trial_configs(spec, groups, uri, parent_id, experiment_id)
            stops.flag = _stop_flag(parent_id)
            name = f"{spec.name}-{parent_id[:8]}" + (
                f"-resumed-{tags['grok_mlflow.resumed']}" if resumed else "")
            try:
                tuner = tune.Tuner(
                    tune.with_resources(_trial,
                                        lambda config: _resources(spec, config, cpus, slots)),
                    param_space={"trial": tune.grid_search(trials)},
                    tune_config=tune.TuneConfig(max_concurrent_trials=spec.max_concurrent or None),
                    run_config=tune.RunConfig(
                        storage_path=os.path.abspath(storage_path or "ray_results"), name=name,
                        verbose=2 if verbose else 0, callbacks=[SweepProgress(
                            spec.name, {c.name: _steps(spec, c.overrides) for c in configs},
                            every_s=progress_every_s), _loop_watch(pending, stops)],
                        failure_config=tune.FailureConfig(max_failures=spec.max_failures)))
                with stops.fitting():
                    results = tuner.fit()
            except KeyboardInterrupt:        # a signal before Tune's loop, or a second one
                stops.caught = stops.caught or [signal.SIGINT]
            if stops.caught or pending.expired:
                _stopped(spec, parent_id, stops, pending, again, started_here)
            errors = [str(r.error) for r in results if r.error]
            failed = _summarise(parent_id, spec)
            publish_sweep_view(parent_id, spec.name, list(spec.grid), len(configs))
            if errors or failed:
                first = errors[0][:500] if errors else failed[0]
                raise RuntimeError(f"{max(len(failed), len(errors))} of {len(configs)} trials "
                                   f"failed; first: {first}")
    finally:
        stops.restore()
        if started_here:
            ray.shutdown()
    return parent_id


def _parent_tags(spec: SweepSpec, resumed) -> dict[str, str]:
    """The parent run's tags: the sweep, this driver, and how often it was resumed."""
    tags = {"grok_mlflow.sweep": spec.name, "grok_mlflow.driver": _driver_key()}
    if resumed:
        tags["grok_mlflow.resumed"] = str(int(resumed.data.tags.get("grok_mlflow.resumed",
                                                                    "0")) + 1)
    return tags


def _stopped(spec: SweepSpec, parent_id: str, stops: "_Stops", pending: "_PendingTimeout",
             again: str, started_here: bool) -> None:
    """A sweep that a signal or a pending timeout ended: its Ray shut down (no trial may go on
    logging into a run ended here), then ``SweepInterrupted`` (the parent KILLED) or, for the
    timeout, ``SettingsError`` (the parent FAILED: the spec cannot run on this cluster)."""
    import ray

    from ..store.sweep_runs import end_interrupted_children

    if started_here:
        ray.shutdown()
    if not stops.caught:
        end_interrupted_children(parent_id, pending.expired)
        raise SettingsError(pending.expired)
    raise _interrupted(spec, parent_id, stops.caught[0], again)


def _cluster_slots(spec: SweepSpec, uri: str) -> tuple[float, int]:
    """The Ray cluster's CPUs and how many trials it runs at once; ``SettingsError`` for a
    several-node cluster with a tracking store local to this machine, or a trial no node fits."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) > 1 and _is_local_store(uri):
        raise SettingsError(
            f"tracking: the Ray cluster has {len(nodes)} nodes but the tracking URI {uri} is "
            "local to this machine; start `mlflow server` and set MLFLOW_TRACKING_URI=http://...")
    _check_fits(spec, nodes)
    resources = ray.cluster_resources()
    return float(resources.get("CPU", 1.0)), _slots(spec, resources)


def _trial_configs(spec: SweepSpec, groups: list[list[dict[str, Any]]], uri: str,
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


def _loop_watch(*watchers: Any):
    """A Ray Tune callback that hands the trials to each watcher's ``check`` at every step of
    Tune's loop (``_PendingTimeout``, ``_Stops``)."""
    from ray.tune import Callback

    class LoopWatch(Callback):
        def on_step_begin(self, iteration: int, trials: list, **info) -> None:
            for watcher in watchers:
                watcher.check(trials)

    return LoopWatch()


class _PendingTimeout:
    """When a trial has waited PENDING longer than ``seconds`` (an autoscaler that never brings
    the node), Tune's loop is ended as by Ctrl-C (``_Stops``) and ``expired`` says which trial;
    0 seconds: never."""

    def __init__(self, seconds: float, stops: "_Stops"):
        self.seconds, self.stops = seconds, stops
        self.since: dict[str, float] = {}
        self.expired = ""

    def check(self, trials: list) -> None:
        import time

        now = time.monotonic()
        for trial in trials:
            if trial.status != "PENDING":
                self.since.pop(trial.trial_id, None)
                continue
            waited = now - self.since.setdefault(trial.trial_id, now)
            if self.seconds and waited > self.seconds and not self.expired:
                self.expired = (f"resources: trial {trial.config['trial'].name} waited "
                                f"PENDING for {waited:.0f} s (pending_timeout_s "
                                f"{self.seconds:g}): no Ray node gave it {self.stops.asked}")
                self.stops.stop_tune()


class _Stops:
    """The driver's SIGINT, SIGTERM and SIGHUP: the first asks Ray Tune to end its loop
    gracefully (Tune's own SIGUSR1 handler, installed while it runs; its SIGINT handler is
    turned off, as it would only stop the loop for SIGINT and print ``Tuner.restore`` hints a
    ``grok-mlflow`` user cannot act on); outside Tune's loop, or a second time, it raises
    ``KeyboardInterrupt``. ``caught`` holds the signal numbers received."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
    GRACE_S = 60.0

    def __init__(self, verbose: bool):
        self.caught: list[int] = []
        self.verbose = verbose
        self.saved: dict[int, Any] = {}
        self.in_tune = False
        self.asked = ""
        self.flag: Any = None           # _stop_flag: set on the first signal
        self.asked_at = 0.0

    def install(self) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return                                       # signals reach the main thread only
        for name in self.SIGNALS:
            if hasattr(signal, name):
                number = getattr(signal, name)
                self.saved.setdefault(number, signal.getsignal(number))
                signal.signal(number, self._on_signal)

    def restore(self) -> None:
        for number, handler in self.saved.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
        self.saved.clear()

    @contextlib.contextmanager
    def fitting(self) -> Iterator[None]:
        import logging

        quiet = logging.getLogger("ray.tune.tune")        # "Stop signal received", "Resume ..."
        level = quiet.level
        if not self.verbose:
            quiet.setLevel(logging.ERROR)
        if hasattr(signal, "SIGUSR1"):
            signal.signal(signal.SIGUSR1, signal.SIG_DFL)  # no stale handler of an earlier fit
        before = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"    # ours stays SIGINT's handler
        self.in_tune = True
        try:
            yield
        finally:
            self.in_tune = False
            quiet.setLevel(level)
            if before is None:
                os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
            else:
                os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = before

    def _on_signal(self, signum: int, frame: Any) -> None:
        import time

        first = not self.caught
        self.caught.append(signum)
        if first and self.in_tune and self.flag is not None:
            self.flag.set.remote()      # the trials stop at their next step, with a checkpoint
            self.asked_at = time.monotonic()
        elif not (first and self.stop_tune(signum, frame)):
            raise KeyboardInterrupt

    def check(self, trials: list) -> None:
        """Once the trials were asked to stop: end Tune's loop when none runs any more, or
        after ``GRACE_S`` (a trial that does not answer)."""
        import time

        if self.asked_at and (not any(t.status == "RUNNING" for t in trials) or
                              time.monotonic() - self.asked_at > self.GRACE_S):
            self.asked_at = 0.0
            self.stop_tune()

    def stop_tune(self, signum: int = 0, frame: Any = None) -> bool:
        """Ask Ray Tune to end its loop (its SIGUSR1 handler); False outside its loop."""
        tune_stop = signal.getsignal(signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else None
        if self.in_tune and callable(tune_stop) and tune_stop is not self._on_signal:
            tune_stop(signum or getattr(signal, "SIGUSR1", 0), frame)  # Tune stops the trials
            return True
        return False


def _interrupted(spec: SweepSpec, parent_id: str, signum: int, again: str) -> Exception:
    """End the interrupted trials' child runs KILLED; the ``SweepInterrupted`` to raise, its
    message the sweep's last lines: what was done and the command that continues it."""
    from ..store.sweep_runs import SweepInterrupted, child_runs, end_interrupted_children

    name = signal.Signals(signum).name
    stopped = end_interrupted_children(parent_id, f"sweep interrupted by {name}; continue "
                                                  f"with `{again}`")
    done = sum(r.info.status == "FINISHED" for r in child_runs(parent_id))
    total = len(spec.trials())
    where = ", ".join(f"{t} at step {s:,}" if s is not None else t for t, s in stopped)
    return SweepInterrupted(signum, (
        f"Sweep {spec.name} interrupted by {name}: {done} of {total} trials finished, "
        f"{len(stopped)} stopped{f' ({where})' if where else ''}, "
        f"{total - done - len(stopped)} not started or ended otherwise; parent run {parent_id} "
        f"KILLED.\nContinue it with:\n  {again}"))


def _driver_key() -> str:
    """``host:pid:start`` of this process (start: its start time in clock ticks since boot, so
    that a reused pid is not taken for this driver)."""
    import socket

    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid())}"


def _start_ticks(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _driver_alive(key: str) -> bool:
    """Whether the driver ``key`` (``_driver_key``) still runs on this host."""
    import socket

    host, _, rest = key.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, PermissionError):
        return False
    return not start or _start_ticks(int(pid)) == start


RESUME_COMPARED = ("grid.", "base.", "trials", "ensemble", "max_members")


def resumable_parent(spec: SweepSpec, resume: str, experiment: str | None = None):
    """The parent run (``mlflow.entities.Run``) that ``resume`` continues: ``"latest"``, the
    newest unfinished sweep of ``spec``'s name in its experiment, or a parent run id.
    ``SettingsError`` in one line where there is none, it finished, its driver still runs on
    this host, or the spec changed since (naming the changed keys; the claims may change: they
    are judged at the end)."""
    from ..store.sweep_runs import get_run, unfinished_sweeps

    where = _experiment_for(spec, experiment)
    if resume == "latest":
        found = unfinished_sweeps(where, spec.name)
        if not found:
            raise SettingsError(f"resume: no unfinished sweep {spec.name!r} in experiment "
                                f"{where or 'of this run'!r}; run it without --resume")
        parent = found[0]
    else:
        try:
            parent = get_run(resume)
        except LookupError as err:
            raise SettingsError(f"resume: {err}") from None
        if parent.data.tags.get("grok_mlflow.sweep") != spec.name or \
                "mlflow.parentRunId" in parent.data.tags:
            raise SettingsError(f"resume: run {resume} is not the parent run of a sweep "
                                f"{spec.name!r}")
        if parent.info.status == "FINISHED":
            raise SettingsError(f"resume: sweep run {resume} already finished")
    run_id = parent.info.run_id
    if parent.info.status == "RUNNING" and _driver_alive(
            parent.data.tags.get("grok_mlflow.driver", "")):
        raise SettingsError(f"resume: sweep run {run_id} is still running (its driver, "
                            f"{parent.data.tags['grok_mlflow.driver'].split(':')[1]}, is "
                            "alive on this host); stop it first")
    now = {k: str(v)[:6000] for k, v in _spec_params(spec, []).items()
           if k.startswith(RESUME_COMPARED)}
    then = {k: v for k, v in parent.data.params.items() if k.startswith(RESUME_COMPARED)}
    changed = sorted(k for k in set(now) | set(then) if now.get(k) != then.get(k))
    if changed:
        shown = ", ".join(f"{k} ({then.get(k, 'absent')} -> {now.get(k, 'absent')})"
                          for k in changed[:5]) + (f" and {len(changed) - 5} more"
                                                   if len(changed) > 5 else "")
        raise SettingsError(f"resume: the spec changed since sweep run {run_id}: {shown}; "
                            "put it back, or run it as a new sweep without --resume")
    return parent


def _slots(spec: SweepSpec, cluster: dict[str, float]) -> int:
    """How many trials of a CPU-only sweep run at once when each runs alone: what the cluster's
    CPUs hold at the spec's CPUs per trial, at most ``max_concurrent``. A GPU sweep gets 1: its
    groups stay whole (how groups sharing a GPU compare with one larger group is not measured
    yet)."""
    if spec.resources["gpu"]:
        return 1
    cpu = spec.resources["cpu"]
    fit = int(cluster.get("CPU", 1.0) / cpu + 1e-9) if cpu else len(spec.trials())
    return max(1, min(fit, spec.max_concurrent or fit))


def _check_fits(spec: SweepSpec, nodes: list[dict]) -> None:
    """``SettingsError`` before any run when no Ray node can ever host one trial (a spec copied
    from a bigger machine): Ray would leave every trial PENDING for ever."""
    want = {"CPU": spec.resources["cpu"], "GPU": spec.resources["gpu"]}
    have = [n.get("Resources", {}) for n in nodes]
    if any(all(r.get(k, 0.0) >= v for k, v in want.items() if v) for r in have):
        return
    best = max(have, key=lambda r: (r.get("GPU", 0.0), r.get("CPU", 0.0)), default={})
    asked = (f"a trial asks for {want['CPU']:g} CPU(s) and {want['GPU']:g} GPU(s), but the "
             f"largest Ray node has {best.get('CPU', 0.0):g} CPU(s) and "
             f"{best.get('GPU', 0.0):g} GPU(s) ({len(nodes)} node(s))")
    if spec.pending_timeout_s:          # an autoscaling cluster may add the node it needs
        print(f"grok-mlflow: warning: resources: {asked}; waiting up to "
              f"{spec.pending_timeout_s:g} s (pending_timeout_s) for the autoscaler",
              file=sys.stderr)
        return
    raise SettingsError(
        f"resources: {asked}; lower resources: or join a bigger cluster (--ray-address; on an "
        "autoscaling cluster set pending_timeout_s: to wait for new nodes)")


def _resources(spec: SweepSpec, config: dict[str, Any], cpus: float, slots: int = 1):
    """A Ray trial's resources: the spec's per trial; a stacked group of K trials takes K times
    the CPUs, at most its share of the cluster's when ``slots`` groups run at once (Ray gives a
    trial as many threads as CPUs), and one trial's GPU share (its members share a device)."""
    from ray import tune

    members = len(getattr(config["trial"], "members", [None]))
    cpu = min(spec.resources["cpu"] * members, max(cpus / slots, spec.resources["cpu"]))
    bundle = {"CPU": cpu, **({"GPU": spec.resources["gpu"]} if spec.resources["gpu"] else {})}
    return tune.PlacementGroupFactory([bundle])


def _steps(spec: SweepSpec, overrides: dict[str, Any]) -> int:
    """A trial's total steps (``steps`` may be on the grid)."""
    return int(overrides.get("steps", spec.base.steps))


def _experiment_for(spec: SweepSpec, experiment: str | None) -> str | None:
    """The sweep's experiment: the one asked for, ``$MLFLOW_EXPERIMENT_NAME``, else the sweep's
    name. None under ``mlflow run`` (its launcher run, which becomes the parent, already lives in
    the experiment ``mlflow run --experiment-name`` chose)."""
    if os.environ.get("MLFLOW_RUN_ID"):
        return None
    return (experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
            or spec.name.split("[", 1)[0])          # a batch lives with its spec


def _spec_params(spec: SweepSpec, groups: list[list[dict[str, Any]]]) -> dict[str, str]:
    params = {f"grid.{k}": _fmt(v) for k, v in spec.grid.items()}
    params.update({f"base.{k}": v for k, v in spec.base.to_params().items()})
    params["trials"] = str(len(spec.trials()))
    params["ensemble"], params["max_members"] = spec.ensemble, str(spec.max_members)
    params["stacked_groups"] = str(sum(len(g) > 1 for g in groups))
    return params


def _summarise(parent_id: str, spec: SweepSpec) -> list[str]:
    """CSV of every trial's phases and final metrics, comparison figures and the trials'
    reports, on the parent; returns ``trial: why`` for each trial whose run FAILED."""
    from ..findings.phases import BRACKETED, PHASE_KEYS, SHAPE_KEYS
    from ..findings.plots import claims_figure, sweep_figures
    from ..findings.history import read_history_csv
    from ..store.recorder import log_run_figure, log_run_text, tag_run
    from ..store.stored import run_artifact_text
    from ..store.sweep_runs import child_runs
    from ..findings.claims import claims_markdown
    from ..findings.report import report_table, reproduction_report

    # the grid's order (sorted by the swept values as the spec lists them): rows, legends
    order = {trial_name(o): i for i, o in enumerate(spec.trials())}
    runs = sorted(child_runs(parent_id), key=lambda r: order.get(
        r.data.tags.get("mlflow.runName", ""), len(order)))
    finals = ["acc/train", "acc/test", "lc/train", "lc/test", "lc/random"]
    out = io.StringIO()
    writer = csv.writer(out)
    columns = [*PHASE_KEYS, *SHAPE_KEYS,
               *(k + end for k in BRACKETED for end in ("_low", "_high"))]
    writer.writerow(["run_id", "trial", *spec.grid, "status", "stop_step", *columns, *finals])
    histories = {}
    for run in runs:
        name = run.data.tags.get("mlflow.runName", run.info.run_id)
        writer.writerow([run.info.run_id, name, *(run.data.params.get(k, "") for k in spec.grid),
                         run.info.status, run.data.tags.get("grok_mlflow.stop_step", ""),
                         *(run.data.metrics.get(k, "") for k in columns),
                         *(run.data.metrics.get(k, "") for k in finals)])
        try:
            text = run_artifact_text(run.info.run_id, "history.csv")
        except Exception:  # noqa: BLE001 - a trial that died early has no history to draw
            continue
        histories[name] = (run, read_history_csv(text))
    log_run_text(parent_id, out.getvalue(), "phases.csv")
    verdicts = judge_claims(spec, runs)
    claims_text = ""
    if verdicts:
        claims_text = claims_markdown(verdicts, spec.name)
        log_run_text(parent_id, claims_text, "claims.md")
        log_run_figure(parent_id, claims_figure(verdicts), "figures/claims.png")
    if histories:
        # what every trial showed, one row each, in the grid's order
        table = report_table({n: reproduction_report(h) for n, (_, h) in histories.items()},
                             stops={n: r.data.tags.get("grok_mlflow.stop_step", "")
                                    for n, (r, _) in histories.items()}
                             if spec.base.until else None)
        text = (f"### Sweep {spec.name}: what each trial showed\n\nA step where the phase was "
                f"seen, `no` where it was not; each trial's own description says why.\n\n{table}")
        log_run_text(parent_id, text, "report.md")
        # the verdicts first: what a reader opening the parent run looks for
        tag_run(parent_id, {"mlflow.note.content": _parent_note(claims_text, text)})
        for path, fig in sweep_figures(histories, list(spec.grid)).items():
            log_run_figure(parent_id, fig, path)
    elif claims_text:
        tag_run(parent_id, {"mlflow.note.content": claims_text})
    return [f"{r.data.tags.get('grok_mlflow.trial', r.info.run_id)}: "
            f"{r.data.tags.get('grok_mlflow.failure', 'FAILED')}"
            for r in runs if r.info.status == "FAILED"]


NOTE_LIMIT = 7_500      # MLflow cuts a tag at 8,000 characters; the link goes in front


def _parent_note(claims_text: str, report: str) -> str:
    """The parent's description: the verdicts, then what each trial showed; when that is
    longer than MLflow keeps, the verdicts whole and where the rest is."""
    note = (claims_text + "\n" if claims_text else "") + report
    if len(note) <= NOTE_LIMIT:
        return note
    verdicts = claims_text.split("\nHow the verdicts")[0].rstrip() if claims_text else ""
    return (verdicts + "\n\nThe verdicts' rules are in `claims.md` and what each trial showed in "
            "`report.md` (too long for this description).\n")[:NOTE_LIMIT]


def judge_claims(spec: SweepSpec, runs: list) -> list:
    """Each of ``spec.claims`` judged (``claims.evaluate_all``: one verdict per radius read)
    over the child ``runs``: a trial's swept settings from its trial name, its quantities from
    its logged metrics (``grok/*`` of a one-radius run also as ``grok_r{r}/*``)."""
    from ..findings.claims import evaluate_all

    by_name = {trial_name(o): o for o in spec.trials()}
    trials = [(by_name[name], trial_metrics(run.data.metrics, run.data.params)) for run in runs
              if (name := run.data.tags.get("grok_mlflow.trial",
                                            run.data.tags.get("mlflow.runName"))) in by_name]
    setting = f"{spec.base.model} on {spec.base.dataset}"
    # a batch (--only) judges the claims about its own trials; the rest wait for their batch
    claims = [c for c in spec.claims if not spec.only or any(
        all(o.get(k) == v for k, v in c.where.items()) for o in spec.trials())]
    return [v for c in claims for v in evaluate_all(c, trials, spec.grid[c.versus],
                                                    setting=setting)]


def trial_metrics(metrics: Mapping[str, float], params: Mapping[str, str]) -> dict[str, float]:
    """A trial run's metrics, with its LC quantities named by radius: a run that measured one
    radius (its ``lc_radius`` param) logs ``grok/lc_peak_value`` and ``lc/train``; these are
    also ``grok_r{r}/...`` and ``lc_r{r}/...`` here, as a several-radii run logs them."""
    from ..findings.claims import radius_dependent

    metrics = dict(metrics)
    radii = [r for r in params.get("lc_radius", "").split(",") if r.strip()]
    if len(radii) == 1:
        r = f"{float(radii[0]):g}"
        for key, value in list(metrics.items()):
            name = key.removesuffix("_low").removesuffix("_high")
            if radius_dependent(name) and "_r" not in key.split("/")[0]:
                head, rest = key.split("/", 1)
                metrics[f"{head}_r{r}/{rest}"] = value
    return metrics


def main_sweep(spec_path: str, ray_address: str | None, storage_path: str | None,
               experiment: str | None = None, verbose: bool = False,
               progress_every_s: float = 30.0, resume: str | None = None,
               only: list[str] | None = None) -> int:
    """CLI body of ``grok-mlflow sweep``: clear one-line errors, exit status (2: bad input;
    128 + the signal's number when a signal stopped the sweep: 130 for Ctrl-C, 143 SIGTERM).
    ``only``: run a batch of the grid (``select_trials``)."""
    from ..store.sweep_runs import SweepInterrupted

    try:
        spec = select_trials(load_spec(spec_path), only or [])
        parent = run_sweep(spec, ray_address=ray_address, storage_path=storage_path,
                           experiment=experiment, verbose=verbose,
                           progress_every_s=progress_every_s, resume=resume or None)
    except SettingsError as err:
        print(f"grok-mlflow: error: {err}", file=sys.stderr)
        return 2
    except SweepInterrupted as stop:
        print(str(stop), file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:                # before any run existed
        print("Sweep interrupted before it started; no run was left.", file=sys.stderr)
        return 130
    from ..store.recorder import absolute_tracking_uri
    from ..store.sweep_runs import sweep_view_url

    uri = absolute_tracking_uri()
    serve = "" if uri.startswith(("http://", "https://")) else \
        f"  mlflow ui --backend-store-uri {uri}\n"
    print(f"Sweep {spec.name}: parent run {parent}, {len(spec.trials())} trials. Compare them:\n"
          f"{serve}  then open {sweep_view_url(parent)}", file=sys.stderr)
    if spec.claims:                      # the verdicts: the sweep's last lines
        from ..store.stored import run_artifact_text

        print("The paper's claims:\n" + "\n".join(
            line[2:].replace("**", "") for line in
            run_artifact_text(parent, "claims.md").splitlines() if line.startswith("- **")),
            file=sys.stderr)
    return 0
