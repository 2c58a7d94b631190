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


def test_a_run_at_its_cap_says_whether_the_rule_holds_there():
    """The cap is not asked during training (the run ends there anyway): at the end the note
    says whether the rule holds at the cap, or why not (the same recorded run, cut at two caps)."""
    from grok_mlflow.findings.history import read_history_csv
    from grok_mlflow.settings import TrackerSettings
    from grok_mlflow.tracker.settle import Settling

    full = read_history_csv((REPO / "tests" / "data" / "fig1_mnist_cpu_history.csv").read_text())
    notes = {}
    for cap in (3_000, max(full)):
        class Capped:
            settings = TrackerSettings(steps=cap, until="settled", lc_radius=(0.005, 0.05))
            history = {s: v for s, v in full.items() if s <= cap}
            last_step = cap

            def stopped(self, note, tags, cap=cap):
                notes[cap] = note

        Settling(Capped(), "lc_r0.005/train").at_the_cap()
    assert notes[3_000].startswith("Ran to the cap, step 3,000 (until: settled), without "
                                   "settling: ")
    assert notes[max(full)].startswith(f"Ran to the cap, step {max(full):,} (until: settled), "
                                       "where the rule holds: settled: after the second descent")
