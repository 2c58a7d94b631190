"""What sharpening a phase step costs on the CPU ablations' runs, measured side by side.

    python benchmarks/bench_sharpen.py                  # the real MNIST split, 2,000 steps
    python benchmarks/bench_sharpen.py --steps 1000

The run is one trial of ``projects/sweeps/mnist_cpu_depth.yaml`` (the fig. 1 MLP on the seeded
MNIST split; accuracy on 1,000 images per split, LC at r = 0.005 and 0.05 around 200 points per
set, PGD on 200 test images at 10 steps), shortened. Three runs in one process, interleaved:
untracked (training alone: the cost of a step), and tracked with ``--few`` and ``--many``
measured steps (the same PGD steps): the difference over the extra steps is the cost of one
measured step. From those two numbers, the two ways to sharpen a phase step whose bracket (the
measured steps around it, e.g. 8,830-10,515 at 60 log-spaced points over 30,000 steps) is too
wide:

- denser measurement over the whole run: doubling ``eval_points`` (60 -> 120) costs 60 more
  measured steps per trial and halves every bracket (log-spaced);
- a replay of one bracket: resume from the checkpoint before it (exact on CPU) and train through
  it measuring K times: the bracket's steps x the step cost + K measured steps.
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
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--few", type=int, default=10, help="measured steps, fewer")
    parser.add_argument("--many", type=int, default=40, help="measured steps, more")
    parser.add_argument("--mnist-t10k", default=str(MNIST_T10K))
    args = parser.parse_args()

    import mlflow

    from grok_mlflow.runner.training import train
    from grok_mlflow.settings import Settings
    from grok_mlflow.sweeps.spec import load_spec

    with tempfile.TemporaryDirectory() as tmp:
        write_mnist_split(Path(args.mnist_t10k), Path(tmp))
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        spec = load_spec(str(Path(__file__).resolve().parents[1] / "projects" / "sweeps" /
                             "mnist_cpu_depth.yaml"))
        base: Settings = dataclasses.replace(spec.base, steps=args.steps, data_root=tmp,
                                             download=False, device="cpu", depth=3)
        runs = {"untracked": (base, False),
                f"{args.few} measured": (dataclasses.replace(base, eval_points=args.few), True),
                f"{args.many} measured": (dataclasses.replace(base, eval_points=args.many), True)}
        best = {name: float("inf") for name in runs}
        for _ in range(2):                              # interleaved, best of two
            for name, (settings, track) in runs.items():
                start = time.perf_counter()
                train(settings, progress=False, track=track)
                best[name] = min(best[name], time.perf_counter() - start)
    step = best["untracked"] / args.steps
    measured = (best[f"{args.many} measured"] - best[f"{args.few} measured"]) / (
        args.many - args.few)
    print(f"{args.steps} steps of the fig. 1 MLP (depth 3, width 200) on the MNIST split, 2 "
          "cores, best of two:")
    for name, seconds in best.items():
        print(f"  {name:<14} {seconds:7.1f} s")
    print(f"a training step: {step * 1e3:.1f} ms; a measured step: {measured:.2f} s "
          f"({measured / step:,.0f} training steps)")
    bracket, k = 10_515 - 8_830, 20
    print(f"denser everywhere (60 -> 120 measured steps over 30,000): +{60 * measured:.0f} s "
          f"per trial, every bracket halved")
    print(f"a replay of one bracket ({bracket:,} steps, {k} measurements inside it): "
          f"{bracket * step + k * measured:.0f} s per trial and phase")
    return 0


if __name__ == "__main__":
    sys.exit(main())
