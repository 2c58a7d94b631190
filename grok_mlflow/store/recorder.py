"""Writing runs to MLflow: one of the three modules that talk to MLflow (``reading`` reads runs
back, ``sweep_runs`` keeps a sweep's parent and child runs and its UI view).

``Recorder`` owns a tracked run's every MLflow call: starting or continuing the run, params, tags
and ``config.json``, metrics written in batches (``MetricBuffer``: at most 1,000 per call,
buffered and retried while the store is unreachable), checkpoints, artifacts (history, figures,
report, partition snapshots, the model) and ending the run. Runs written
through the client for the rest of the package, and the tracking URI: ``tracking_store``.

Nothing here measures or decides what to record: ``GrokTracker`` (``tracking``) does, and hands
the results over.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import logging
import os
import tempfile
import threading
import time
from typing import Any, Mapping

import mlflow
import PIL.Image
import torch
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from torch import Tensor, nn

from ..console import logger
from ..findings.plots import partition_gif
from ..run_tags import managed_run, version_tags
from .reading import quiet_downloads
from .tracking_store import (
    DEFAULT_EXPERIMENT,
    MAX_BATCH,
    create_sqlite_store_once,
    figure_png,
    log_run_figure,
    log_run_png,
    use_experiment,
    user_experiment_id,
)

__all__ = ["MetricBuffer", "NullRecorder", "Recorder", "TrackingUnavailable"]


class TrackingUnavailable(RuntimeError):
    """The tracking store did not accept writes within the retry window."""


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
        self._lock = threading.Lock()     # the training thread adds while the writer writes

    def add(self, metrics: Mapping[str, float | Tensor], step: int) -> dict[str, float]:
        """Buffer ``metrics`` at ``step``; returns them as Python floats."""
        values = self.to_floats(metrics)
        now = int(time.time() * 1000)
        with self._lock:
            self.pending.extend(Metric(key, value, now, int(step)) for key, value in values.items())
        return values

    @staticmethod
    def to_floats(metrics: Mapping[str, float | Tensor]) -> dict[str, float]:
        """Numbers or 0-dim tensors as floats (one host transfer); anything else raises."""
        keys = list(metrics)
        tensors = [k for k in keys if isinstance(metrics[k], Tensor)]
        values: dict[str, float] = {}
        if tensors:
            host = torch.stack([torch.as_tensor(metrics[k]).detach().reshape(()).double().cpu()
                                for k in tensors])
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
            with self._lock:
                chunk = self.pending[:MAX_BATCH]
            try:
                self.client.log_batch(self.run_id, metrics=chunk, synchronous=True)
            except Exception as err:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TrackingUnavailable(
                        f"{len(self.pending)} metric points not written: "
                        f"{type(err).__name__}: {str(err)[:300]}") from err
                time.sleep(min(delay, left))
                delay = min(2 * delay, 30.0)
                continue
            with self._lock:
                del self.pending[:len(chunk)]
            self.written += len(chunk)
        self._last_flush = time.monotonic()

    def save_unsent(self, directory: str = ".") -> str:
        """Write the buffered points to ``unsent_metrics_<run>.jsonl`` (for ``grok-mlflow
        import``); returns its path."""
        path = os.path.abspath(os.path.join(directory, f"unsent_metrics_{self.run_id}.jsonl"))
        with self._lock:
            pending = list(self.pending)
        with open(path, "a") as handle:
            for m in pending:
                handle.write(json.dumps({"run_id": self.run_id, "key": m.key, "value": m.value,
                                         "timestamp": m.timestamp, "step": m.step}) + "\n")
        return path


class Recorder:
    """One tracked run in MLflow: every MLflow call the tracker makes goes through here.

    Args:
        run_name: name of a new run.
        experiment: experiment of a new run (default ``$MLFLOW_EXPERIMENT_NAME``, else
            ``grok_mlflow``; an ``$MLFLOW_EXPERIMENT_ID`` is left to MLflow).
        run_id: continue this existing run instead (and end it at ``end``).
        flush_every_s: write buffered metrics at most this long after they were measured.

    ``start`` continues the active MLflow run (a user's own ``mlflow.start_run``, or the one
    ``mlflow run`` hands over in ``MLFLOW_RUN_ID``), or starts one; ``end`` ends it only if it
    started it. Example:
        rec = Recorder(run_name="MLP_0.2M"); run_id = rec.start()
        rec.add_metrics({"acc/test": 0.9}, step=10); rec.flush(); rec.end("FINISHED")
    """

    def __init__(self, run_name: str, experiment: str | None = None, run_id: str | None = None,
                 flush_every_s: float = 30.0, *, attach: bool = False,
                 tracking_uri: str | None = None, end_attached: bool = False,
                 keep_previous: bool = False):
        self.run_name, self.experiment, self.continue_run = run_name, experiment, run_id
        self.flush_every_s, self.attach, self.end_attached = flush_every_s, attach, end_attached
        self.keep_previous = keep_previous
        self._previous: dict | None = None     # the last checkpoint stored (keep_previous)
        self.uri = tracking_uri
        self.run_id: str | None = None
        self.owns_run = False
        self._warned_unavailable = False
        self._writer: threading.Thread | None = None     # the training-time writes (write_behind)

    # ---------------------------------------------------------------- run lifecycle
    def start(self) -> str:
        """Start, continue or join the run; returns its id. With ``attach`` the run
        ``run_id`` (someone else's, e.g. Lightning's ``MLFlowLogger``) is written into through
        a client of ``tracking_uri`` alone: never made active, and ended here only with
        ``end_attached`` (the runs of stacked members, several open at once in one process)."""
        if self.attach:
            self.run_id = self.continue_run
            self.client = MlflowClient(self.uri)
        else:
            create_sqlite_store_once(mlflow.get_tracking_uri())
            with managed_run():          # the plugin tags the runs grok_mlflow starts
                if self.continue_run is not None:
                    mlflow.start_run(run_id=self.continue_run)
                    self.owns_run = True
                elif mlflow.active_run() is None:
                    if not os.environ.get("MLFLOW_RUN_ID"):
                        experiment = (self.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
                                      or (None if user_experiment_id() else
                                          DEFAULT_EXPERIMENT))
                        if experiment:
                            use_experiment(experiment)
                    mlflow.start_run(run_name=self.run_name)
                    self.owns_run = True
            active = mlflow.active_run()
            assert active is not None, "a run was started or joined just above"
            self.run_id = active.info.run_id
            self.client = MlflowClient()
        self.buffer = MetricBuffer(self.client, self._id, self.flush_every_s)
        self.set_tags(version_tags())    # also on a run someone else started
        return self._id

    @property
    def _id(self) -> str:
        """The run's id, once ``start`` has started or joined it."""
        if self.run_id is None:
            raise RuntimeError(f"Recorder {self.run_name!r}: start() it before writing")
        return self.run_id

    def end(self, status: str) -> None:
        """End the run (FINISHED, FAILED, KILLED) if this recorder started it (or, attached,
        was told to end it)."""
        if self.owns_run:
            mlflow.end_run(status)
        elif self.attach and self.end_attached:
            self.client.set_terminated(self._id, status)

    # ---------------------------------------------------------------- params, tags, config
    def params(self) -> dict[str, str]:
        """The params the run already holds (``mlflow run`` logs its own before we start)."""
        return dict(self.client.get_run(self._id).data.params)

    def log_params(self, params: Mapping[str, str]) -> None:
        """Log params in one batch (those the run already holds must be left out: MLflow params
        cannot change)."""
        if params:
            self.client.log_batch(self._id, params=[Param(k, str(v)[:6000])
                                                       for k, v in params.items()],
                                  synchronous=True)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self._id, key, str(value))

    def log_dict(self, obj: Mapping[str, Any], path: str) -> None:
        self.client.log_dict(self._id, dict(obj), path)

    def log_text(self, text: str, path: str) -> None:
        self.client.log_text(self._id, text, path)

    def log_tensors(self, tensors: Mapping[str, Any], path: str) -> None:
        """``torch.save`` of a mapping of CPU tensors as the artifact ``path`` (e.g.
        ``analysis/points.pt``)."""
        with tempfile.TemporaryDirectory() as tmp:
            file = os.path.join(tmp, os.path.basename(path))
            torch.save(dict(tensors), file)
            self.client.log_artifact(self._id, file, os.path.dirname(path) or None)

    def log_figure(self, fig, path: str) -> None:
        """Log a matplotlib figure."""
        log_run_figure(self._id, fig, path, self.client)

    # ---------------------------------------------------------------- metrics
    def add_metrics(self, metrics: Mapping[str, float | Tensor], step: int) -> dict[str, float]:
        """Buffer metrics at ``step`` (numbers or 0-dim tensors); returns them as floats."""
        return self.buffer.add(metrics, step)

    def flush_due(self) -> bool:
        return self.buffer.due()

    def flush(self, retry_s: float = 0.0) -> bool:
        """Write buffered metrics now, in this thread, after the training-time write in flight
        (``write_behind``). With ``retry_s`` 0 an unreachable store is not waited for: the points
        stay buffered (one warning) and False is returned, as it is while a write is in flight.
        With ``retry_s`` the in-flight write and then the store are waited for that long in
        all, then ``TrackingUnavailable`` is raised (the points still buffered)."""
        deadline = time.monotonic() + retry_s
        if self._writer is not None:
            self._writer.join(timeout=retry_s if retry_s else 0.0)
            if self._writer.is_alive():
                if retry_s:
                    raise TrackingUnavailable(
                        f"{len(self.buffer.pending)} metric points not written: a write is "
                        f"still waiting for the store after {retry_s:g} s")
                return False
        try:
            self.buffer.flush(max(deadline - time.monotonic(), 0.0) if retry_s else 0.0)
        except TrackingUnavailable as err:
            if retry_s:
                raise
            self._warn_unavailable(err)
            return False
        return True

    def write_behind(self, checkpoint: Mapping[str, Any] | None = None,
                     texts: Mapping[str, str] | None = None,
                     figures: Mapping[str, Any] | None = None) -> bool:
        """The writes of a training step, on a background thread so that training never waits
        for the store (MLflow's own HTTP retries can hold one call for minutes while a
        server is down): the buffered metrics, then the checkpoint (serialised here, so it is
        the state of this step), then ``texts`` and ``figures`` ({artifact path: content};
        the figures drawn into PNG here, in the caller's thread: matplotlib is not
        thread-safe).
        One write at a time: while the previous one still waits for the store this returns
        False and starts nothing (the metrics stay buffered for the next; checkpoints and
        artifacts are refreshed later). A recorder with ``keep_previous`` (stacked members,
        which resume at one common step) waits for its previous write instead. A failure
        warns once on stderr and never reaches the training loop."""
        if self._writer is not None and self._writer.is_alive():
            if not self.keep_previous:
                return False
            self._writer.join()
        saved = self._checkpoint_file(checkpoint) if checkpoint is not None else None
        try:
            pngs = {path: figure_png(fig) for path, fig in (figures or {}).items()}  # drawn here
        except Exception as err:  # noqa: BLE001 - a figure is refreshed later; never stops training
            logger.warning(f"grok-mlflow: warning: figure not drawn ({type(err).__name__})")
            pngs = {}

        def write() -> None:
            try:
                self.buffer.flush(0.0)
            except TrackingUnavailable as err:
                self._warn_unavailable(err)
                if saved is not None:
                    saved[0].cleanup()
                return
            if saved is not None:
                self._upload_checkpoint(*saved)
            try:
                for path, text in (texts or {}).items():
                    self.client.log_text(self._id, text, path)
                for path, data in pngs.items():
                    log_run_png(self._id, data, path, self.client)
            except Exception as err:  # noqa: BLE001 - refreshed later; never stops training
                logger.warning(f"grok-mlflow: warning: artifacts not refreshed ({type(err).__name__})")

        self._writer = threading.Thread(target=write, name="grok-mlflow-writer", daemon=True)
        self._writer.start()
        return True

    def can_write_behind(self) -> bool:
        """Whether ``write_behind`` would start a write now (no write in flight, or a
        ``keep_previous`` recorder, which waits for it)."""
        return self.keep_previous or self._writer is None or not self._writer.is_alive()

    def _warn_unavailable(self, err: Exception) -> None:
        if not self._warned_unavailable:
            logger.warning(f"grok-mlflow: warning: tracking store unavailable ({err}); buffering and "
                           "retrying")
            self._warned_unavailable = True

    def save_unsent(self) -> str:
        """Buffered points to ``unsent_metrics_<run>.jsonl``; says so on stderr; returns the
        path. The run is then left as it is (ending it would fail the same way)."""
        path = self.buffer.save_unsent()
        logger.error(f"grok-mlflow: error: the tracking store did not answer; "
                     f"{len(self.buffer.pending)} metric points saved to {path}. When it is back: "
                     f"grok-mlflow import {path}")
        self.owns_run = False
        return path

    def logged_steps(self) -> dict[str, int]:
        """Last logged step of every metric of the run (a resumed run does not log them again)."""
        keys = self.client.get_run(self._id).data.metrics
        return {k: max(m.step for m in self.client.get_metric_history(self._id, k))
                for k in keys}

    # ---------------------------------------------------------------- artifacts
    def save_checkpoint(self, state: Mapping[str, Any], retry: bool = False) -> None:
        """``checkpoints/last.pt``, now, in this thread; a failed upload warns (the next flush
        writes a newer one), or raises with ``retry``. With ``keep_previous`` the file also
        holds, under ``"previous"``, the checkpoint stored before it (stacked members resume
        at one common step even when a kill came between two members' checkpoints)."""
        if self._writer is not None:
            self._writer.join()          # after the training-time write in flight, in order
        self._upload_checkpoint(*self._checkpoint_file(state), retry=retry)

    def _checkpoint_file(self, state: Mapping[str, Any]
                         ) -> tuple[tempfile.TemporaryDirectory, str, dict | None]:
        """``state`` serialised into a temporary ``last.pt`` (with the previous checkpoint
        under ``keep_previous``); returns (the directory, the file, a copy of the state to keep
        as the next one's previous, or None)."""
        payload = dict(state)
        if self.keep_previous:
            payload["previous"] = self._previous
        tmp = tempfile.TemporaryDirectory()
        path = os.path.join(tmp.name, "last.pt")
        torch.save(payload, path)
        # a copy: the state's tensors are the live weights
        return tmp, path, copy.deepcopy(dict(state)) if self.keep_previous else None

    def _upload_checkpoint(self, tmp: tempfile.TemporaryDirectory, path: str,
                           kept: dict | None, retry: bool = False) -> None:
        try:
            self.client.log_artifact(self._id, path, "checkpoints")
        except Exception as err:
            if retry:
                raise
            logger.warning(f"grok-mlflow: warning: checkpoint not written ({type(err).__name__}); "
                           "retrying at the next flush")
            return
        finally:
            tmp.cleanup()
        if kept is not None:
            self._previous = kept

    def log_snapshot(self, name: str, fig, state_dict: Mapping[str, Tensor],
                     step: int | None = None) -> None:
        """A partition snapshot: ``partition/<name>.png`` and the weights it was drawn from
        (``partition/weights/<name>.pt``); with ``step``, also as MLflow's stepped image
        ``partition`` (``log_image(key=, step=)``: the run page's image slider over the
        snapshots). An unreachable store warns instead of stopping."""
        try:
            with tempfile.TemporaryDirectory() as tmp:
                png, pt = os.path.join(tmp, f"{name}.png"), os.path.join(tmp, f"{name}.pt")
                # zlib level 1: a third less time than the default 6, ~12% larger files
                fig.savefig(png, dpi=100, pil_kwargs={"compress_level": 1})
                # clone: a stacked member's tensors are views of every member's storage
                torch.save({k: v.detach().cpu().clone() for k, v in state_dict.items()}, pt)
                self.client.log_artifact(self._id, png, "partition")
                self.client.log_artifact(self._id, pt, "partition/weights")
                if step is not None:
                    with PIL.Image.open(png) as image:
                        self.client.log_image(self._id, image.convert("RGB"),
                                              key="partition", step=step)
        except Exception as err:  # noqa: BLE001 - an unreachable store must not stop training
            logger.warning(f"grok-mlflow: warning: partition snapshot {name} not stored "
                           f"({type(err).__name__})")

    def log_partition_gif(self) -> None:
        """``partition/partition.gif`` from every stored snapshot (also those before a resume)."""
        frames = sorted(a.path for a in self.client.list_artifacts(self._id, "partition")
                        if a.path.endswith(".png"))
        if not frames:
            return
        with tempfile.TemporaryDirectory() as tmp, quiet_downloads():
            local = [mlflow.artifacts.download_artifacts(run_id=self.run_id, artifact_path=f,
                                                         dst_path=tmp, tracking_uri=self.uri)
                     for f in frames]
            path = os.path.join(tmp, "partition.gif")
            partition_gif(local, path)
            self.client.log_artifact(self._id, path, "partition")

    def log_model(self, model: nn.Module, example: Tensor, tensor_output: bool = True) -> None:
        """The trained model with ``mlflow.pytorch``, as a CPU copy (it loads on machines
        without the training GPU), pickled so that ``mlflow.pytorch.load_model`` gives the
        module back (``grok-mlflow partition/radius/compare-regions`` rebuild runs from it); an
        explicit requirement skips MLflow's inference of them (~4 s). A model whose output is
        not one tensor (a dict, a ``ModelOutput``: ``tensor_output`` False) gets no input
        example (MLflow cannot infer its signature).
        ``mlflow.pytorch`` logs into the active run: an attached run is made active (nested) for
        the call."""
        active = mlflow.active_run()
        if self.attach and (active is None or active.info.run_id != self.run_id):
            with managed_run(), mlflow.start_run(run_id=self.run_id, nested=active is not None):
                return self._log_model(model, example, tensor_output)
        return self._log_model(model, example, tensor_output)

    @staticmethod
    def _log_model(model: nn.Module, example: Tensor, tensor_output: bool = True) -> None:
        _import_mlflow_pytorch()

        model = copy.deepcopy(model).cpu()
        for module in model.modules():   # a deep-copied view keeps its whole base storage
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    module._buffers[name] = buffer.clone()
        if tensor_output:
            extra = {"input_example": example.detach().cpu().numpy()}
        else:     # MLflow cannot infer a signature of a tuple or dict: say so once, not warn
            extra = {}
            logger.info("grok-mlflow: the model returns several outputs: logged without a signature "
                        "or input example (mlflow.pytorch.load_model loads it)")
        # pickled (cloudpickle; a class defined in your script travels by value): the module
        # itself comes back, which the analysis commands need (LC hooks its nonlinearity
        # modules and loads snapshot weights; a pt2 export has neither). Said in one line
        # instead of MLflow's warning; grok_mlflow's own classes travel as code (code_paths),
        # so the model loads where only its requirements are installed
        logger.info("grok-mlflow: the model is logged pickled: mlflow.pytorch.load_model gives the "
                    "module back for partition, radius and compare-regions (a pt2 export has no "
                    "modules to hook); load only models you trust")
        with _quiet_pickle_warning():
            mlflow.pytorch.log_model(model, name="model", serialization_format="pickle",
                                     pip_requirements=[
                                         f"torch=={torch.__version__.split('+')[0]}",
                                         f"mlflow=={mlflow.__version__}"],
                                     code_paths=[_PACKAGE_DIR], **extra)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # grok_mlflow/


class _PickleWarning(logging.Filter):
    """Drops MLflow's warning that a model is saved by pickle (said once, in our own line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Pickle or CloudPickle" not in record.getMessage()


@contextlib.contextmanager
def _quiet_pickle_warning():
    log = logging.getLogger("mlflow.pytorch")
    quiet = _PickleWarning()
    log.addFilter(quiet)
    try:
        yield
    finally:
        log.removeFilter(quiet)


_NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


def _import_mlflow_pytorch() -> None:
    """``import mlflow.pytorch``, when a model is logged and not at import: it imports Lightning
    when installed (~5 s), and Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` for the whole
    process. With it set, every later ``torch.optim`` Adam/AdamW step looks for NVML again (its
    CUDA-graph check; ~0.4 ms a step on a machine without NVML, 9% of a default digits step),
    so the variable is put back as it was: a second run in the process trains as fast as the
    first. A process that imported Lightning before keeps Lightning's setting."""
    before = os.environ.get(_NVML_CHECK)
    importlib.import_module("mlflow.pytorch")
    if before is None:
        os.environ.pop(_NVML_CHECK, None)
    else:
        os.environ[_NVML_CHECK] = before


class NullRecorder:
    """``Recorder``'s interface recording nothing: what the ranks other than 0 of a distributed
    run write through (rank 0 writes the one run)."""

    run_id = continue_run = uri = None
    attach = owns_run = False

    def __init__(self, *args, **kwargs) -> None:
        pass

    def start(self) -> None:
        return None

    def params(self) -> dict[str, str]:
        return {}

    def logged_steps(self) -> dict[str, int]:
        return {}

    def add_metrics(self, metrics: Mapping[str, float | Tensor], step: int) -> dict[str, float]:
        return MetricBuffer.to_floats(metrics)

    def flush_due(self) -> bool:
        return False

    def flush(self, retry_s: float = 0.0) -> bool:
        return False               # nothing written: no checkpoint either (rank 0 saves it)

    def can_write_behind(self) -> bool:
        return False

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None     # end, log_*, set_tags, save_*: nothing to do
