"""What LC at the decision boundary costs a measured step: ``measure_step`` with and without
``lc_boundary``, side by side in one process (best of 3 after a warm-up).

    python benchmarks/bench_boundary.py              # the fig. 1 MLP on real MNIST test images
    python benchmarks/bench_boundary.py --device cuda

The fig. 1 MLP (784-200-200-200-10, trained 300 steps on 1,000 images so that its classes
differ across the test points), LC at r = 0.005 and 0.05 around 1,000 points per set, accuracy
on 1,000 images per split, no PGD: the measured step as the fig. 1 sweep runs it. Prints both
times, the ratio (aim: <= 1.35) and how many of the 500 pairs crossed the boundary.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
from torch import nn

from grok_mlflow.settings import TrackerSettings
from grok_mlflow.tracker.probes import draw_probes
from grok_mlflow.tracker.step import measure_step

from common import best_time, mnist_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--points", type=int, default=1000)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    images = mnist_images(4000)
    if images is None:
        raise SystemExit("needs the real MNIST test set (../shared/data/mnist-t10k)")
    labels = torch.randint(0, 10, (4000,))        # only the classes' spread across points matters
    x = images.to(device)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 200), nn.ReLU(), nn.Linear(200, 200),
                        nn.ReLU(), nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, 10)).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    for _ in range(300):
        idx = torch.randint(0, 2000, (200,))
        loss = nn.functional.cross_entropy(net(x[idx]), labels[idx].to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    settings = TrackerSettings(lc_samples=args.points, lc_radius=(0.005, 0.05), eval_size=1000,
                               adv_points=0)
    probes = draw_probes((x[:2000], labels[:2000].to(device)), (x[2000:], labels[2000:].to(device)),
                         settings, device)
    without = dataclasses.replace(settings, lc_boundary=False)
    pairs = measure_step(net, probes, settings)["boundary/pairs"]
    t_with = best_time(lambda: measure_step(net, probes, settings), device=device)
    t_without = best_time(lambda: measure_step(net, probes, without), device=device)
    print(f"device {device}, {args.points} points per set, {int(pairs)} of {args.points // 2} "
          f"pairs crossed: measured step {t_without:.3f} s without the boundary set, "
          f"{t_with:.3f} s with it: {t_with / t_without:.2f}x")


if __name__ == "__main__":
    main()
