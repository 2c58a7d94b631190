"""The MLflow side: the only module that talks to MLflow.

``GrokTracker`` is what a researcher adds to a training loop::

    with GrokTracker(model, train=(x_tr, y_tr), test=(x_te, y_te), settings=settings) as tracker:
        for step in range(1, settings.steps + 1):
            ...optimizer step...
            tracker.step(step, loss=loss)   # measures and logs only what is due at this step

It continues the active MLflow run (or the one ``mlflow run`` hands over in ``MLFLOW_RUN_ID``) or
starts one, logs every setting as a param and ``config.json``, measures on a log-spaced schedule,
writes metrics in batches (MLflow caps a batch at 1,000) and always flushes: on normal exit, on an
exception and on Ctrl-C every measured point reaches the store.

Metric keys (steps are optimisation steps; step 0 is the network at initialisation):

==============================  =========================================================
``loss/train``, ``loss/test``   mean loss over the training set / test set (or a fixed
                                seeded subset of ``eval_size`` of each)
``acc/train``, ``acc/test``     clean accuracy in [0, 1], on the same points
``lc/{set}``                    mean local complexity over the fixed points of ``set``
                                (train, test, random); ``.../ci_low``, ``.../ci_high``: 99% CI;
                                ``.../layer_{i}``: mean LC of nonlinearity i (1-based, see
                                ``config.json`` -> ``lc_layers`` for module names).
                                With several ``lc_radius`` values: ``lc_r{radius}/{set}``.
``adv/acc/eps_{eps}``           accuracy under l-inf PGD with budget eps (pixel units)
``partition/regions``           linear regions on the plane through three training points, at
                                every ``partition_every``-th eval step (``_near_boundary``,
                                ``_near_points``: those near the decision boundary / the points)
``grok/*``                      grokking phase steps at the end of the run, also as tags
                                (see ``grok_mlflow.phases``; absent when a phase did not happen)
==============================  =========================================================

Artifacts: ``config.json`` (settings, layer names, schedule), ``history.csv`` (every measured
value), ``figures/grokking.png`` (paper-style curves; both refreshed every ``artifact_every_s``
during long runs), ``partition/step_*.png`` with ``partition/weights/step_*.pt`` per snapshot and
``partition/partition.gif`` (at the end), and the model (``mlflow.pytorch``, on a clean exit).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import math
import os
import sys
import time
from importlib import metadata
from typing import Any, Callable, Mapping

import mlflow
import mlflow.pytorch
import torch
from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient
from torch import Tensor, nn

from .complexity import local_complexity
from .data import dataset_spec
from .evaluation import accuracy_and_loss
from .plugin import package_version
from .phases import PHASE_KEYS, detect_phases
from .report import report_markdown, reproduction_report
from .robustness import robust_accuracy
from .schedule import log_schedule
from .settings import Settings, SettingsError

__all__ = ["DEFAULT_EXPERIMENT", "DivergenceError", "GrokTracker", "TrackingUnavailable",
           "import_metrics", "MetricBuffer",
           "lc_prefix", "run_name_for"]

DEFAULT_EXPERIMENT = "grok_mlflow"
MAX_BATCH = 1000          # MLflow's limit of metrics per log_batch call
LC_SETS = ("train", "test", "random")


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite; the run ends FAILED, its last good checkpoint
    (from before the divergence) kept."""


class MetricBuffer:
    """Collects metrics and writes them with ``MlflowClient.log_batch`` in chunks of <= 1,000.

    ``add`` takes numbers or 0-dim tensors (all tensors of one call are moved to the host together,
    one sync); anything else raises ``TypeError`` instead of vanishing. ``flush`` writes
    everything buffered; the tracker calls it when ``due()`` (``flush_every_s`` passed since the
    last write), so long runs show up live in the UI.
    """

    def __init__(self, client: MlflowClient, run_id: str, flush_every_s: float = 30.0):
        self.client, self.run_id, self.flush_every_s = client, run_id, flush_every_s
        self.pending: list[Metric] = []
        self.written = 0
        self._last_flush = time.monotonic()

    def add(self, metrics: Mapping[str, float | Tensor], step: int) -> dict[str, float]:
        """Buffer ``metrics`` at ``step``; returns them as Python floats."""
        values = self.to_floats(metrics)
        now = int(time.time() * 1000)
        self.pending.extend(Metric(key, value, now, int(step)) for key, value in values.items())
        return values

    @staticmethod
    def to_floats(metrics: Mapping[str, float | Tensor]) -> dict[str, float]:
        """Numbers or 0-dim tensors as floats (one host transfer); anything else raises."""
        keys = list(metrics)
        tensors = [k for k in keys if isinstance(metrics[k], Tensor)]
        values: dict[str, float] = {}
        if tensors:
            host = torch.stack([metrics[k].detach().reshape(()).double().cpu() for k in tensors])
            values.update(zip(tensors, host.tolist()))
        for key in keys:
            if key in values:
                continue
            value = metrics[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"metric {key!r} must be a number or a 0-dim tensor, "
                                f"got {type(value).__name__}")
            values[key] = float(value)
        return {k: values[k] for k in keys}

    def due(self) -> bool:
        """Whether ``flush_every_s`` has passed since the last write."""
        return time.monotonic() - self._last_flush > self.flush_every_s

    def flush(self, retry_s: float = 0.0) -> None:
        """Write every buffered metric (chunks of 1,000), in order.

        A failed write keeps the points buffered. With ``retry_s`` > 0 failed writes are retried
        with exponential backoff (1 s, 2 s, ... 30 s) for that long; then ``TrackingUnavailable``
        is raised, the points still buffered.
        """
        deadline, delay = time.monotonic() + retry_s, 1.0
        while self.pending:
            chunk = self.pending[:MAX_BATCH]
            try:
                self.client.log_batch(self.run_id, metrics=chunk, synchronous=True)
            except Exception as err:  # noqa: BLE001 - any failure of the store: retry, then say so
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TrackingUnavailable(
                        f"{len(self.pending)} metric points not written: "
                        f"{type(err).__name__}: {str(err)[:300]}") from err
                time.sleep(min(delay, left))
                delay = min(2 * delay, 30.0)
                continue
            del self.pending[:len(chunk)]
            self.written += len(chunk)
        self._last_flush = time.monotonic()

    def save_unsent(self, directory: str = ".") -> str:
        """Write the buffered points to ``unsent_metrics_<run>.jsonl`` (for ``grok-mlflow
        import``); returns its path."""
        path = os.path.abspath(os.path.join(directory, f"unsent_metrics_{self.run_id}.jsonl"))
        with open(path, "a") as handle:
            for m in self.pending:
                handle.write(json.dumps({"run_id": self.run_id, "key": m.key, "value": m.value,
                                         "timestamp": m.timestamp, "step": m.step}) + "\n")
        return path


class TrackingUnavailable(RuntimeError):
    """The tracking store did not accept writes within the retry window."""


def import_metrics(path: str) -> int:
    """Write the points of an ``unsent_metrics_*.jsonl`` file into the current tracking store;
    returns how many. Points already in the store are not written twice."""
    client = MlflowClient()
    by_run: dict[str, list[Metric]] = {}
    with open(path) as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                by_run.setdefault(row["run_id"], []).append(
                    Metric(row["key"], row["value"], row["timestamp"], row["step"]))
    written = 0
    for run_id, metrics in by_run.items():
        stored = {(m.key, m.step) for key in {m.key for m in metrics}
                  for m in client.get_metric_history(run_id, key)}
        fresh = [m for m in metrics if (m.key, m.step) not in stored]
        for start in range(0, len(fresh), MAX_BATCH):
            client.log_batch(run_id, metrics=fresh[start:start + MAX_BATCH], synchronous=True)
        written += len(fresh)
    return written


def _create_sqlite_store_once(uri: str) -> None:
    """Let one process at a time create a new SQLite store (its schema migrations race: eight
    processes starting on a fresh file failed in alembic); a no-op for an existing store."""
    if not uri.startswith("sqlite:///"):
        return
    path = uri[len("sqlite:///"):]
    if os.path.exists(path) and os.path.getsize(path) > 0:
        return
    import fcntl

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            MlflowClient(uri).search_experiments(max_results=1)   # creates and migrates it
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def tag_run(run_id: str, tags: Mapping[str, str]) -> None:
    """Set tags on a run of the current tracking store."""
    client = MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def lc_prefix(radius: float, radii: tuple[float, ...]) -> str:
    """``lc`` for a single configured radius, else ``lc_r{radius}`` (e.g. ``lc_r0.05``)."""
    return "lc" if len(radii) == 1 else f"lc_r{radius:g}"


def run_name_for(settings: Settings) -> str:
    """A run name that says what defines the run, e.g. ``digits_mlp_w200_d4_wd0.01_s0``."""
    return (f"{settings.dataset}_{settings.model}_w{settings.width}_d{settings.depth}"
            f"_wd{settings.weight_decay:g}_s{settings.seed}")


class GrokTracker:
    """Measure local complexity, accuracy and PGD robustness on a schedule; log them to MLflow.

    Args:
        model: the network being trained (measured on its own device, in eval mode; its modes,
            gradients and the global RNG are left as they were).
        train: (x, y) training tensors, x in the model's input units ([0, 1] pixels).
        test: (x, y) test tensors.
        settings: a ``Settings``; the schedule (``steps``, ``eval_points``, ``eval_every``,
            ``adv_points``), LC (``lc_radius``, ``lc_directions``, ``lc_samples``), PGD
            (``adv_eps``, ``adv_steps``, ``adv_samples``), ``loss`` and ``seed`` are used, and all
            fields are logged as params.
        domain: (low, high) box of the inputs, where LC's random points are drawn uniformly.
        run_name: name when a new run is started (default from the settings).
        experiment: experiment of a new run (default ``$MLFLOW_EXPERIMENT_NAME`` or
            ``grok_mlflow``).
        log_model: log the trained model with ``mlflow.pytorch`` on a clean exit.
        progress: show a progress bar on stderr.
        artifact_every_s: during long runs, refresh ``history.csv`` and the figure this often
            (seconds of wall time, checked at measured steps).
        checkpoint: returns the training state to save; called at every metric flush (every
            30 s at a measured step, and at a clean end), so a checkpoint never lags the metrics
            in the store by more than the steps since that flush. Saved as the run's artifact
            ``checkpoints/last.pt`` with the tracker's own state added under ``"tracker"``.
        resume: a checkpoint to continue from: no step-0 measurement, the history restored.
        run_id: continue this existing run (and end it at exit); steps whose metrics already
            reached its store are measured again but not logged twice.

    Entering the context measures step 0 (the network before training); leaving it measures the
    last step seen if it was not measured, flushes, logs ``history.csv`` and the model, and ends
    the run if the tracker started it (FINISHED, FAILED on an exception, KILLED on Ctrl-C).

    Attributes:
        run_id: the MLflow run.
        history: {step: {key: value}} of everything measured.
    """

    def __init__(self, model: nn.Module, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor],
                 settings: Settings | None = None, *, domain: tuple[float, float] = (0.0, 1.0),
                 run_name: str | None = None, experiment: str | None = None,
                 log_model: bool = True, progress: bool = True, artifact_every_s: float = 300.0,
                 extra_config: Mapping[str, Any] | None = None,
                 checkpoint: Callable[[], dict[str, Any]] | None = None,
                 resume: Mapping[str, Any] | None = None, run_id: str | None = None):
        self.model = model
        self.settings = settings or Settings()
        self.x_train, self.y_train = train
        self.x_test, self.y_test = test
        self.domain = domain
        self.run_name = run_name or run_name_for(self.settings)
        self.experiment = experiment
        self.log_model = log_model
        self.progress = progress
        self.extra_config = dict(extra_config or {})
        self.checkpoint_fn = checkpoint
        self.resume = resume
        self._logged: dict[str, int] = {}   # key -> last step already in the store (on resume)
        self._continue_run = run_id
        self._warned_unavailable = False
        self.artifact_every_s = artifact_every_s
        self.phases: dict[str, int] = {}
        s = self.settings
        # step 0 (initialisation) is measured on entering the context
        self.schedule = log_schedule(s.steps, s.eval_points, s.eval_every)
        # PGD on its own sparser log-spaced cadence, snapped to the nearest eval steps (a subset)
        self.adv_schedule = ({min(self.schedule, key=lambda e: abs(e - t))
                              for t in log_schedule(s.steps, s.adv_points)}
                             if s.adv_points and self.adv_eps else set())
        # partition snapshots: every N-th eval step, and the last
        self.partition_schedule = (set(self.schedule[::s.partition_every]) | {self.schedule[-1]}
                                   if s.partition_every else set())
        self._due = set(self.schedule)
        self.history: dict[int, dict[str, float]] = {}
        self.run_id: str | None = None
        self._owns_run = False
        self._last_step: int | None = None
        self._bar = None
        self._artifacts_written = time.monotonic()

    # ------------------------------------------------------------------ setup
    @property
    def adv_eps(self) -> tuple[float, ...]:
        if self.settings.adv_eps:
            return self.settings.adv_eps
        try:
            return dataset_spec(self.settings.dataset).default_adv_eps
        except ValueError:
            return (0.05, 0.1, 0.2)

    def _probe_sets(self) -> None:
        """Fixed, seeded point sets: the same points at every step, so curves are comparable."""
        s = self.settings
        device = next(self.model.parameters()).device
        gen = torch.Generator().manual_seed(s.seed + 1)

        def subset(x: Tensor, y: Tensor, k: int) -> tuple[Tensor, Tensor]:
            idx = torch.randperm(len(x), generator=gen)[:min(k, len(x))].to(x.device)
            return x[idx].to(device), y[idx].to(device)

        self.lc_points = {"train": subset(self.x_train, self.y_train, s.lc_samples)[0],
                          "test": subset(self.x_test, self.y_test, s.lc_samples)[0]}
        low, high = self.domain
        shape = (s.lc_samples, *self.x_train.shape[1:])
        self.lc_points["random"] = (low + (high - low) * torch.rand(shape, generator=gen)).to(
            device=device, dtype=self.x_train.dtype)
        self.adv_x, self.adv_y = subset(self.x_test, self.y_test, s.adv_samples)
        # accuracy and loss: the whole splits, or fixed seeded subsets of eval_size (own generator,
        # so the LC and PGD points above do not depend on eval_size)
        eval_gen = torch.Generator().manual_seed(s.seed + 3)

        def fixed(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
            if not s.eval_size or s.eval_size >= len(x):
                return x, y
            idx = torch.randperm(len(x), generator=eval_gen)[:s.eval_size].sort().values
            return x[idx.to(x.device)], y[idx.to(x.device)]

        self.eval_sets = {"train": fixed(self.x_train, self.y_train),
                          "test": fixed(self.x_test, self.y_test)}
        # the partition plane: three seeded training points of distinct classes where possible
        order = torch.randperm(len(self.x_train), generator=torch.Generator().manual_seed(s.seed + 2))
        labels = self.y_train.cpu()
        chosen: list[int] = []
        for i in order.tolist():
            if int(labels[i]) not in {int(labels[j]) for j in chosen}:
                chosen.append(i)
            if len(chosen) == 3:
                break
        chosen += [i for i in order.tolist() if i not in chosen][:3 - len(chosen)]
        self.partition_index = chosen
        self.partition_x = self.x_train[chosen].to(device)

    def __enter__(self) -> "GrokTracker":
        self._probe_sets()
        _create_sqlite_store_once(mlflow.get_tracking_uri())
        if self._continue_run is not None:
            mlflow.start_run(run_id=self._continue_run)
            self._owns_run = True
        elif mlflow.active_run() is None:
            if not os.environ.get("MLFLOW_RUN_ID"):
                experiment = (self.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
                              or (None if os.environ.get("MLFLOW_EXPERIMENT_ID") else
                                  DEFAULT_EXPERIMENT))
                if experiment:
                    mlflow.set_experiment(experiment)
            mlflow.start_run(run_name=self.run_name)
            self._owns_run = True
        run = mlflow.active_run()
        self.run_id = run.info.run_id
        self.client = MlflowClient()
        self.buffer = MetricBuffer(self.client, self.run_id, self.settings.checkpoint_every_s)
        try:
            self._log_setup(run)
        except BaseException:
            self._end(RunStatus.FAILED)
            raise
        try:
            if self._continue_run is not None:
                self._logged = self._steps_in_store()
            if self.resume is None:
                self.measure(0)  # the network at initialisation, before the first step
            else:
                state = self.resume["tracker"]
                self.history = {int(k): dict(v) for k, v in state["history"].items()}
                self._last_step = int(self.resume["step"])
        except BaseException:
            self._end(RunStatus.FAILED)
            raise
        if self.progress:
            from tqdm.auto import tqdm
            # in a log file (not a terminal) one line every 30 s, not ten a second
            self._bar = tqdm(total=self.settings.steps, unit="step", dynamic_ncols=True,
                             desc=self.run_name, initial=self._last_step or 0,
                             mininterval=0.1 if sys.stderr.isatty() else 30.0)
        return self

    def _steps_in_store(self) -> dict[str, int]:
        """Last logged step of every metric of the run (resume: those are not logged again)."""
        keys = self.client.get_run(self.run_id).data.metrics
        return {k: max(m.step for m in self.client.get_metric_history(self.run_id, k))
                for k in keys}

    def _flush(self, step: int | None, retry_s: float = 0.0) -> None:
        """Write buffered metrics, then (with a checkpoint function) the checkpoint at ``step``.

        During training (``retry_s`` 0) an unreachable store is not waited for: the points stay
        buffered and go out with a later flush; the checkpoint waits for the metrics.
        """
        try:
            self.buffer.flush(retry_s)
        except TrackingUnavailable as err:
            if retry_s:
                raise
            if not self._warned_unavailable:
                print(f"grok-mlflow: warning: tracking store unavailable ({err}); buffering and "
                      "retrying", file=sys.stderr)
                self._warned_unavailable = True
            return
        if self.checkpoint_fn is not None and step is not None:
            import tempfile

            if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
                # never overwrite the last good checkpoint with a diverged state
                raise DivergenceError(f"parameters are not finite at step {step}")

            state = self.checkpoint_fn()
            state["step"] = step
            state["tracker"] = {"history": self.history}
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "last.pt")
                torch.save(state, path)
                try:
                    self.client.log_artifact(self.run_id, path, "checkpoints")
                except Exception as err:  # noqa: BLE001 - the next flush writes a newer one
                    if retry_s:
                        raise
                    print(f"grok-mlflow: warning: checkpoint not written "
                          f"({type(err).__name__}); retrying at the next flush", file=sys.stderr)

    def _log_setup(self, run) -> None:
        existing = self.client.get_run(self.run_id).data.params
        resolved = self.settings.to_params()
        params = [Param(k, v) for k, v in resolved.items() if k not in existing]
        tags = {"seed": str(self.settings.seed), "mlflow.runName": self.run_name}
        # MLflow params cannot change. `mlflow run -P preset=...` logs every main parameter at its
        # default first: keep the true values visible (tags, config.json) and say so.
        stale = sorted(k for k, v in resolved.items()
                       if k in existing and not _same_value(k, existing[k], v))
        if stale:
            tags["grok_mlflow.stale_params"] = ",".join(stale)
            tags.update({f"setting.{k}": resolved[k] for k in stale})
            print(f"grok-mlflow: warning: MLflow logged {', '.join(stale)} before the preset was "
                  "applied; the true values are in the tags setting.<name> and config.json. Use "
                  "`mlflow run . -e preset -P preset=...` for exact params.", file=sys.stderr)
        self.client.log_batch(self.run_id, params=params, synchronous=True)
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)
        probe = local_complexity(self.model, self.lc_points["train"][:1],
                                 radius=self.settings.lc_radius[0],
                                 n_directions=self.settings.lc_directions)
        self.lc_layers = probe.layer_names
        config = {"settings": dataclasses.asdict(self.settings),
                  "grok_mlflow_version": package_version(),
                  "torch_version": torch.__version__,
                  "device": str(next(self.model.parameters()).device),
                  "input_shape": list(self.x_train.shape[1:]),
                  "n_train": len(self.x_train), "n_test": len(self.x_test),
                  "n_accuracy": {split: len(x) for split, (x, _) in self.eval_sets.items()},
                  "lc_layers": {f"layer_{i + 1}": name for i, name in enumerate(self.lc_layers)},
                  "partition_points": {"train_index": self.partition_index,
                                       "labels": self.y_train[self.partition_index].tolist()},
                  "adv_eps": list(self.adv_eps),
                  "schedule": {"eval_steps": self.schedule,
                               "adv_steps": sorted(self.adv_schedule)},
                  **self.extra_config}
        self.client.log_dict(self.run_id, config, "config.json")

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
        if self._bar is not None and step > 0:
            self._bar.update(step - (self._last_step or 0))
        self._last_step = step
        if step not in self._due:
            return None
        if loss is not None:   # a host sync only at measured steps; NaN weights keep it NaN
            value = float(loss.detach() if isinstance(loss, Tensor) else loss)
            if not math.isfinite(value):
                raise DivergenceError(f"training loss is {value} at step {step}")
        values = self.measure(step)
        if self._bar is not None:
            shown = {k: values[k] for k in ("acc/train", "acc/test", "lc/train") if k in values}
            if loss is not None:
                shown["loss"] = value
            self._bar.set_postfix({k.replace("/", "_"): f"{v:.3g}" for k, v in shown.items()},
                                  refresh=False)
        return values

    def measure(self, step: int, adversarial: bool | None = None) -> dict[str, float]:
        """Measure at ``step`` now, whatever the schedule, and buffer the metrics.

        Args:
            adversarial: run PGD too; default when ``step`` is on the PGD schedule.
        """
        s = self.settings
        model = self.model
        metrics: dict[str, Tensor] = {}
        for split, (x, y) in self.eval_sets.items():
            acc, loss = accuracy_and_loss(model, x, y, s.loss)
            metrics[f"acc/{split}"], metrics[f"loss/{split}"] = acc, loss
        for set_name, points in self.lc_points.items():
            by_radius = local_complexity(model, points, radius=list(s.lc_radius),
                                         n_directions=s.lc_directions, seed=s.seed)
            for radius, lc in by_radius.items():
                key = f"{lc_prefix(radius, s.lc_radius)}/{set_name}"
                metrics[key] = lc.mean()
                metrics[f"{key}/ci_low"], metrics[f"{key}/ci_high"] = lc.confidence_interval(0.99)
                for i, layer_mean in enumerate(lc.layer_mean(), start=1):
                    metrics[f"{key}/layer_{i}"] = layer_mean
        if adversarial is None:
            adversarial = step in self.adv_schedule
        if adversarial and self.adv_eps:
            for eps, acc in robust_accuracy(model, self.adv_x, self.adv_y, eps=list(self.adv_eps),
                                            steps=s.adv_steps, seed=s.seed).items():
                metrics[f"adv/acc/eps_{eps:g}"] = acc
        if step in self.partition_schedule:
            metrics.update(self._partition_snapshot(step))
        fresh = {k: v for k, v in metrics.items() if step > self._logged.get(k, -1)}
        values = self.buffer.add(fresh, step) if fresh else {}
        if len(fresh) < len(metrics):    # resumed: recomputed values of steps already stored
            values.update(MetricBuffer.to_floats({k: v for k, v in metrics.items()
                                                  if k not in fresh}))
        self.history.setdefault(step, {}).update(values)
        if self.buffer.due():
            self._flush(step)
        if time.monotonic() - self._artifacts_written > self.artifact_every_s:
            try:
                self._write_artifacts()
            except Exception as err:  # noqa: BLE001 - a refresh may wait for an unreachable store
                self._artifacts_written = time.monotonic()
                print(f"grok-mlflow: warning: artifacts not refreshed ({type(err).__name__})",
                      file=sys.stderr)
        return values

    def _partition_snapshot(self, step: int) -> dict[str, float]:
        """Partition slice at ``step``: ``partition/step_*.png`` and the weights it was drawn
        from (``partition/weights/step_*.pt``, for ``grok-mlflow partition``); its metrics."""
        import tempfile

        from .partition import partition_slice
        from .plots import partition_figure

        s = self.settings
        part = partition_slice(self.model, self.partition_x, resolution=s.partition_resolution,
                               seed=s.seed)
        fig = partition_figure(part, self.y_train[self.partition_index].tolist(),
                               f"{self.run_name}, step {step}")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                fig.savefig(os.path.join(tmp, f"step_{step:08d}.png"), dpi=100)
                torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                           os.path.join(tmp, f"step_{step:08d}.pt"))
                self.client.log_artifact(self.run_id, os.path.join(tmp, f"step_{step:08d}.png"),
                                         "partition")
                self.client.log_artifact(self.run_id, os.path.join(tmp, f"step_{step:08d}.pt"),
                                         "partition/weights")
        except Exception as err:  # noqa: BLE001 - an unreachable store must not stop training
            print(f"grok-mlflow: warning: partition snapshot at step {step} not stored "
                  f"({type(err).__name__})", file=sys.stderr)
        finally:
            import matplotlib.pyplot as plt
            plt.close(fig)
        return part.metrics()

    def _write_partition_gif(self) -> None:
        """``partition/partition.gif`` from every stored snapshot (also those before a resume)."""
        import tempfile

        from .plots import partition_gif

        frames = sorted(a.path for a in self.client.list_artifacts(self.run_id, "partition")
                        if a.path.endswith(".png"))
        if not frames:
            return
        # MLflow draws a progress bar per download unless told not to (restored afterwards)
        quiet = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
        try:
            with tempfile.TemporaryDirectory() as tmp:
                local = [mlflow.artifacts.download_artifacts(run_id=self.run_id, artifact_path=f,
                                                             dst_path=tmp) for f in frames]
                path = os.path.join(tmp, "partition.gif")
                partition_gif(local, path)
                self.client.log_artifact(self.run_id, path, "partition")
        finally:
            if quiet is None:
                os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
            else:
                os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = quiet

    def _write_artifacts(self) -> None:
        """history.csv and the figure (refreshed during long runs, final at the end)."""
        from .plots import grokking_figure

        self.client.log_text(self.run_id, history_csv(self.history), "history.csv")
        fig = grokking_figure(self.history, self.phases, title=self.run_name)
        try:
            self.client.log_figure(self.run_id, fig, "figures/grokking.png")
        finally:
            import matplotlib.pyplot as plt
            plt.close(fig)
        self._artifacts_written = time.monotonic()

    def _write_report(self) -> None:
        """What the run showed (``grok_mlflow.report``): the run's MLflow description, the
        artifact ``report.md``, and its headline on stderr."""
        findings = reproduction_report(self.history)
        text = report_markdown(findings, title=self.run_name)
        self.client.set_tag(self.run_id, "mlflow.note.content", text)
        self.client.log_text(self.run_id, text, "report.md")
        seen = [f.phase for f in findings if f.seen]
        print(f"\nWhat run {self.run_id} showed: "
              + (", ".join(seen) if seen else "none of the paper's phases")
              + " (report.md has every phase, seen or not, and why)", file=sys.stderr)

    def _lc_train_key(self) -> str:
        return f"{lc_prefix(self.settings.lc_radius[0], self.settings.lc_radius)}/train"

    def detect_phases(self) -> dict[str, int]:
        """Grokking phases of the history so far (see ``grok_mlflow.phases``)."""
        return detect_phases(self.history, lc_key=self._lc_train_key())

    # ------------------------------------------------------------------ teardown
    def __exit__(self, exc_type, exc, tb) -> bool:
        status = (RunStatus.FINISHED if exc_type is None else
                  RunStatus.KILLED if issubclass(exc_type, KeyboardInterrupt) else RunStatus.FAILED)
        if self._bar is not None:
            self._bar.close()
        # Ctrl-C caught at a step boundary (``train`` does that): the state is consistent there
        consistent = exc_type is None or getattr(exc, "at_step_boundary", False)
        try:
            if exc_type is None and self._last_step is not None and (
                    self._last_step not in self.history):
                # the loop stopped before settings.steps: its last step is measured all the same
                self.measure(self._last_step, adversarial=bool(self.adv_schedule))
            if exc_type is not None and issubclass(exc_type, DivergenceError):
                self.client.set_tag(self.run_id, "grok_mlflow.failure", f"diverged: {exc}")
                self.client.set_tag(self.run_id, "grok_mlflow.failure_step", str(self._last_step))
        finally:
            self._end(status, clean=exc_type is None, checkpoint=consistent)
        return False

    def _end(self, status: int, clean: bool = False, checkpoint: bool = False) -> None:
        """Flush metrics (and checkpoint when the state is consistent), write the history, log
        the model (clean exit), end an owned run."""
        try:
            try:
                self._flush(self._last_step if checkpoint else None,
                            retry_s=self.settings.tracking_retry_s)
            except TrackingUnavailable:
                path = self.buffer.save_unsent()
                print(f"grok-mlflow: error: the tracking store did not answer for "
                      f"{self.settings.tracking_retry_s:g} s; {len(self.buffer.pending)} metric "
                      f"points saved to {path}. When it is back: grok-mlflow import {path}",
                      file=sys.stderr)
                self._owns_run = False   # ending the run would fail the same way
                raise
            if clean and self.history:
                self.phases = self.detect_phases()
                final_step = max(self.history)
                if self.phases:
                    self.buffer.add(self.phases, final_step)
                    self.buffer.flush()
                for key in PHASE_KEYS:
                    if key in self.phases:
                        self.client.set_tag(self.run_id, key, str(self.phases[key]))
                self._write_report()
            if self.history:
                self._write_artifacts()
            if clean and self.partition_schedule:
                self._write_partition_gif()
            if clean and self.log_model:
                # pt2 (MLflow 3's default format) traces the model on an example input; an
                # explicit requirement skips MLflow's inference of them (~4 s per run). A CPU
                # copy is logged: it loads on machines without the training GPU, and the
                # example (numpy, so on the CPU) meets the weights on the same device.
                example = self.x_train[:2].detach().cpu().numpy()
                mlflow.pytorch.log_model(
                    copy.deepcopy(self.model).cpu(), name="model", input_example=example,
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
            if clean:
                print(f"\nRun {self.run_id} recorded. To look at it:\n"
                      f"  mlflow ui --backend-store-uri {mlflow.get_tracking_uri()}",
                      file=sys.stderr)
        finally:
            if self._owns_run:
                mlflow.end_run(RunStatus.to_string(status))


def _same_value(name: str, logged: str, resolved: str) -> bool:
    """Whether a param MLflow already holds (``1e-3``, ``''``) means the resolved setting."""
    if logged == resolved:
        return True
    try:
        return Settings.from_strings({name: logged.strip("'\"")}).to_params()[name] == resolved
    except ValueError:
        return False


def history_csv(history: Mapping[int, Mapping[str, float]]) -> str:
    """The measured history as CSV text: one row per step, one column per metric key."""
    keys = sorted({k for row in history.values() for k in row})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["step", *keys])
    for step in sorted(history):
        row = history[step]
        writer.writerow([step, *(_csv_value(row.get(k)) for k in keys)])
    return out.getvalue()


def read_history_csv(text: str) -> dict[int, dict[str, float]]:
    """The inverse of ``history_csv``: {step: {key: value}}, empty cells left out."""
    rows = list(csv.DictReader(io.StringIO(text)))
    return {int(r["step"]): {k: float(v) for k, v in r.items() if k != "step" and v != ""}
            for r in rows}


def run_report(run_id: str, expected: Mapping[str, str] | None = None) -> str:
    """The report (``grok_mlflow.report``) of a recorded run, from its ``history.csv``
    (``expected``: {phase: claim} for an extra column); ``SettingsError`` naming the run when it
    has no history."""
    from .report import report_markdown, reproduction_report

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        history = read_history_csv(mlflow.artifacts.load_text(f"runs:/{run_id}/history.csv"))
    except Exception as err:  # noqa: BLE001 - unknown run, or a run with no measurements
        raise SettingsError(f"report: no grok_mlflow history for run {run_id!r} in "
                            f"{mlflow.get_tracking_uri()} ({type(err).__name__})") from None
    name = MlflowClient().get_run(run_id).data.tags.get("mlflow.runName", run_id)
    return report_markdown(reproduction_report(history), title=name, expected=expected)


def _csv_value(value: float | None) -> str:
    if value is None:
        return ""
    return repr(value) if math.isfinite(value) else str(value)
