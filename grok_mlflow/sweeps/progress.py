"""A sweep's live progress in the terminal: one line per trial and a total, while it runs.

Trials report at their measured steps and every few seconds (``ray.tune.report`` with ``step``,
``steps``, ``acc_test``, ``lc_train``); ``SweepProgress``, a Ray Tune callback in the driver,
keeps one row per trial and draws the table: in place on a terminal (at most twice a second;
each line cut to the terminal's width, so that redrawing never leaves stale rows),
or as a new block every ``every_s`` seconds (default 30) when stderr is a log file. Example of
one block::

    sweep digits_width: 2/4 trials done, 1 running, 1 pending; 2:41 elapsed, ~1:50 left
      width=20    TERMINATED   3000/3000  acc/test 0.951  lc/train 4.21
      width=50    TERMINATED   3000/3000  acc/test 0.962  lc/train 5.03
      width=200   RUNNING      1812/3000  acc/test 0.969  lc/train 6.77
      width=800   PENDING         0/3000

The estimate of the rest is the elapsed time times the steps left over the steps done (shown
once 5% of all steps are done). ``grok-mlflow sweep --verbose`` adds Ray's own output.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any

from ray.tune import Callback

__all__ = ["SweepProgress", "TrialRow"]


@dataclass
class TrialRow:
    """What the table shows of one trial."""

    name: str
    steps: int
    state: str = "PENDING"
    step: int = 0
    metrics: dict[str, float] = field(default_factory=dict)

    def line(self, width: int) -> str:
        shown = "".join(f"  {k.replace('_', '/')} {v:.3g}" for k, v in self.metrics.items())
        return (f"  {self.name:<{width}}  {self.state:<11} {self.step:>{len(str(self.steps))}}/"
                f"{self.steps}{shown}")


class SweepProgress(Callback):
    """Ray Tune callback: the per-trial table of a sweep, live on stderr.

    Args:
        name: the sweep's name.   trials: {trial name: its total steps}, in grid order.
        every_s: seconds between blocks when stderr is not a terminal.
        stream: where to draw (default ``sys.stderr``).
    """

    def __init__(self, name: str, trials: dict[str, int], every_s: float = 30.0,
                 stream: IO[str] | None = None):
        self.name, self.every_s = name, every_s
        self._stream = stream          # None: sys.stderr when drawing (Ray pickles callbacks)
        self.rows = {n: TrialRow(n, s) for n, s in trials.items()}
        self.width = max((len(n) for n in trials), default=0)
        self.start = time.monotonic()
        self._drawn_lines = 0
        self._last_draw = 0.0
        self._last_lines: list[str] = []

    # ------------------------------------------------------------------ Tune events
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._update(trial, "RUNNING")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info) -> None:
        members = result.get("members")     # a stacked group reports every member at once
        for row in self._update(trial, "RUNNING"):
            row.step = int(result.get("step", row.step))
            metrics = members.get(row.name, {}) if isinstance(members, dict) else result
            row.metrics.update({k: float(metrics[k]) for k in ("acc_test", "lc_train")
                                if isinstance(metrics.get(k), (int, float))})
        self.draw()

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info) -> None:
        if (getattr(trial, "last_result", None) or {}).get("stopped"):   # a stopped sweep
            self._update(trial, "STOPPED")
        else:
            for row in self._update(trial, "TERMINATED"):
                row.step = row.steps
        self.draw(force=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._update(trial, "ERROR")
        self.draw(force=True)

    def on_trial_restore(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._update(trial, "RESTARTED")

    # ------------------------------------------------------------------ drawing
    def _update(self, trial: Any, state: str) -> list[TrialRow]:
        """The rows of a Ray trial (a stacked group's: one per member), set to ``state``."""
        config = trial.config.get("trial") if hasattr(trial, "config") else None
        names = [m.name for m in getattr(config, "members", [])] or [getattr(config, "name", None)]
        rows = [self.rows[n] for n in names if n in self.rows]
        for row in rows:
            row.state = state
        return rows

    def total(self) -> str:
        """The headline: trials by state, elapsed time and the estimate of the rest."""
        rows = list(self.rows.values())
        done = sum(r.state in ("TERMINATED", "ERROR", "STOPPED") for r in rows)
        running = sum(r.state in ("RUNNING", "RESTARTED") for r in rows)
        elapsed = time.monotonic() - self.start
        steps_done = sum(r.step for r in rows)
        steps_all = sum(r.steps for r in rows)
        # an estimate only once 5% of all steps are done (the first ones include start-up)
        left = (f", ~{_clock(elapsed * (steps_all - steps_done) / steps_done)} left"
                if 0.05 * steps_all <= steps_done < steps_all else "")
        return (f"sweep {self.name}: {done}/{len(rows)} trials done, {running} running, "
                f"{len(rows) - done - running} pending; {_clock(elapsed)} elapsed{left}")

    def lines(self) -> list[str]:
        return [self.total(), *(r.line(self.width) for r in self.rows.values())]

    @property
    def stream(self) -> IO[str]:
        return self._stream or sys.stderr

    @property
    def tty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def draw(self, force: bool = False) -> None:
        """Redraw in place on a terminal (<= 2 per second), else a block every ``every_s``."""
        now = time.monotonic()
        if not force and now - self._last_draw < (0.5 if self.tty else self.every_s):
            return
        self._last_draw = now
        lines = self.lines()
        if lines == self._last_lines:
            return
        self._last_lines = lines
        if self.tty:
            # one terminal row per line: a wrapped line would take two, and moving up by the
            # number of lines would leave stale rows behind on a narrow terminal
            columns = shutil.get_terminal_size(fallback=(80, 24)).columns - 1
            lines = [line if len(line) <= columns else line[:columns - 1] + "…"
                     for line in lines]
        if self.tty and self._drawn_lines:
            self.stream.write(f"\x1b[{self._drawn_lines}F\x1b[J")   # up N lines, clear below
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self._drawn_lines = len(lines)

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        self.draw()                    # Tune's controller loop: keeps a log's blocks coming

    def on_experiment_end(self, trials: list, **info) -> None:
        self.draw(force=True)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
