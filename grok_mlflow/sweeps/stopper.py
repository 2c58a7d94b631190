"""``SettledStopper``: a Ray Tune stopper that ends a trial once its phases are settled.

The rule is ``phases.settled`` (see ``grok_mlflow.tracker.stopping``), asked by the trial's own
``GrokTracker``: with ``until="settled"`` it ends its run when the rule holds and reports
``grok/settled``; this stopper then ends the Tune trial. ASHA-style schedulers judge a metric's
current value, so they stop exactly the trials that have not grokked yet; this one waits for the
phases.

Example:
    tuner = tune.Tuner(trainable, run_config=tune.RunConfig(stop=SettledStopper()))
"""

from __future__ import annotations

from typing import Any, Mapping

from ray.tune import Stopper

__all__ = ["SettledStopper"]


class SettledStopper(Stopper):
    """A Ray Tune ``Stopper`` that ends a trial once its ``GrokTracker`` reports its phases
    settled (``grok/settled``; the tracker needs ``until="settled"``, and has then already ended
    its run). ``stopped``: {trial id: the step it stopped at}.

    A trial whose results carry no ``grok/until`` (no GrokTracker) or whose tracker was not
    given ``until="settled"`` raises ``ValueError`` naming the fix: the stopper cannot end a
    run cleanly that its tracker does not end itself.
    """

    def __init__(self) -> None:
        self.stopped: dict[str, int] = {}

    def __call__(self, trial_id: str, result: Mapping[str, Any]) -> bool:
        if "grok/until" not in result:
            raise ValueError(f"SettledStopper: trial {trial_id} reports no grok/until: its "
                             "trainable must measure with grok_mlflow.GrokTracker")
        if result["grok/until"] < 1:
            raise ValueError(f"SettledStopper: trial {trial_id}'s GrokTracker was not given "
                             "until='settled' (TrackerSettings(until='settled'))")
        if result.get("grok/settled", 0.0) >= 1:
            self.stopped[trial_id] = int(result["step"])
            return True
        return False

    def stop_all(self) -> bool:
        return False
