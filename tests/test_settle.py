"""The tracker's side of until: settled (grok_mlflow.settle): the rule asked measurement by
measurement on a real recorded run; a run that never settles, end to end, is in test_training."""

from __future__ import annotations

from conftest import REPO


def test_until_settled_stops_a_real_double_descent_after_it_settles_and_never_before():
    """The recorded fig. 1 MNIST run (tests/data), replayed measurement by measurement through
    the tracker's rule: it holds first after the second descent (onset ~11,400) once LC and the
    accuracies have been flat over the last tenth of the log-step axis; never during the first
    descent or the ascent."""
    from grok_mlflow.findings.history import read_history_csv
    from grok_mlflow.tracker.settle import Settling
    from grok_mlflow.settings import TrackerSettings

    class Replay:                 # what Settling reads of a tracker, and what it calls
        settings = TrackerSettings(steps=100_000, until="settled", lc_radius=(0.005, 0.05))
        history, last_step, notes = {}, None, []

        def stopped(self, note, tags):
            self.notes.append((note, dict(tags)))

    full = read_history_csv((REPO / "tests" / "data" / "fig1_mnist_cpu_history.csv").read_text())
    tracker = Replay()
    settling = Settling(tracker, "lc_r0.005/train")
    stopped_at = None
    for step in sorted(full):
        tracker.history[step], tracker.last_step = full[step], step
        if settling.check(step):
            stopped_at = step
            break
    assert stopped_at is not None and 11_690 < stopped_at < 100_000
    note, tags = tracker.notes[0]
    assert note.startswith(f"Stopped at step {stopped_at:,} of 100,000 (until: settled): "
                           "settled: after the second descent")
    assert tags == {"grok_mlflow.stop_step": str(stopped_at), "grok_mlflow.stop_rule": "settled"}
