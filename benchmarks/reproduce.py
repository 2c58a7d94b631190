"""Run a preset to the end and print what it showed next to what the paper says.

    python benchmarks/reproduce.py projects/fig1_mnist_mlp.yaml                # real MNIST split
    python benchmarks/reproduce.py projects/fig1_mnist_mlp.yaml --data-root DIR
    python benchmarks/reproduce.py projects/digits_region_migration.yaml --device cpu

Each preset is trained by the ordinary ``train`` (tracked into ``$MLFLOW_TRACKING_URI``, default
``./mlflow.db``), then its report (``grok_mlflow.findings.report``: the same text as the run's MLflow
description) is printed with a column of the paper's caption-level claims for that figure.

MNIST without ``--data-root``: no training files can be downloaded here, so the real MNIST test
set (``--mnist-t10k``, default ``../shared/data/mnist-t10k``: the official 10,000 test images,
IDX) is split with a seeded permutation (seed 0) into 5,000 "training" and 5,000 "test" images,
written in torchvision's layout (``MNIST/raw/*-ubyte``) into a temporary directory that is
deleted afterwards (the images are never written into the repository). The preset then draws
its ``train_size`` (1,000) training samples from the 5,000 as usual.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import MNIST_T10K

# What the paper says of each figure, phase by phase (its captions and sec. 3); "" = silent.
# "delayed robustness" stands for every eps.
PAPER = {
    "fig1_mnist_mlp": {
        "first descent": "yes (fig. 1 bottom-left: LC falls first)",
        "ascent": "yes, peak before ~1e4",
        "second descent": "yes, the final descent starts at ~1e4 steps",
        "interpolation": "early (not stated)",
        "delayed generalization": "no: fig. 3's caption says fig. 1 has no delayed "
                                  "generalization",
        "delayed robustness": "yes, after ~1e4 steps",
    },
    "fig3_mlp_init8": {
        "first descent": "",
        "ascent": "",
        "second descent": "LC around points far from the boundary falls late (fig. 17)",
        "interpolation": "early",
        "delayed generalization": "yes: grokking on the test set",
        "delayed robustness": "yes, and periodically increasing",
    },
    "fig25_gelu_mlp": {
        "first descent": "yes (same dynamics as ReLU)",
        "ascent": "yes",
        "second descent": "yes",
        "interpolation": "early (not stated)",
        "delayed generalization": "",
        "delayed robustness": "",
    },
}


def write_mnist_split(source: Path, root: Path, n_train: int = 5000, seed: int = 0) -> Path:
    """The 10,000 MNIST test images, split by a seeded permutation into ``n_train`` training
    and 10,000 - ``n_train`` test images, as torchvision's raw IDX files under ``root``."""
    images = np.frombuffer(gzip.open(source / "t10k-images-idx3-ubyte.gz").read(), np.uint8,
                           offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer(gzip.open(source / "t10k-labels-idx1-ubyte.gz").read(), np.uint8,
                           offset=8)
    order = np.random.default_rng(seed).permutation(len(labels))
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, index in (("train", order[:n_train]), ("t10k", order[n_train:])):
        (raw / f"{split}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 2051, len(index), 28, 28) + images[index].tobytes())
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 2049, len(index)) + labels[index].tobytes())
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--data-root", default=None, help="datasets in torchvision's layout")
    parser.add_argument("--mnist-t10k", default=str(MNIST_T10K),
                        help="folder of t10k-*-ubyte.gz, split when --data-root is not given")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=None, help="shorten every run")
    parser.add_argument("--dtype", default=None, help="float32 or float64 (default: preset's)")
    parser.add_argument("--out", default=None, help="also write the reports to this file")
    args = parser.parse_args()

    from grok_mlflow.runner.build import resolve_device
    from grok_mlflow.runner.recorded import run_report
    from grok_mlflow.runner.training import train
    from grok_mlflow.settings import load_preset

    reports = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            settings = load_preset(preset)
            changes = {"device": args.device, "download": False}
            if args.steps:
                changes["steps"] = args.steps
            if args.dtype:
                changes["dtype"] = args.dtype
            if args.data_root:
                changes["data_root"] = args.data_root
            elif settings.dataset == "mnist":
                if not (Path(tmp) / "MNIST").exists():
                    write_mnist_split(Path(args.mnist_t10k), Path(tmp))
                changes["data_root"] = tmp
            settings = dataclasses.replace(settings, **changes)
            start = time.perf_counter()
            device = resolve_device(settings.device)
            result = train(settings, progress=False)
            seconds = time.perf_counter() - start
            text = run_report(result.run_id, expected=PAPER.get(Path(preset).stem))
            block = (f"## {preset}\n\n`python benchmarks/reproduce.py {preset}"
                     f"{' --data-root ' + args.data_root if args.data_root else ''}`: "
                     f"{seconds:.0f} s on {device}, {settings.steps} steps, "
                     f"run {result.run_id}\n\n{text}")
            print(block, flush=True)
            reports.append(block)
    if args.out:
        Path(args.out).write_text("\n".join(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
