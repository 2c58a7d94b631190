"""The tracker's side of until: settled (grok_mlflow.tracker.stopping): the rule asked measurement by
measurement on a real recorded run, deciding (never acting); a run that never settles, end to end,
is in test_training."""

from __future__ import annotations

from conftest import REPO


def test_until_settled_stops_a_real_double_descent_after_it_settles_and_never_before():
    """The recorded fig. 1 MNIST run (tests/data, 1e5 steps), replayed measurement by
    measurement through the tracker's rule (a cap beyond it): never during the first descent
    or the ascent, nor during the second descent, which at r = 0.005 runs from ~9,100 (LC 0.88)
    to its last measurement (0.13): the rule holds first there, at step 100,000. (A straight
    line over the last stretch alone held at 17,270, the peak and the first of the fall inside
    one stretch: the whole-stretch check keeps that run going.)"""
    from grok_mlflow.findings.history import read_history_csv
    from grok_mlflow.settings import TrackerSettings
    from grok_mlflow.tracker.stopping import Settling

    settings = TrackerSettings(steps=200_000, until="settled", lc_radius=(0.005, 0.05))
    full = read_history_csv((REPO / "tests" / "data" / "fig1_mnist_cpu_history.csv").read_text())
    settling, history, decisions = Settling("lc_r0.005/train"), {}, []
    for step in sorted(full):
        history[step] = full[step]
        decision = settling.decide(step, history, settings)
        if decision is not None:
            decisions.append((step, decision))
            break
    assert settling.settled and [s for s, _ in decisions] == [100_000]
    stopped_at, decision = decisions[0]
    note, tags = decision.note, decision.tags
    assert decision.stop and note.startswith(
        "Stopped at step 100,000 of 200,000 (until: settled): settled: after the second descent "
        "(onset step 9,139")
    assert settling.decide(stopped_at, history, settings) is None      # decided once
    from grok_mlflow.findings.phases import settled

    ok, why = settled({s: v for s, v in full.items() if s <= 17_270}, lc_key="lc_r0.005/train")
    # the peak and the first of the fall inside the last stretch: held (the fall is read
    # before the last points, #49, so the rule waits for the descent itself)
    assert not ok and why in ("no second descent yet", why if why.startswith(
        "still moving: train LC ") else "")
    assert tags == {"grok_mlflow.stop_step": str(stopped_at), "grok_mlflow.stop_rule": "settled"}


def test_a_run_at_its_cap_says_whether_the_rule_holds_there():
    """The cap is not asked during training (the run ends there anyway): at the end the note
    says whether the rule holds at the cap, or why not (the same recorded run, cut at two caps)."""
    from grok_mlflow.findings.history import read_history_csv
    from grok_mlflow.settings import TrackerSettings
    from grok_mlflow.tracker.stopping import Settling

    full = read_history_csv((REPO / "tests" / "data" / "fig1_mnist_cpu_history.csv").read_text())
    notes = {}
    for cap in (3_000, max(full)):
        settings = TrackerSettings(steps=cap, until="settled", lc_radius=(0.005, 0.05))
        decision = Settling("lc_r0.005/train").at_the_cap(
            cap, {s: v for s, v in full.items() if s <= cap}, settings)
        assert decision is not None and not decision.stop
        assert decision.tags == {"grok_mlflow.stop_rule": "settled"}
        notes[cap] = decision.note
    assert notes[3_000].startswith("Ran to the cap, step 3,000 (until: settled), without "
                                   "settling: ")
    assert notes[max(full)].startswith(f"Ran to the cap, step {max(full):,} (until: settled), "
                                       "where the rule holds: settled: after the second descent")
