"""Runs that stop once their phases are settled: ``until: settled`` and the Ray Tune stopper.

One rule decides (``phases.settled``): after the second descent (from interpolation on) or,
where LC showed no ascent after interpolation (fig. 10), after test accuracy grokked, once
train LC, test accuracy and adversarial accuracy no longer move beyond their noise over the
last tenth of the log-step axis. It is asked at every measured step from ``min_steps`` on:

- ``train`` and a sweep's trials (``until: settled`` in the settings or ``stop: settled`` in a
  spec): the loop stops at the first step where it holds; the run records where and why;
- your own loop: ``GrokTracker(..., settings=TrackerSettings(until="settled"))`` sets
  ``tracker.settled``; ``if tracker.settled: break``;
- your own Ray Tune trainable: the tracker reports every measured step to Tune with the last
  measured value of every metric carried forward (Tune's schedulers never see a missing metric)
  and ``grok/settled``; when it holds, the tracker ends its run (FINISHED, with the reason)
  *before* reporting it, so ``grok_mlflow.sweeps.stopper.SettledStopper`` can stop the trial without
  cutting the run short (Tune interrupts a stopped trial's thread at its next report; anything
  left to write then is lost).
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Mapping

from ..findings.phases import settled

__all__ = ["Settling", "in_tune_trial", "report_to_tune"]


class Settling:
    """The tracker's side of ``until: settled``: ``check(step)`` at measured steps; once the
    rule holds, ``settled`` is True and the run is tagged (``grok_mlflow.stop_step``,
    ``grok_mlflow.stop_rule``, ``grok_mlflow.stop_note``) and its report opens with the note."""

    def __init__(self, tracker: Any, lc_key: str, tune_report: bool = False) -> None:
        self.tracker, self.lc_key, self.tune_report = tracker, lc_key, tune_report
        self.settled = False
        self.carried: dict[str, float] = {}     # every metric's last measured value (Tune)

    @property
    def on(self) -> bool:
        return self.tracker.settings.until == "settled"

    def at_measured(self, step: int, values: Mapping[str, float]) -> None:
        """After the tracker measured ``step``: ask the rule; inside a Ray Tune trial report
        the step to Tune, ending the run first when it settled (Tune may stop the trial then)."""
        self.check(step)
        if self.tune_report:
            self.carried.update(values)
            if self.settled:
                self.tracker.finish()
            report_to_tune(step, self.carried, self.settled, self.tracker.settings.until)

    def check(self, step: int) -> bool:
        """Ask the rule at measured ``step`` (from ``min_steps`` on, before the cap)."""
        s = self.tracker.settings
        if not self.on or self.settled or step < s.min_steps or step >= s.steps:
            return self.settled
        ok, why = settled(self.tracker.history, lc_key=self.lc_key)
        if ok:
            self.settled = True
            self.tracker.stopped(f"Stopped at step {step:,} of {s.steps:,} (until: settled): "
                                 f"{why}.", {"grok_mlflow.stop_step": str(step),
                                             "grok_mlflow.stop_rule": "settled"})
        return self.settled

    def at_the_cap(self) -> None:
        """A run that reached ``steps`` says whether the rule holds there (the cap is never
        asked during training: the run ends there anyway) and, if not, why."""
        s = self.tracker.settings
        if not self.on or self.settled or (self.tracker.last_step or 0) < s.steps:
            return
        ok, why = settled(self.tracker.history, lc_key=self.lc_key)
        self.tracker.stopped(f"Ran to the cap, step {s.steps:,} (until: settled), "
                             + (f"where the rule holds: {why}." if ok else
                                f"without settling: {why}."),
                             {"grok_mlflow.stop_rule": "settled"})


def in_tune_trial() -> bool:
    """Whether this code runs inside a Ray Tune trial (never imports Ray itself)."""
    if "ray.tune" not in sys.modules:
        return False
    from ray import tune  # noqa: PLC0415 - Ray: inside a Ray Tune trial only

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # Ray warns when asked outside a trial
        return tune.get_context().get_trial_id() is not None


def report_to_tune(step: int, carried: Mapping[str, float], settled: bool, until: str) -> None:
    """One Tune result: every metric's last measured value, the step, ``grok/settled`` and
    ``grok/until`` (1.0 when the tracker stops on ``until: settled``)."""
    from ray import tune  # noqa: PLC0415 - Ray: inside a Ray Tune trial only

    tune.report({**carried, "step": step, "grok/settled": float(settled),
                 "grok/until": float(until == "settled")})
