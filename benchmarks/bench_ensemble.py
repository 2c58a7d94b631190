"""Issue #19: K runs trained as one stacked model / the same K runs one after another.

Both sides are the product's own loops, untracked (``track=False``: training alone, as a grid
of small runs spends its steps): sequentially, K calls of ``train``; stacked, one call of
``train_stacked`` (``grok_mlflow.runner.stacking``: every parameter on a leading member axis, one
``vmap``-ed forward/backward, one ``StackedAdamW`` step). The K members differ as a sweep's
trials do: seed (initialisation, data split, batch order) and weight decay. Each side's time is
its whole call, data loading and model building included (the same work per member on both).

It prints total training steps per second of each and the ratio, then (float64, CPU) the
largest difference between a stacked member's final weights and the same run trained alone.

Usage::

    python benchmarks/bench_ensemble.py [--steps 500] [--members 4,8,16] [--widths 50,200]
    python benchmarks/bench_ensemble.py --device cuda --members 8,16,32,64 \\
        --preset projects/fig1_mnist_mlp.yaml --data-root DIR      # GPU, fig. 1 MLP on MNIST
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from grok_mlflow.runner.training import train, train_stacked
from grok_mlflow.settings import Settings, load_preset

from common import stable_allocator


def members(base: Settings, k: int) -> list[Settings]:
    """K members as a weight decay x seed grid gives them."""
    return [dataclasses.replace(base, seed=i, weight_decay=(0.0, 0.01)[i % 2]) for i in range(k)]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def main() -> int:
    stable_allocator()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--members", default="4,8,16")
    parser.add_argument("--widths", default="50,200")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default="", help="base settings (default: the digits MLP)")
    parser.add_argument("--data-root", default="", help="data_root for the preset's dataset")
    args = parser.parse_args()
    base = load_preset(args.preset) if args.preset else Settings()
    base = dataclasses.replace(base, steps=args.steps, device=args.device,
                               **({"data_root": args.data_root, "download": False}
                                  if args.data_root else {}))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}, "
          f"{base.dataset} {base.model} depth {base.depth}, batch {base.batch_size}, "
          f"{args.steps} steps per member")
    warm = members(dataclasses.replace(base, steps=20, width=16), 2)   # one-time costs
    train_stacked(warm, progress=False, track=False)
    train(warm[0], progress=False, track=False)
    print("| width | K | sequential steps/s | stacked steps/s | stacked / sequential |")
    print("|---|---|---|---|---|")
    for width in (int(w) for w in args.widths.split(",")):
        for k in (int(m) for m in args.members.split(",")):
            grid = members(dataclasses.replace(base, width=width), k)
            sequential = timed(lambda grid=grid: [train(s, progress=False, track=False)
                                                  for s in grid],
                               args.device)
            stacked = timed(lambda grid=grid: train_stacked(grid, progress=False, track=False),
                            args.device)
            total = k * args.steps
            print(f"| {width} | {k} | {total / sequential:.0f} | {total / stacked:.0f} | "
                  f"{sequential / stacked:.2f} |", flush=True)
    if args.device == "cpu":
        grid = members(dataclasses.replace(base, width=50, steps=50, dtype="float64"), 3)
        together = train_stacked(grid, progress=False, track=False)
        diff = max((a - b).abs().max().item()
                   for s, member in zip(grid, together)
                   for a, b in zip(member.model.state_dict().values(),
                                   train(s, progress=False, track=False).model.state_dict()
                                   .values()))
        print(f"\nfloat64, 3 members x 50 steps: largest |stacked - alone| weight difference "
              f"{diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
