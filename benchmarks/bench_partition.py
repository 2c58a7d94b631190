"""Partition slice speed (issue: a 512x512 slice of the fig. 1 MLP in < 1 s on a GPU, a few
seconds on CPU): wall time of ``partition_slice`` and, side by side, of a bare forward pass over
the same R*R materialised plane inputs (the naive method without patterns or counting), and of
a whole snapshot as the tracker takes it (``GrokTracker.partition_snapshot``: the slice, the
figure as a PNG and the weights, logged into a real SQLite MLflow store).

    python benchmarks/bench_partition.py [--resolution 512]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from grok_mlflow.measures.partition import partition_slice, plane_grid
from grok_mlflow.runner.models import build_model
from grok_mlflow.settings import Settings

from common import best_time, mnist_images, stable_allocator


def main():
    stable_allocator()
    parser = argparse.ArgumentParser()
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    settings = replace(Settings(), dataset="mnist", depth=4, width=200)
    points = mnist_images(3)
    source = "MNIST t10k"
    if points is None:
        points, source = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0)), "random"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, points: {source}")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        torch.manual_seed(0)
        model = build_model(settings, (1, 28, 28), 10).to(device)
        t_slice, t_forward, t_snapshot, regions = slice_times(model, points.to(device),
                                                              args.resolution, args.repeats)
        print(f"MLP 4x200 on MNIST, {args.resolution}x{args.resolution} slice, {device.type:<4}: "
              f"partition_slice {t_slice:6.3f} s ({regions} regions), bare forward over the "
              f"plane {t_forward:6.3f} s, ratio {t_slice / t_forward:4.2f}; the tracker's whole "
              f"snapshot {t_snapshot:6.3f} s, ratio {t_snapshot / t_forward:4.2f}")


def slice_times(model, x, resolution: int, repeats: int) -> tuple[float, float, float, int]:
    """Best wall times of ``partition_slice``, of a bare forward pass over the same R*R plane
    inputs (materialised, in cache-sized chunks on the CPU) and of the tracker's whole snapshot,
    with ``x``'s three inputs as the plane's points; and the slice's region count."""
    device, shape = x.device, x.shape[1:]

    def bare_forward():
        ab, origin, span = plane_grid(x, resolution, 0.5)
        with torch.no_grad():
            for chunk in ab.split(8192 if device.type == "cpu" else resolution ** 2):
                model((origin + chunk @ span).view(-1, *shape))

    def slice_():
        return partition_slice(model, x, resolution=resolution)

    t_slice = best_time(slice_, repeats, device)
    t_forward = best_time(bare_forward, repeats, device)
    t_snapshot = snapshot_time(model, x, resolution, repeats, device)
    return t_slice, t_forward, t_snapshot, slice_().regions


def snapshot_time(model, x, resolution: int, repeats: int, device) -> float:
    """Best wall time of ``GrokTracker.partition_snapshot`` (slice, PNG, weights, logged) with
    ``x``'s three images as the plane's points, into a temporary SQLite store."""
    import os
    import tempfile

    from grok_mlflow.settings import TrackerSettings
    from grok_mlflow.tracker.tracking import GrokTracker, RunOptions

    labels = torch.arange(len(x)) % 10
    settings = TrackerSettings(steps=10, eval_points=2, lc_samples=3, adv_points=0,
                               partition_every=0, partition_resolution=resolution)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        tracker = GrokTracker(model, (x, labels), (x, labels), settings,
                              run=RunOptions(progress=False, log_model=False, experiment="bench_partition"))
        with tracker:
            step = iter(range(1, 10**6))
            return best_time(lambda: tracker.partition_snapshot(next(step)), repeats, device)


if __name__ == "__main__":
    main()
