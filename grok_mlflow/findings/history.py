"""The measured history's CSV format (``history.csv``, a run's artifact): one row per step, one
column per metric key, empty cells for keys not measured at that step.

Example:
    >>> text = history_csv({0: {"acc/test": 0.1}, 10: {"acc/test": 0.9, "lc/train": 3.2}})
    >>> read_history_csv(text)[10]["lc/train"]
    3.2
"""

from __future__ import annotations

import csv
import io
import math
from typing import Mapping

__all__ = ["history_csv", "read_history_csv"]


def history_csv(history: Mapping[int, Mapping[str, float]]) -> str:
    """The measured history as CSV text: one row per step, one column per metric key."""
    keys = sorted({k for row in history.values() for k in row})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["step", *keys])
    for step in sorted(history):
        row = history[step]
        writer.writerow([step, *(_csv_value(row.get(k)) for k in keys)])
    return out.getvalue()


def read_history_csv(text: str) -> dict[int, dict[str, float]]:
    """The inverse of ``history_csv``: {step: {key: value}}, empty cells left out."""
    rows = list(csv.DictReader(io.StringIO(text)))
    return {int(r["step"]): {k: float(v) for k, v in r.items() if k != "step" and v != ""}
            for r in rows}


def _csv_value(value: float | None) -> str:
    if value is None:
        return ""
    return repr(value) if math.isfinite(value) else str(value)
