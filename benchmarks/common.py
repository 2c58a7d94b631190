"""Helpers shared by the benchmarks: timing and the real MNIST test images when available."""

from __future__ import annotations

import gzip
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

MNIST_T10K = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-t10k"


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
