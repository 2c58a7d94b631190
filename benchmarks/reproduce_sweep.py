"""Run paper-ablation sweeps on real MNIST and print their verdicts on the paper's claims.

    python benchmarks/reproduce_sweep.py projects/sweeps/mnist_cpu_width.yaml
    python benchmarks/reproduce_sweep.py projects/sweeps/mnist_cpu_*.yaml --out verdicts.md
    python benchmarks/reproduce_sweep.py projects/sweeps/width.yaml --data-root DIR   # GPU scale
    python benchmarks/reproduce_sweep.py projects/sweeps/mnist_cpu_width.yaml --stop settled
    python benchmarks/reproduce_sweep.py projects/sweeps/fig1_arms.yaml --only dtype=float64 \
        --only loss=mse --data-root DIR [--resume]          # one batch; continue it

Each spec runs as ``grok-mlflow sweep`` runs it (``sweep.run_sweep``: Ray Tune, one MLflow parent
run with the claims' verdicts, one child run per trial), tracked into ``$MLFLOW_TRACKING_URI``
(default ``./mlflow.db``). Without ``--data-root`` the real MNIST test set (``--mnist-t10k``) is
split as ``reproduce.py`` splits it (seed 0: 5,000 "training", 5,000 "test" images) into a
temporary directory, deleted afterwards. Prints, per spec, the wall time and the parent's
``claims.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

from common import MNIST_T10K
from reproduce import write_mnist_split


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+")
    parser.add_argument("--data-root", default=None, help="datasets in torchvision's layout")
    parser.add_argument("--mnist-t10k", default=str(MNIST_T10K),
                        help="folder of t10k-*-ubyte.gz, split when --data-root is not given")
    parser.add_argument("--out", default=None, help="also write the verdicts to this file")
    parser.add_argument("--steps", type=int, default=None, help="shorten every trial (a check)")
    parser.add_argument("--stop", choices=["settled"], default=None,
                        help="as the spec's `stop: settled`: each trial trains until its phases "
                             "settle, the spec's steps its cap")
    parser.add_argument("--only", action="append", default=[], metavar="KEY=V1,V2",
                        help="a batch of the grid, as `grok-mlflow sweep --only`")
    parser.add_argument("--resume", action="store_true",
                        help="continue the latest unfinished sweep (or batch) of each spec "
                             "(with --data-root: the same root as the first run)")
    args = parser.parse_args()

    from grok_mlflow.store.reading import run_artifact_text
    from grok_mlflow.sweeps.sweep import load_spec, run_sweep, select_trials

    blocks = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_root
        if root is None:
            root = str(write_mnist_split(Path(args.mnist_t10k), Path(tmp)))
        for path in args.specs:
            spec = select_trials(load_spec(path), args.only)
            changes = {"data_root": root, "download": False}
            if args.steps:
                changes["steps"] = args.steps
            if args.stop:
                changes["until"] = args.stop
            spec = dataclasses.replace(spec, base=dataclasses.replace(spec.base, **changes))
            start = time.perf_counter()
            parent = run_sweep(spec, resume="latest" if args.resume else None)
            seconds = time.perf_counter() - start
            try:
                claims = run_artifact_text(parent, "claims.md")
            except Exception:  # noqa: BLE001 - a spec without claims
                claims = "(no claims)\n"
            block = (f"## {path}\n\n`python benchmarks/reproduce_sweep.py {path}`: "
                     f"{seconds:.0f} s, {len(spec.trials())} trials, parent run {parent}\n\n"
                     f"{claims}")
            print(block, flush=True)
            blocks.append(block)
    if args.out:
        Path(args.out).write_text("\n".join(blocks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
