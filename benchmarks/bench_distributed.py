"""Measurement under torch.distributed: seconds per evaluation (accuracy, loss, LC on the three
probe sets; no PGD) with the points split over N gloo processes, against one process measuring
everything, side by side in one torchrun.

    python -m torch.distributed.run --nproc_per_node 2 benchmarks/bench_distributed.py
"""

from __future__ import annotations

import os
import tempfile
import time

import torch
import torch.distributed as dist
from torch import nn

from grok_mlflow.settings import TrackerSettings
from grok_mlflow.tracker.distributed import Shards
from grok_mlflow.tracker.probes import draw_probes
from grok_mlflow.tracker.step import measure_step


def main() -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    torch.manual_seed(0)
    x, y = torch.rand(2000, 1, 28, 28), torch.randint(0, 10, (2000,))
    net = nn.Sequential(nn.Flatten(), *[m for _ in range(3) for m in (nn.LazyLinear(200),
                                                                       nn.ReLU())],
                        nn.Linear(200, 10))
    net(x[:1])
    settings = TrackerSettings(lc_samples=500, lc_directions=25, eval_size=1000)
    probes = draw_probes((x, y), (x, y), settings, torch.device("cpu"))
    split, alone = [], []
    for _ in range(3):
        dist.barrier()
        start = time.perf_counter()
        measure_step(net, probes, settings, shards=Shards(rank, world))
        split.append(time.perf_counter() - start)
        dist.barrier()
        if rank == 0:
            start = time.perf_counter()
            measure_step(net, probes, settings)
            alone.append(time.perf_counter() - start)
    if rank == 0:
        print(f"{world} processes x {torch.get_num_threads()} threads: one evaluation (accuracy "
              f"and loss on 2 x 1,000 images, LC on 3 x 500 points, MLP 3x200 on 28x28) "
              f"{min(split):.3f} s split over the ranks, {min(alone):.3f} s in one process: "
              f"{min(alone) / min(split):.2f}x")
    dist.destroy_process_group()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
