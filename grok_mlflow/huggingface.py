"""Hugging Face ``Trainer`` integration: a callback that measures LC (and PGD, accuracy) during
``trainer.train()``.

    from transformers import Trainer, TrainingArguments
    from grok_mlflow.huggingface import GrokTrainerCallback

    callback = GrokTrainerCallback(train=(x_train, y_train), test=(x_test, y_test),
                                   settings=TrackerSettings(lc_input="bert.embeddings.word_embeddings"))
    trainer = Trainer(model=model, args=TrainingArguments(..., report_to="mlflow"),
                      train_dataset=train_set, callbacks=[callback])
    trainer.train()

A thin adapter, as the Lightning callback is: ``on_train_begin`` starts a ``GrokTracker``, every
optimisation step is ``tracker.step(state.global_step)``, ``on_train_end`` finishes it. With
transformers' own ``MLflowCallback`` active (``report_to="mlflow"``, or ``"all"`` with mlflow
installed) the measurements go into the run it opened (no second run; its name, params and end
are its own; the tracker's settings become params ``grok.<name>``); without it the callback
starts and ends a run of its own. The schedule runs over ``settings.steps``, by default the
Trainer's ``max_steps``.

Hugging Face models return a ``ModelOutput``: its ``logits`` are measured (``output=`` picks
another tensor). Token models need ``lc_input``, the module whose output is continuous (the word
embeddings). transformers' activation modules (``GELUActivation``, ``NewGELUActivation``, ...)
are registered as nonlinearities when this module is imported. Data items may be mappings
(``{"input_ids": ..., "labels": ...}``, a tokenized ``datasets.Dataset`` in torch format) as well
as ``(input, label)`` pairs (``grok_mlflow.tracker.probes``).

Under ``torch.distributed`` every process measures its share of the points
(``grok_mlflow.tracker.distributed``) and only the main one (``state.is_world_process_zero``)
writes. A ``Trainer`` has no exception hook: when training raises, a run this callback
started stays RUNNING (as transformers' own does); ``train(resume_from_checkpoint=...)``
continues it from the ``grok_tracker.pt`` saved beside each checkpoint. Install with
``pip install -e '.[huggingface]'`` in a clone of the repository (grok_mlflow is not on
PyPI), or ``pip install transformers accelerate``.
"""

from __future__ import annotations

import os
from typing import Any

import torch

try:
    import transformers.activations as _activations
    from transformers import TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
except ImportError as err:  # pragma: no cover - the optional extra is missing
    raise ImportError("grok_mlflow.huggingface needs transformers: "
                      "pip install transformers accelerate (or pip install -e '.[huggingface]' "
                      "in the grok_mlflow repository)") from err

from .measures.network import register_nonlinearity
from .store.recorder import Recorder
from .store.tracking_store import active_run_id
from .tracker.callbacks import TrackerCallback
from .tracker.tracking import model_run_name

__all__ = ["GrokTrainerCallback", "HF_NONLINEARITIES", "TRACKER_FILE"]

TRACKER_FILE = "grok_tracker.pt"     # in each checkpoint-N folder the Trainer saves

# transformers' activation modules (kinks or bends, as nn.GELU): their inputs are pre-activations
HF_NONLINEARITIES = tuple(getattr(_activations, name) for name in (
    "GELUActivation", "NewGELUActivation", "FastGELUActivation", "QuickGELUActivation",
    "AccurateGELUActivation", "ClippedGELUActivation", "GELUTanh", "PytorchGELUTanh",
    "SiLUActivation", "MishActivation", "ReLUSquaredActivation", "LaplaceActivation")
    if hasattr(_activations, name))


def _register_activations() -> None:
    for module in HF_NONLINEARITIES:
        register_nonlinearity(module)


_register_activations()


def _saved_state(output_dir: str, step: int) -> dict[str, Any] | None:
    """What ``on_save`` kept beside the checkpoint of ``step`` (the one the Trainer resumed
    from), or None."""
    path = os.path.join(output_dir, f"{PREFIX_CHECKPOINT_DIR}-{step}", TRACKER_FILE)
    return torch.load(path, weights_only=False) if os.path.isfile(path) else None


class GrokTrainerCallback(TrackerCallback, TrainerCallback):
    """Measure a model during ``Trainer.train`` and record it in transformers' MLflow run.

    Args:
        train, test: data as for ``GrokTracker``: ``(x, y)`` tensors, a Dataset or a DataLoader
            of (input, label) pairs or of mappings with the input and ``labels``.
        settings: ``TrackerSettings``; ``steps`` left at its default is replaced by the
            Trainer's ``max_steps``.
        domain: (low, high) box of continuous inputs (None: the data's own; see
            ``GrokTracker``).
        run_name: name of a run started here (without transformers' ``MLflowCallback``).
        progress: the tracker's own progress bar (off: the Trainer has one).
        task, output, loss_fn: as ``GrokTracker``'s.
        log_model: log the trained model at the end (``mlflow.pytorch``, pickled), so that
            ``grok-mlflow partition/radius/compare-regions RUN_ID`` rebuild the run; False for
            a model too large to keep (``transformers``' own ``HF_MLFLOW_LOG_ARTIFACTS`` logs
            checkpoints, not a loadable module).

    Attributes:
        tracker: the ``GrokTracker`` of the last ``train`` (``tracker.history``, ``.run_id``).

    Example:
        callback = GrokTrainerCallback((x, y), (x_te, y_te),
                                       TrackerSettings(lc_input="embed", adv_points=0))
        Trainer(model, args, train_dataset=ds, callbacks=[callback]).train()
        callback.tracker.history[callback.tracker.last_step]["lc/train"]
    """

    def on_train_begin(self, args, state, control, model=None, **kwargs) -> None:
        if model is None:
            return
        _register_activations()          # again: the registry may have been reset since import
        settings = self.tracker_settings(lambda: state.max_steps)
        model = getattr(model, "module", model)          # a DistributedDataParallel wrapper
        name = self.run_name or args.run_name or model_run_name(model)
        saved = _saved_state(args.output_dir, state.global_step) if state.global_step else None
        # transformers' MLflowCallback's run (on the main process; the others write nothing);
        # resumed without one, the run the checkpoint's tracker wrote into
        run_id = active_run_id() if state.is_world_process_zero else None
        if run_id is not None:
            # the run the resumed checkpoint's tracker wrote into, still active (a notebook
            # kernel after the crash): continue it and end it, as a run of our own
            ours = saved is not None and saved.get("run_id") == run_id
            recorder = Recorder(name, run_id=run_id, attach=True, end_attached=ours,
                                flush_every_s=settings.checkpoint_every_s)
        elif saved is not None and state.is_world_process_zero and saved.get("run_id"):
            recorder = Recorder(name, run_id=saved["run_id"],
                                flush_every_s=settings.checkpoint_every_s)
        else:
            recorder = None
        resume = ({"tracker": {"history": saved["history"]}, "step": saved["step"]}
                  if saved is not None else None)
        self.open_tracker(model, settings, name, recorder, resume=resume)

    def on_save(self, args, state, control, **kwargs) -> None:
        """Beside the Trainer's checkpoint, what resuming from it needs (``grok_tracker.pt``:
        the measured history, the step and the run), so that ``trainer.train(
        resume_from_checkpoint=...)`` continues the same run's curves."""
        if not self._open or not state.is_world_process_zero:
            return
        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        tracker = self.tracker
        if os.path.isdir(folder) and tracker is not None:
            torch.save({**tracker.state(), "run_id": tracker.run_id},
                       os.path.join(folder, TRACKER_FILE))

    def on_step_end(self, args, state, control, **kwargs) -> None:
        if self._open and self.tracker is not None:
            self.tracker.step(state.global_step)

    def on_train_end(self, args, state, control, **kwargs) -> None:
        if not self._open or self.tracker is None:
            return
        self._open = False
        self.tracker.finish()

    def state(self) -> dict[str, Any]:
        """The measured history and last step (``GrokTracker.state``)."""
        return self.tracker.state() if self.tracker is not None else {}
