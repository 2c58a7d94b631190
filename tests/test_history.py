"""The history.csv format: every value back exactly, empty cells for unmeasured keys."""

from __future__ import annotations

import math

from grok_mlflow.findings.history import history_csv, read_history_csv


def test_history_round_trips_exactly_with_gaps_and_non_finite_values():
    history = {0: {"acc/test": 0.1, "lc/train": 1 / 3},
               10: {"acc/test": 0.9},
               20: {"adv/acc/eps_0.1": 0.0, "loss/train": math.inf}}
    text = history_csv(history)
    assert text.splitlines()[0] == "step,acc/test,adv/acc/eps_0.1,lc/train,loss/train"
    assert text.splitlines()[2] == "10,0.9,,,"
    assert read_history_csv(text) == history
