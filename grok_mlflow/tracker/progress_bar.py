"""What a training run shows in the terminal: one step progress bar (tqdm on stderr).

Example:
    bar = step_bar(10_000, "digits_mlp")
    bar.update(1); bar.close()
"""

from __future__ import annotations

import sys

__all__ = ["step_bar"]


def step_bar(total: int, desc: str, initial: int = 0):
    """A tqdm bar over optimisation steps: redrawn ten times a second on a terminal, one line
    every 30 s in a log file (not ten a second)."""
    from tqdm.auto import tqdm  # noqa: PLC0415 - tqdm: the progress bar only

    return tqdm(total=total, unit="step", dynamic_ncols=True, desc=desc, initial=initial,
                mininterval=0.1 if sys.stderr.isatty() else 30.0)
