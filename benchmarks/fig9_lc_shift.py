"""Paper fig. 9: LC of a neighbourhood shifted from the origin to [10]^d, for several P and r.

The paper's network: a width-100, depth-18 leaky-ReLU MLP on 784-d inputs (here at PyTorch's
default initialisation, seed 0). Points x_t = t [10]^d for t in [0, 1]; left, P in
{2, 5, 10, 20, 40} at r = 5; right, r in {0.5, 1, 2, 5, 10} at P = 20. The paper's reading: LC
falls as the neighbourhood moves away from the origin (the hyperplanes of a randomly initialised
network concentrate near it), grows with P but saturates, and grows with r while its variation
along the shift shrinks (a larger neighbourhood is less local).

Usage::

    python benchmarks/fig9_lc_shift.py [--out docs/fig9_lc_shift.png] [--shifts 41]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from grok_mlflow.measures.complexity import local_complexity

REPO = Path(__file__).resolve().parents[1]


def network(depth: int = 18, width: int = 100, dim: int = 784, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers, fan_in = [], dim
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), nn.LeakyReLU(0.01)]
        fan_in = width
    return nn.Sequential(*layers, nn.Linear(fan_in, 10))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "fig9_lc_shift.png"))
    parser.add_argument("--shifts", type=int, default=41, help="points along the segment")
    args = parser.parse_args()
    net = network()
    t = torch.linspace(0, 1, args.shifts)
    x = t[:, None] * torch.full((1, 784), 10.0)                      # (K, 784) on the segment
    start = time.perf_counter()
    by_p = {p: local_complexity(net, x, radius=5.0, n_directions=p, seed=0).total.double()
            for p in (2, 5, 10, 20, 40)}
    by_r = local_complexity(net, x, radius=[0.5, 1.0, 2.0, 5.0, 10.0], n_directions=20, seed=0)
    by_r = {r: lc.total.double() for r, lc in by_r.items()}
    elapsed = time.perf_counter() - start

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=False)
    for p, lc in by_p.items():
        axes[0].plot(t * 10, lc, label=f"P={p}")
    for r, lc in by_r.items():
        axes[1].plot(t * 10, lc, label=f"r={r:g}")
    for ax, title in zip(axes, ("r = 5, varying P", "P = 20, varying r")):
        ax.set_xlabel("shift c (point c·[1]^d)")
        ax.set_ylabel("LC")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.suptitle("LC along [0]^d -> [10]^d, leaky-ReLU MLP 18x100, 784-d (paper fig. 9)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"{len(x)} shifts, {elapsed:.1f} s of LC; figure {args.out}")
    print("| | LC at the origin | LC at [10]^d | max along the segment |")
    print("|---|---|---|---|")
    for name, lc in [*((f"P={p}, r=5", v) for p, v in by_p.items()),
                     *((f"P=20, r={r:g}", v) for r, v in by_r.items())]:
        print(f"| {name} | {lc[0]:.0f} | {lc[-1]:.0f} | {lc.max():.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
