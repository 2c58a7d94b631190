"""Run a sweep with Ray Tune: one MLflow parent run, one child run per trial.

The spec (``spec.py``) says what runs; ``trials.py`` how one trial or stacked group trains;
``summary.py`` what the parent holds at the end. This module drives: Ray, the live table,
signals, resuming and the verdicts' last lines.

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
``claims:`` the parent's description opens with each claim's verdict (``verdicts.evaluate``), also
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
import logging
import os
import signal
import socket
import threading
import time
from typing import Any, Iterator

import ray
from ray import tune
from ray.tune import Callback

from ..console import logger
from ..settings import SettingsError
from ..store.reading import run_artifact_text
from ..store.sweep_runs import (
    SweepInterrupted,
    child_runs,
    end_interrupted_children,
    get_run,
    publish_sweep_view,
    sweep_parent_run,
    sweep_view_url,
    unfinished_sweeps,
)
from ..store.tracking_store import absolute_tracking_uri, use_tracking_uri
from .progress import SweepProgress
from .spec import SweepSpec, format_value, load_spec, select_trials, trial_name, trial_steps
from .summary import judge_claims, summarise, trial_metrics
from .trials import run_trial, stop_flag, trial_configs

# load_spec, select_trials, trial_name, judge_claims, trial_metrics: the sweep's public names,
# importable from here as before
__all__ = ["judge_claims", "load_spec", "main_sweep", "resumable_parent", "run_sweep",
           "select_trials", "trial_metrics", "trial_name"]


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
            logger.info(f"Sweep {spec.name}: parent run {parent_id}"
                        f"{' (resumed)' if resumed else ''}. Ctrl-C stops it; `{again}` continues it.")
            configs, trials = trial_configs(spec, groups, uri, parent_id, experiment_id)
            stops.flag = stop_flag(parent_id)
            name = f"{spec.name}-{parent_id[:8]}" + (
                f"-resumed-{tags['grok_mlflow.resumed']}" if resumed else "")
            try:
                tuner = tune.Tuner(
                    tune.with_resources(run_trial,
                                        lambda config: _resources(spec, config, cpus, slots)),
                    param_space={"trial": tune.grid_search(trials)},
                    tune_config=tune.TuneConfig(max_concurrent_trials=spec.max_concurrent or None),
                    run_config=tune.RunConfig(
                        storage_path=os.path.abspath(storage_path or "ray_results"), name=name,
                        verbose=2 if verbose else 0, callbacks=[SweepProgress(
                            spec.name, {c.name: trial_steps(spec, c.overrides) for c in configs},
                            every_s=progress_every_s), _loop_watch(pending, stops)],
                        failure_config=tune.FailureConfig(max_failures=spec.max_failures)))
                with stops.fitting():
                    results = tuner.fit()
            except KeyboardInterrupt:        # a signal before Tune's loop, or a second one
                stops.caught = stops.caught or [signal.SIGINT]
            if stops.caught or pending.expired:
                _stopped(spec, parent_id, stops, pending, again, started_here)
            errors = [str(results[i].error) for i in range(len(results)) if results[i].error]
            failed = summarise(parent_id, spec)
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
    if started_here:
        ray.shutdown()
    if not stops.caught:
        end_interrupted_children(parent_id, pending.expired)
        raise SettingsError(pending.expired)
    raise _interrupted(spec, parent_id, stops.caught[0], again)


def _cluster_slots(spec: SweepSpec, uri: str) -> tuple[float, int]:
    """The Ray cluster's CPUs and how many trials it runs at once; ``SettingsError`` for a
    several-node cluster with a tracking store local to this machine, or a trial no node fits."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) > 1 and _is_local_store(uri):
        raise SettingsError(
            f"tracking: the Ray cluster has {len(nodes)} nodes but the tracking URI {uri} is "
            "local to this machine; start `mlflow server` and set MLFLOW_TRACKING_URI=http://...")
    _check_fits(spec, nodes)
    resources = ray.cluster_resources()
    return float(resources.get("CPU", 1.0)), _slots(spec, resources)


def _is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def _loop_watch(*watchers: Any):
    """A Ray Tune callback that hands the trials to each watcher's ``check`` at every step of
    Tune's loop (``_PendingTimeout``, ``_Stops``)."""
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
        self.flag: Any = None           # stop_flag: set on the first signal
        self.asked_at = 0.0

    def install(self) -> None:
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
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid())}"


def _start_ticks(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _driver_alive(key: str) -> bool:
    """Whether the driver ``key`` (``_driver_key``) still runs on this host."""
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
    best: dict = max(have, key=lambda r: (r.get("GPU", 0.0), r.get("CPU", 0.0)), default={})
    asked = (f"a trial asks for {want['CPU']:g} CPU(s) and {want['GPU']:g} GPU(s), but the "
             f"largest Ray node has {best.get('CPU', 0.0):g} CPU(s) and "
             f"{best.get('GPU', 0.0):g} GPU(s) ({len(nodes)} node(s))")
    if spec.pending_timeout_s:          # an autoscaling cluster may add the node it needs
        logger.warning(f"grok-mlflow: warning: resources: {asked}; waiting up to "
                       f"{spec.pending_timeout_s:g} s (pending_timeout_s) for the autoscaler")
        return
    raise SettingsError(
        f"resources: {asked}; lower resources: or join a bigger cluster (--ray-address; on an "
        "autoscaling cluster set pending_timeout_s: to wait for new nodes)")


def _resources(spec: SweepSpec, config: dict[str, Any], cpus: float, slots: int = 1):
    """A Ray trial's resources: the spec's per trial; a stacked group of K trials takes K times
    the CPUs, at most its share of the cluster's when ``slots`` groups run at once (Ray gives a
    trial as many threads as CPUs), and one trial's GPU share (its members share a device)."""
    members = len(getattr(config["trial"], "members", [None]))
    cpu = min(spec.resources["cpu"] * members, max(cpus / slots, spec.resources["cpu"]))
    bundle = {"CPU": cpu, **({"GPU": spec.resources["gpu"]} if spec.resources["gpu"] else {})}
    return tune.PlacementGroupFactory([bundle])


def _experiment_for(spec: SweepSpec, experiment: str | None) -> str | None:
    """The sweep's experiment: the one asked for, ``$MLFLOW_EXPERIMENT_NAME``, else the sweep's
    name. None under ``mlflow run`` (its launcher run, which becomes the parent, already lives in
    the experiment ``mlflow run --experiment-name`` chose)."""
    if os.environ.get("MLFLOW_RUN_ID"):
        return None
    return (experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
            or spec.name.split("[", 1)[0])          # a batch lives with its spec


def _spec_params(spec: SweepSpec, groups: list[list[dict[str, Any]]]) -> dict[str, str]:
    params = {f"grid.{k}": format_value(v) for k, v in spec.grid.items()}
    params.update({f"base.{k}": v for k, v in spec.base.to_params().items()})
    params["trials"] = str(len(spec.trials()))
    params["ensemble"], params["max_members"] = spec.ensemble, str(spec.max_members)
    params["stacked_groups"] = str(sum(len(g) > 1 for g in groups))
    return params


def main_sweep(spec_path: str, ray_address: str | None, storage_path: str | None,
               experiment: str | None = None, verbose: bool = False,
               progress_every_s: float = 30.0, resume: str | None = None,
               only: list[str] | None = None) -> int:
    """CLI body of ``grok-mlflow sweep``: clear one-line errors, exit status (2: bad input;
    128 + the signal's number when a signal stopped the sweep: 130 for Ctrl-C, 143 SIGTERM).
    ``only``: run a batch of the grid (``select_trials``)."""
    try:
        spec = select_trials(load_spec(spec_path), only or [])
        parent = run_sweep(spec, ray_address=ray_address, storage_path=storage_path,
                           experiment=experiment, verbose=verbose,
                           progress_every_s=progress_every_s, resume=resume or None)
    except SettingsError as err:
        logger.error(f"grok-mlflow: error: {err}")
        return 2
    except SweepInterrupted as stop:
        logger.info(str(stop))
        return 128 + stop.signum
    except KeyboardInterrupt:                # before any run existed
        logger.info("Sweep interrupted before it started; no run was left.")
        return 130
    uri = absolute_tracking_uri()
    serve = "" if uri.startswith(("http://", "https://")) else \
        f"  mlflow ui --backend-store-uri {uri}\n"
    logger.info(f"Sweep {spec.name}: parent run {parent}, {len(spec.trials())} trials. Compare them:\n"
                f"{serve}  then open {sweep_view_url(parent)}")
    if spec.claims:                      # the verdicts: the sweep's last lines
        logger.info("The paper's claims:\n" + "\n".join(
                  line[2:].replace("**", "") for line in
                  run_artifact_text(parent, "claims.md").splitlines() if line.startswith("- **")))
    return 0
