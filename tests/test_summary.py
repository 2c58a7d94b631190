"""What a sweep's parent holds at its end: the description keeps the verdicts whole."""

from __future__ import annotations

from grok_mlflow.sweeps.summary import NOTE_LIMIT, parent_note


def test_a_parent_note_too_long_for_mlflow_keeps_the_verdicts_whole():
    claims = "### Sweep s: the paper's claims\n\n- **SUPPORTED**: x.\n\nHow the verdicts " + \
        "r" * 3000
    short = parent_note(claims, "### each trial\n")
    assert short == claims + "\n### each trial\n"
    long = parent_note(claims, "| row |\n" * 2000)
    assert len(long) <= NOTE_LIMIT and long.startswith("### Sweep s: the paper's claims\n\n"
                                                       "- **SUPPORTED**: x.\n\nThe verdicts'")
