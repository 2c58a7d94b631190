"""What the Lightning and Hugging Face callbacks share (tracker/callbacks.py): the rule that
fills in ``steps`` from the trainer. Each callback end to end: test_lightning.py,
test_huggingface.py."""

from __future__ import annotations

import pytest
import torch

from grok_mlflow.settings import TrackerSettings
from grok_mlflow.tracker.callbacks import TrackerCallback


def test_steps_come_from_the_trainer_unless_the_settings_give_them():
    data = (torch.rand(8, 3), torch.randint(0, 2, (8,)))
    asked = []

    def trainer_steps() -> int:
        asked.append(True)
        return 1234

    assert TrackerCallback(data, data).tracker_settings(trainer_steps).steps == 1234
    kept = TrackerCallback(data, data, TrackerSettings(steps=50, lc_samples=7))
    asked.clear()
    assert kept.tracker_settings(trainer_steps) == TrackerSettings(steps=50, lc_samples=7)
    assert asked == []                            # an explicit steps never asks the trainer
    default_steps = TrackerCallback(data, data, TrackerSettings(lc_samples=7))
    chosen = default_steps.tracker_settings(lambda: 0)
    assert (chosen.steps, chosen.lc_samples) == (1, 7)     # at least one step
    with pytest.raises(TypeError):
        TrackerCallback(data, data, stepz=3)
