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
from dataclasses import dataclass, field
from typing import Mapping

from ..findings.phases import settled
from ..settings import TrackerSettings

__all__ = ["Decision", "Settling", "in_tune_trial", "report_to_tune"]


@dataclass(frozen=True)
class Decision:
    """What the settled rule decided at a step, for the tracker to act on: ``stop`` (training
    may end here), the ``note`` that opens the run's report and the ``tags`` for the run."""

    stop: bool
    note: str
    tags: dict[str, str] = field(default_factory=dict)


class Settling:
    """``until: settled``, asked by the tracker at its measured steps; it decides and never acts:
    ``decide`` returns a ``Decision`` when the rule first holds (the tracker records it and
    ``settled`` stays True), ``at_the_cap`` what a run that reached ``steps`` says about the
    rule. Inside a Ray Tune trial (``tune_report``) ``carry`` keeps every metric's last value
    for ``report_to_tune``."""

    def __init__(self, lc_key: str, tune_report: bool = False) -> None:
        self.lc_key, self.tune_report = lc_key, tune_report
        self.settled = False
        self.carried: dict[str, float] = {}     # every metric's last measured value (Tune)

    def decide(self, step: int, history: Mapping[int, Mapping[str, float]],
               settings: TrackerSettings) -> Decision | None:
        """Ask the rule at measured ``step`` (from ``min_steps`` on, before the cap): the
        decision when it first holds, else None."""
        s = settings
        if s.until != "settled" or self.settled or step < s.min_steps or step >= s.steps:
            return None
        ok, why = settled(history, lc_key=self.lc_key)
        if not ok:
            return None
        self.settled = True
        return Decision(True, f"Stopped at step {step:,} of {s.steps:,} (until: settled): {why}.",
                        {"grok_mlflow.stop_step": str(step), "grok_mlflow.stop_rule": "settled"})

    def at_the_cap(self, last_step: int, history: Mapping[int, Mapping[str, float]],
                   settings: TrackerSettings) -> Decision | None:
        """A run that reached ``steps`` says whether the rule holds there (the cap is never
        asked during training: the run ends there anyway) and, if not, why."""
        s = settings
        if s.until != "settled" or self.settled or last_step < s.steps:
            return None
        ok, why = settled(history, lc_key=self.lc_key)
        return Decision(False, f"Ran to the cap, step {s.steps:,} (until: settled), "
                        + (f"where the rule holds: {why}." if ok else
                           f"without settling: {why}."), {"grok_mlflow.stop_rule": "settled"})

    def carry(self, values: Mapping[str, float]) -> dict[str, float]:
        """Every metric's last measured value, ``values`` included (what Tune is told)."""
        self.carried.update(values)
        return self.carried


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
