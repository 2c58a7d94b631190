"""Tracked training / untracked training, side by side in one process (issue: tracker speed).

Runs the default digits run (or ``--steps``) twice through the same ``train`` loop: once with
``GrokTracker`` (LC on train/test/random, accuracy, PGD, MLflow writes to a temporary SQLite
store, figures, model) and once with ``track=False``. Also times the tracker's bookkeeping on a
step where nothing is due.

    python benchmarks/bench_tracking.py [--steps 20000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace

import torch

from grok_mlflow.runner.training import train
from grok_mlflow.settings import Settings

from common import stable_allocator


def main():
    stable_allocator()
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=Settings().steps)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    settings = replace(Settings(), steps=args.steps, device=args.device)
    untracked, tracked, result = tracked_and_untracked(settings)
    from grok_mlflow.tracker.schedule import MeasureSchedule
    from grok_mlflow.tracker.tracking import GrokTracker

    tracker = GrokTracker.__new__(GrokTracker)   # only the per-step bookkeeping, no run
    tracker.schedule, tracker._bar, tracker.last_step = MeasureSchedule((0,)), None, None
    tracker._ended = False
    n = 100_000
    start = time.perf_counter()
    for step in range(1, n + 1):
        tracker.step(step)
    per_step = (time.perf_counter() - start) / n
    device = "cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu"
    print(f"digits default run, {settings.steps} steps on {device}: untracked {untracked:6.1f} s, "
          f"tracked {tracked:6.1f} s, tracked/untracked = {tracked / untracked:4.2f}; "
          f"bookkeeping on a step with nothing due: {per_step * 1e6:.2f} us "
          f"({per_step / (untracked / settings.steps) * 100:.2f}% of a training step); "
          f"final acc/test {result.metrics.get('acc/test', float('nan')):.3f}")


def tracked_and_untracked(settings: Settings):
    """Wall times of ``settings``' run untracked and tracked (in that order, in one process,
    into a temporary SQLite store, after a short tracked warm-up), and the tracked result."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        train(replace(settings, steps=50), progress=False)       # warm-up (imports, DB creation)
        start = time.perf_counter()
        train(settings, progress=False, track=False)
        untracked = time.perf_counter() - start
        start = time.perf_counter()
        result = train(settings, progress=False)
        tracked = time.perf_counter() - start
    return untracked, tracked, result


if __name__ == "__main__":
    main()
