"""The run's record as it grows, and how it is closed.

``RunLog`` keeps the history of everything measured, buffers the metrics through the
``Recorder`` (a resumed run's steps already in the store are not logged twice), writes the
checkpoint after each flush, refreshes ``history.csv`` and the figure during long runs, and at
the end writes the phases, the report, the artifacts and the model, then ends the run.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from ..console import logger
from ..findings.history import history_csv
from ..findings.phases import PHASE_KEYS, detect_phases
from ..findings.plots import grokking_figure
from ..findings.report import report_markdown, reproduction_report
from ..store.recorder import MetricBuffer, NullRecorder, Recorder, TrackingUnavailable
from ..store.tracking_store import tracking_uri
from .distributed import Terminated

__all__ = ["DivergenceError", "RunLog"]


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite; the run ends FAILED, its last good checkpoint
    (from before the divergence) kept."""


class StepBoundaryInterrupt(KeyboardInterrupt):
    """Ctrl-C (or a sweep's stop) caught between two optimisation steps: the training state is
    consistent there, so the run ends KILLED *with* a checkpoint of that step (a plain
    ``KeyboardInterrupt`` may land mid-step: no checkpoint then)."""


class RunLog:
    """History, buffered metrics, checkpoints and artifacts of one run (rank 0 writes; the
    other ranks' recorder is a ``NullRecorder``)."""

    def __init__(self, recorder: Recorder | NullRecorder, *, main: bool, run_name: str,
                 checkpoint: Callable[[], dict[str, Any]] | None, artifact_every_s: float):
        self.recorder, self.main, self.run_name = recorder, main, run_name
        self.checkpoint_fn, self.artifact_every_s = checkpoint, artifact_every_s
        self.history: dict[int, dict[str, float]] = {}
        self.phases: dict[str, float] = {}
        self.logged: dict[str, int] = {}    # key -> last step already in the store (on resume)
        self._artifacts_written = time.monotonic()

    def fail(self, err: BaseException, step: int | None) -> None:
        """Say on the run why it failed, in one line (tags ``grok_mlflow.failure``,
        ``grok_mlflow.failure_step``); a Ctrl-C is not a failure (a distributed SIGTERM is)."""
        if (isinstance(err, KeyboardInterrupt) and not isinstance(err, Terminated)
                or not self.recorder.run_id):
            return
        line = f"{type(err).__name__}: {err}".splitlines()[0][:500]
        if isinstance(err, DivergenceError):
            line = f"diverged: {err}"
        try:
            self.recorder.set_tags({"grok_mlflow.failure": line,
                                    "grok_mlflow.failure_step": str(step)})
        except Exception:  # noqa: BLE001 - the store may be the reason; the error itself wins
            pass

    def record(self, metrics: Mapping[str, Any], step: int) -> dict[str, float]:
        """Buffer what the store does not hold yet (a resumed run measures some steps again);
        everything goes into the history."""
        fresh = {k: v for k, v in metrics.items() if step > self.logged.get(k, -1)}
        values = self.recorder.add_metrics(fresh, step) if fresh else {}
        if len(fresh) < len(metrics):
            values.update(MetricBuffer.to_floats({k: v for k, v in metrics.items()
                                                  if k not in fresh}))
        self.history.setdefault(step, {}).update(values)
        return {k: values[k] for k in metrics}

    def restore(self, history: Mapping[Any, Mapping[str, float]]) -> None:
        """A checkpoint's history, taken back on resume; its points the store lacks (measured
        after the last write that reached it, before a crash) are written again."""
        for step in sorted(history, key=int):
            self.record(dict(history[step]), int(step))

    def after_measure(self, step: int, model: nn.Module) -> None:
        """When the recorder says a flush is due, or ``artifact_every_s`` has passed: the
        metrics, the checkpoint and (when due) ``history.csv`` and the figure, written behind
        training (``Recorder.write_behind``): an unreachable store is never waited for."""
        refresh = time.monotonic() - self._artifacts_written > self.artifact_every_s
        if not (refresh or self.recorder.flush_due()) or not self.recorder.can_write_behind():
            return
        texts: dict[str, str] = {}
        figures: dict[str, Any] = {}
        if refresh:
            try:
                texts, figures = self._artifacts()
            except Exception as err:  # noqa: BLE001 - a refresh never stops training; the
                # final write (write_artifacts) raises, and the metrics still go out below
                said = (str(err).strip().splitlines() or [""])[0][:120]
                logger.warning(f"grok-mlflow: warning: history.csv and the figure not refreshed "
                               f"at step {step} ({type(err).__name__}: {said})")
        if self.recorder.write_behind(self._checkpoint(step, model), texts, figures) and refresh:
            self._artifacts_written = time.monotonic()

    def flush(self, step: int | None, model: nn.Module, retry_s: float = 0.0) -> None:
        """Write buffered metrics, then (with a checkpoint function) the checkpoint at
        ``step``, now. With ``retry_s`` 0 an unreachable store is not waited for: the points
        stay buffered and go out with a later flush, and the checkpoint waits for them."""
        if not self.recorder.flush(retry_s):
            return
        state = self._checkpoint(step, model)
        if state is not None:
            self.recorder.save_checkpoint(state, retry=bool(retry_s))

    def _checkpoint(self, step: int | None, model: nn.Module) -> dict[str, Any] | None:
        """The checkpoint at ``step`` (None without a checkpoint function or a step)."""
        if self.checkpoint_fn is None or step is None:
            return None
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            # never overwrite the last good checkpoint with a diverged state
            raise DivergenceError(f"parameters are not finite at step {step}")
        state = self.checkpoint_fn()
        state["step"] = step
        state["tracker"] = {"history": self.history}
        return state

    def _artifacts(self) -> tuple[dict[str, str], dict[str, Any]]:
        """history.csv and the figure, as {artifact path: content} (none off the main rank)."""
        if not self.main:
            return {}, {}
        return ({"history.csv": history_csv(self.history)},
                {"figures/grokking.png": grokking_figure(self.history, self.phases,
                                                         title=self.run_name)})

    def write_artifacts(self) -> None:
        """history.csv and the figure, now (final at the end)."""
        texts, figures = self._artifacts()
        for path, text in texts.items():
            self.recorder.log_text(text, path)
        for path, fig in figures.items():
            self.recorder.log_figure(fig, path)
        self._artifacts_written = time.monotonic()

    def close(self, status: str, *, step: int | None, model: nn.Module, retry_s: float,
              lc_key: str, stop_note: str = "", partition: bool = False,
              model_example: Tensor | None = None, tensor_output: bool = True,
              final_metrics: Mapping[str, float] | None = None) -> None:
        """Flush the metrics (``final_metrics`` first, at the last measured step: what
        measuring cost) and the checkpoint at ``step``, when the state there is
        consistent; at a clean end (``model_example`` given when the model is logged, or
        ``status`` FINISHED) the phases, the report, the partition GIF and the model; end the
        run with ``status``."""
        clean = status == "FINISHED"
        try:
            if final_metrics and self.history:
                self.recorder.add_metrics(dict(final_metrics), max(self.history))
            try:
                self.flush(step, model, retry_s=retry_s)
            except TrackingUnavailable:
                self.recorder.save_unsent()
                raise
            if clean and self.history:
                self.phases = detect_phases(self.history, lc_key=lc_key)
                if self.phases:
                    self.recorder.add_metrics(self.phases, max(self.history))
                    self.recorder.flush()
                self.recorder.set_tags({k: str(v) for k, v in self.phases.items()
                                        if k in PHASE_KEYS})
                self.write_report(stop_note)
            if self.history:
                self.write_artifacts()
            if clean and partition:
                self.recorder.log_partition_gif()
            if clean and model_example is not None:
                self.recorder.log_model(model, model_example, tensor_output=tensor_output)
            if clean and self.main:
                logger.info(f"\nRun {self.recorder.run_id} recorded. To look at it:\n"
                            f"  mlflow ui --backend-store-uri {self.recorder.uri or tracking_uri()}")
        finally:
            self.recorder.end(status)

    def write_report(self, stop_note: str = "") -> None:
        """What the run showed (``grok_mlflow.findings.report``): the run's MLflow description, the
        artifact ``report.md``, and its headline on stderr."""
        if not self.main:
            return
        findings = reproduction_report(self.history)
        text = report_markdown(findings, title=self.run_name, stopped=stop_note)
        self.recorder.set_tags({"mlflow.note.content": text})
        self.recorder.log_text(text, "report.md")
        seen = [f.phase for f in findings if f.seen]
        logger.info(f"\nWhat run {self.recorder.run_id} showed: "
                    + (", ".join(seen) if seen else "none of the paper's phases")
                    + " (report.md has every phase, seen or not, and why)")
