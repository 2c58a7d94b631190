"""PyTorch Lightning integration: a callback that measures LC and robustness during ``fit``.

    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import MLFlowLogger
    from grok_mlflow.lightning import GrokCallback

    logger = MLFlowLogger(experiment_name="grokking", tracking_uri="sqlite:///mlflow.db")
    trainer = Trainer(max_steps=10_000, logger=logger,
                      callbacks=[GrokCallback(train=train_set, test=test_set)])
    trainer.fit(module, train_loader)

A thin adapter: Lightning's events become the calls a plain loop makes to ``GrokTracker``
(``on_train_start`` enters it, every optimisation step is ``tracker.step(trainer.global_step)``,
``on_train_end`` / ``on_exception`` leave it). With an ``MLFlowLogger`` the measurements go into
the logger's own run (no second run; the logger keeps owning, naming and ending it; the
tracker's settings become params ``grok.<name>`` beside the module's hyperparameters); without one
the tracker starts a run of its own, named after the module. The schedule runs over
``settings.steps``, by default the trainer's ``max_steps`` (or its estimated number of optimisation steps).

Under ``strategy="ddp"`` every rank measures its share of the points and rank 0 alone writes, into
the logger's run (Lightning's own rank-zero convention).

Resume: the callback's state (the measured history and last step) is saved in Lightning's
checkpoints; ``trainer.fit(..., ckpt_path=...)`` with an ``MLFlowLogger(run_id=...)`` of the same
run continues the schedule, and steps that already reached the store are not logged twice.
Install with ``pip install -e '.[lightning]'`` in a clone of the repository (grok_mlflow is
not on PyPI), or ``pip install lightning``.
"""

from __future__ import annotations

from typing import Any

try:
    from lightning.pytorch import Callback
    from lightning.pytorch.loggers import MLFlowLogger
except ImportError as err:  # pragma: no cover - the optional extra is missing
    raise ImportError("grok_mlflow.lightning needs PyTorch Lightning: "
                      "pip install lightning (or pip install -e '.[lightning]' in the grok_mlflow "
                      "repository)") from err

from .console import logger
from .settings import TrackerSettings
from .store.recorder import Recorder
from .tracker.callbacks import TrackerCallback
from .tracker.probes import Data
from .tracker.tracking import model_run_name

__all__ = ["GrokCallback"]


class GrokCallback(TrackerCallback, Callback):
    """Measure a LightningModule during ``fit`` and record it with the trainer's MLflow logger.

    Args:
        train, test: data as for ``GrokTracker``: ``(x, y)`` tensors, a Dataset or a
            DataLoader of (input, label) pairs; inputs as the module takes them.
        settings: ``TrackerSettings``; ``steps`` left at its default is replaced by the
            trainer's ``max_steps`` (or ``estimated_stepping_batches``).
        domain: (low, high) box of the inputs (None: the data's own; see ``GrokTracker``).
        run_name: name of a run started here (without an MLFlowLogger).
        progress: the tracker's own progress bar (off: Lightning has one).
        task, output, loss_fn: as ``GrokTracker``'s (binary and regression modules, modules
            returning a dict or ``ModelOutput``).
        log_model: log the trained module at the end (``mlflow.pytorch``, pickled without its
            trainer), so that ``grok-mlflow partition/radius/compare-regions RUN_ID`` rebuild
            the run; False for a module too large to keep.

    Attributes:
        tracker: the ``GrokTracker`` of the last ``fit`` (``tracker.history``, ``tracker.run_id``).
    """

    def __init__(self, train: Data, test: Data, settings: TrackerSettings | None = None,
                 **options: Any):
        super().__init__(train, test, settings, **options)
        self._resume: dict[str, Any] | None = None
        self._last_step: int | None = None

    # ------------------------------------------------------------------ Lightning hooks
    def on_train_start(self, trainer, pl_module) -> None:
        settings = self.tracker_settings(
            lambda: trainer.max_steps if trainer.max_steps and trainer.max_steps > 0
            else trainer.estimated_stepping_batches)
        logger = next((lg for lg in trainer.loggers if isinstance(lg, MLFlowLogger)), None)
        name = self.run_name or model_run_name(pl_module)
        recorder = None
        if logger is not None and trainer.is_global_zero:
            # Lightning's logger owns the run: write into it, never end it (under strategy="ddp"
            # the other ranks measure their shares and write nothing: grok_mlflow.tracker.distributed)
            recorder = Recorder(name, run_id=logger.run_id, attach=True,
                                flush_every_s=settings.checkpoint_every_s,
                                tracking_uri=getattr(logger, "_tracking_uri", None))
        self.open_tracker(pl_module, settings, name, recorder, resume=self._resume)
        self._last_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step     # optimisation steps taken so far
        if not self._open or step == self._last_step:
            return                     # gradient accumulation: no optimizer step yet
        self._last_step = step
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        assert self.tracker is not None          # opened in on_train_start
        self.tracker.step(step, loss=loss)

    def on_train_end(self, trainer, pl_module) -> None:
        self._leave(None)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._leave(exception)

    def state_dict(self) -> dict[str, Any]:
        if self.tracker is None:
            return {}
        return self.tracker.state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            self._resume = {"tracker": {"history": state_dict["history"]},
                            "step": state_dict["step"]}

    # ------------------------------------------------------------------ internals
    def _leave(self, exception: BaseException | None) -> None:
        if self.tracker is None or not self._open:
            return
        self._open = False
        try:
            self.tracker.finish(exception)
        except Exception as err:
            if exception is None:
                raise
            logger.warning(f"grok-mlflow: warning: {type(err).__name__} while closing the tracker")
