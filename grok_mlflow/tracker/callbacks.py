"""What the Lightning and Hugging Face callbacks share (``lightning.GrokCallback``,
``huggingface.GrokTrainerCallback``): their options, the rule that fills in ``steps`` from the
trainer, and how they open a ``GrokTracker`` in the trainer's MLflow run.

Each adapter keeps only its framework's hooks: when training starts (the model, the number of
steps, the run the trainer's logger opened), when a step ends, and when training ends.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from torch import nn

from ..settings import TrackerSettings
from ..store.recorder import Recorder
from .probes import Data
from .starting import settings_params
from .tracking import GrokTracker, RunOptions

__all__ = ["TrackerCallback"]


class TrackerCallback:
    """The options of both callbacks (see ``GrokCallback`` for each) and the tracker they open."""

    def __init__(self, train: Data, test: Data, settings: TrackerSettings | None = None, *,
                 domain: tuple[float, float] | None = None, run_name: str | None = None,
                 progress: bool = False, task: str | None = None, output=None, loss_fn=None,
                 log_model: bool = True):
        self.train, self.test, self.settings = train, test, settings
        self.log_model = log_model
        self.task_options = {"task": task, "output": output, "loss_fn": loss_fn}
        self.domain, self.run_name, self.progress = domain, run_name, progress
        self.tracker: GrokTracker | None = None
        self._open = False

    def tracker_settings(self, trainer_steps: Callable[[], int]) -> TrackerSettings:
        """The settings given, with ``steps`` left at its default replaced by the trainer's
        (asked only then)."""
        settings = self.settings or TrackerSettings()
        if self.settings is None or settings.steps == TrackerSettings().steps:
            settings = dataclasses.replace(settings, steps=max(int(trainer_steps()), 1))
        return settings

    def open_tracker(self, model: nn.Module, settings: TrackerSettings, name: str,
                     recorder: Recorder | None, resume: dict[str, Any] | None = None
                     ) -> GrokTracker:
        """Start a ``GrokTracker`` on ``model``: in the trainer's run when ``recorder`` writes
        into it (our params namespaced ``grok.``: the trainer's are there too), else in a run
        of its own."""
        params = settings_params(settings, "grok." if recorder is not None else "")
        run = RunOptions(name=name, params=params, recorder=recorder, resume=resume,
                         log_model=self.log_model, progress=self.progress)
        self.tracker = GrokTracker(model, self.train, self.test, settings, domain=self.domain,
                                   run=run, **self.task_options)
        self.tracker.start()
        self._open = True
        return self.tracker
