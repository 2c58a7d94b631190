"""A small CNN on 3x32x32 images, tracked / untracked, side by side in one process.

The user's own loop (Adam, batch 128, 5,000 seeded random images in [0, 1] labelled by a fixed
random teacher CNN: the timing does not depend on what the images show), 2,000 steps, with
``GrokTracker`` at its default settings (60 log-spaced measurements: accuracy and loss on both
splits, LC around 500 train/test/random points, PGD on 1,000 test points at 20 of them, a
partition snapshot at every 10th and the last, its resolution sized to the model) and without.
Then what one measurement of each kind costs on this model, and how often the schedule asks for
it, so the overhead is attributed.

    python benchmarks/bench_image_model.py [--steps 2000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
from torch import nn

from common import stable_allocator


def cnn() -> nn.Module:
    """~1.5k parameters: three 3x3 convolutions of 8 channels, ReLU, one pooling, a read-out."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def data(n: int = 5000):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 32, 32, generator=gen)
    torch.manual_seed(1)
    teacher = cnn()
    with torch.no_grad():
        y = teacher(x).argmax(1)
    return (x[:n // 2], y[:n // 2]), (x[n // 2:], y[n // 2:])


def loop(steps: int, tracked: bool, settings=None, device: str = "cpu"):
    from grok_mlflow import GrokTracker, RunOptions, TrackerSettings

    (x, y), (xt, yt) = data()
    x, y, test = x.to(device), y.to(device), (xt.to(device), yt.to(device))
    torch.manual_seed(0)
    model = cnn().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    settings = settings or TrackerSettings(steps=steps)
    tracker = (GrokTracker(model, train=(x, y), test=test, settings=settings,
                           run=RunOptions(progress=False, log_model=False)) if tracked else None)
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    if tracker is not None:
        tracker.start()
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(x), (128,), generator=gen).to(device)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if tracker is not None:
            tracker.step(step, loss=loss)
    if tracker is not None:
        tracker.finish()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, tracker


def one_of_each(tracker) -> dict[str, float]:
    """Seconds of one measurement of each kind on the tracked model, as the tracker takes it."""
    from grok_mlflow.tracker.step import measure_step, partition_snapshot

    s, p, net = tracker.settings, tracker.probes, tracker.net
    out = {}
    for name, kwargs in (("accuracy + loss + LC", {}), ("... + PGD", {"adversarial": True})):
        start = time.perf_counter()
        measure_step(net, p, s, task=tracker.measured_task, **kwargs)
        out[name] = time.perf_counter() - start
    start = time.perf_counter()
    partition_snapshot(net, p, s, tracker.task, "bench")
    out["partition snapshot"] = time.perf_counter() - start
    return out


def main():
    stable_allocator()
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--lc-samples", type=int, default=None, help="instead of the default")
    parser.add_argument("--adv-samples", type=int, default=None, help="instead of the default")
    args = parser.parse_args()
    from grok_mlflow import TrackerSettings

    changes = {k: v for k, v in (("lc_samples", args.lc_samples),
                                 ("adv_samples", args.adv_samples)) if v is not None}
    settings = TrackerSettings(steps=args.steps, **changes)
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        loop(20, True, device=args.device)                     # warm-up: imports, the store
        untracked, _ = loop(args.steps, False, device=args.device)
        tracked, tracker = loop(args.steps, True, settings, device=args.device)
        each = one_of_each(tracker)
    sch = tracker.schedule
    n_eval, n_adv, n_part = len(sch.eval_steps), len(sch.adv_steps), len(sch.partition_steps)
    params = sum(q.numel() for q in tracker.model.parameters())
    print(f"CNN ({params:,} parameters) on 3x32x32, {args.steps} steps, batch 128, "
          f"{args.device} ({torch.get_num_threads()} threads): "
          f"untracked {untracked:.1f} s, tracked {tracked:.1f} s at {changes or 'the default settings'}, "
          f"tracked/untracked = {tracked / untracked:.2f}")
    print("logged: " + ", ".join(f"{k} {v:.1f}" for k, v in tracker.costs.metrics().items()))
    print(f"partition resolution chosen: {tracker.settings.partition_resolution}; "
          f"lc_samples {tracker.settings.lc_samples}, adv_samples {tracker.settings.adv_samples}")
    lc = each["accuracy + loss + LC"]
    pgd = each["... + PGD"] - lc
    print(f"one measurement: accuracy + loss + LC {lc:.2f} s (x {n_eval} = {lc * n_eval:.0f} s), "
          f"PGD {pgd:.2f} s (x {n_adv} = {pgd * n_adv:.0f} s), partition snapshot "
          f"{each['partition snapshot']:.2f} s (x {n_part} = "
          f"{each['partition snapshot'] * n_part:.0f} s)")


if __name__ == "__main__":
    main()
