"""Helpers shared by the benchmarks: timing, the real MNIST test images when available, and a
sweep's finished trials exported from the store into the repository."""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from mlflow import MlflowClient

from grok_mlflow.findings.history import history_csv, read_history_csv
from grok_mlflow.store.reading import run_artifact_text

MNIST_T10K = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-t10k"
# the phase curves a trial's exported CSV keeps: accuracy, loss, LC per set and radius (with its
# interval), PGD per eps, the decision boundary's measures
KEPT_CURVES = re.compile(r"^(acc/(train|test)|loss/(train|test)|adv/acc/eps_[0-9.e-]+|boundary/\w+"
                         r"|lc_r[0-9.e-]+/(train|test|random|boundary)(/ci_(low|high))?)$")


def export_trials(experiment: str, folder: Path) -> int:
    """Every finished trial (a child run with a ``grok_mlflow.trial`` tag) of the MLflow
    ``experiment`` as ``folder/<trial>.csv``, its history's ``KEPT_CURVES``, and its settings
    (the run's params) as ``folder/<trial>.json``: batches run in
    different sessions, each perhaps with its own store, add up in the repository. A trial
    finished in more than one run keeps the latest, and is named."""
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        print(f"no experiment {experiment} in this store", file=sys.stderr)
        return 1
    folder.mkdir(parents=True, exist_ok=True)
    runs = client.search_runs([found.experiment_id], "attributes.status = 'FINISHED'",
                              max_results=10_000, order_by=["attributes.start_time ASC"])
    written: dict[str, int] = {}
    for run in runs:
        trial = run.data.tags.get("grok_mlflow.trial")
        if not trial or "mlflow.parentRunId" not in run.data.tags:
            continue
        history = read_history_csv(run_artifact_text(run.info.run_id, "history.csv"))
        kept = {s: {k: v for k, v in row.items() if KEPT_CURVES.match(k)}
                for s, row in history.items()}
        (folder / f"{trial}.csv").write_text(history_csv(kept))
        (folder / f"{trial}.json").write_text(json.dumps(dict(sorted(run.data.params.items())),
                                                          indent=1) + "\n")
        written[trial] = written.get(trial, 0) + 1
    twice = sorted(t for t, n in written.items() if n > 1)
    print(f"{len(written)} trials written to {folder}"
          + (f"; finished more than once, the latest kept: {', '.join(twice)}" if twice else ""))
    return 0


def best_time(fn: Callable[[], object], repeats: int = 3, device: torch.device | None = None) -> float:
    """Best wall time of ``repeats`` calls (after one warm-up), synchronising CUDA."""
    def sync():
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def mnist_images(n: int) -> torch.Tensor | None:
    """(n, 1, 28, 28) real MNIST test images in [0, 1], or None when the files are not here."""
    path = MNIST_T10K / "t10k-images-idx3-ubyte.gz"
    if not path.exists():
        return None
    raw = np.frombuffer(gzip.open(path).read(), dtype=np.uint8, offset=16)
    images = raw.reshape(-1, 1, 28, 28)[:n].astype(np.float32) / 255.0
    return torch.from_numpy(images)


def stable_allocator() -> None:
    """Re-run this script with glibc's malloc told to keep freed memory (once, at start-up).

    By default glibc hands large freed blocks back to the OS, and every new chunk page-faults
    them in again: on this 2-core VM that made the same forward pass vary up to 3x between
    repeats (high sys time). Both sides of every ratio run under the same setting.
    """
    wanted = {"MALLOC_MMAP_THRESHOLD_": "1000000000", "MALLOC_TRIM_THRESHOLD_": "1000000000"}
    if any(os.environ.get(k) != v for k, v in wanted.items()):
        os.environ.update(wanted)
        os.execv(sys.executable, [sys.executable, *sys.argv])
