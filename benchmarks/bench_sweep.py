"""Issue #29's three ratios, side by side in one run on this machine:

1. a whole sweep stacked / the same sweep with ``ensemble: off`` (default
   ``projects/sweeps/digits_weight_decay.yaml``: 16 trials that stack into one group), each run
   as a user runs it (``grok-mlflow sweep SPEC`` in a subprocess: Ray Tune, MLflow parent and
   child runs in a fresh SQLite store), alternating, ``--repeats`` times; goal off / stacked >= 2.5;
2. a partition snapshot as the tracker takes it (slice, PNG, weights, logged) / a bare forward
   pass over the plane's pixels, on the sweep's network (the default digits MLP 4x200, 512x512);
   goal <= 1.5;
3. the default digits run tracked / untracked (``bench_tracking.tracked_and_untracked``),
   ``--repeats`` times; goal <= 1.15;
4. what bounds 1 and 3 on a CPU: a member's LC and PGD against the bare passes they make.

Medians over the repeats. Run it alone: any other job on the cores changes every number.

    python benchmarks/bench_sweep.py [--repeats 3] [--spec projects/sweeps/digits_weight_decay.yaml]
        [--only tracking,sweep,measures,snapshot]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml

from common import stable_allocator

ROOT = Path(__file__).resolve().parents[1]


def sweep_time(spec_path: Path, ensemble: str) -> float:
    """Wall time of ``grok-mlflow sweep`` on ``spec_path`` with ``ensemble`` set, in a fresh
    SQLite store and Ray results directory. The sweep's processes get the environment a user's
    would: glibc's default malloc (the benchmark's own setting is dropped)."""
    spec = yaml.safe_load(spec_path.read_text())
    spec["ensemble"] = ensemble
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / spec_path.name
        path.write_text(yaml.safe_dump(spec))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        env.update(MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db",
                   PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "grok_mlflow", "sweep", str(path),
                        "--storage-path", f"{tmp}/ray", "--progress-every", "600"],
                       env=env, check=True, stdout=subprocess.DEVNULL, cwd=tmp)
        return time.perf_counter() - start


def sweeps(spec_path: Path, repeats: int) -> float:
    ratios = []
    for i in range(repeats):
        stacked = sweep_time(spec_path, "auto")
        off = sweep_time(spec_path, "off")
        ratios.append(off / stacked)
        print(f"  repeat {i + 1}: stacked {stacked:6.1f} s, ensemble off {off:6.1f} s, "
              f"off / stacked {off / stacked:4.2f}", flush=True)
    return statistics.median(ratios)


def default_model():
    """The default digits data and MLP 4x200 (the sweep's network), seeded."""
    from grok_mlflow.runner.build import data_and_model
    from grok_mlflow.settings import Settings

    torch.manual_seed(0)
    return data_and_model(Settings(), torch.device("cpu"))


def snapshot(repeats: int) -> float:
    from bench_partition import slice_times

    data, model = default_model()
    t_slice, t_forward, t_snapshot, regions = slice_times(model, data.x_train[:3], 512, repeats)
    print(f"  slice {t_slice:5.3f} s ({regions} regions), whole snapshot {t_snapshot:5.3f} s, "
          f"bare forward over the plane {t_forward:5.3f} s; slice / forward "
          f"{t_slice / t_forward:4.2f}", flush=True)
    return t_snapshot / t_forward


def measures(repeats: int) -> tuple[float, float]:
    """Where a member's measurement stands against the arithmetic it does (the default digits
    MLP, as in the sweep): LC on 300 points / a bare forward over their 2P vertices, and PGD
    (3 budgets x 10 steps on the test images) / the 30 forward-backward passes it makes."""
    from bench_complexity import bare_forward

    from grok_mlflow.measures.complexity import local_complexity
    from grok_mlflow.measures.robustness import robust_accuracy

    from common import best_time

    data, model = default_model()
    model.eval()
    points, p = data.x_train[:300], 25
    vertices = points.repeat_interleave(2 * p, 0)                       # (N*2P, ...) same work
    x, y = data.x_test[:1000], data.y_test[:1000]

    def lc():
        local_complexity(model, points, radius=0.05, n_directions=p, seed=0)

    def forward():
        bare_forward(model, vertices, len(vertices))                    # one chunk

    def pgd():
        robust_accuracy(model, x, y, eps=[0.05, 0.1, 0.2], steps=10, seed=0)

    def passes():
        for _ in range(30):
            xs = x.clone().requires_grad_(True)
            torch.autograd.grad(torch.nn.functional.cross_entropy(model(xs), y), xs)

    t_lc, t_fw = best_time(lc, repeats), best_time(forward, repeats)
    t_pgd, t_passes = best_time(pgd, repeats), best_time(passes, repeats)
    print(f"  LC {t_lc * 1e3:5.1f} ms, bare forward over its {len(vertices)} vertices "
          f"{t_fw * 1e3:5.1f} ms; PGD {t_pgd * 1e3:5.1f} ms, its 30 forward-backward passes "
          f"{t_passes * 1e3:5.1f} ms", flush=True)
    return t_lc / t_fw, t_pgd / t_passes


def tracking(repeats: int) -> float:
    from bench_tracking import tracked_and_untracked

    from grok_mlflow.settings import Settings

    ratios = []
    for i in range(repeats):
        untracked, tracked, _ = tracked_and_untracked(replace(Settings(), device="cpu"))
        ratios.append(tracked / untracked)
        print(f"  repeat {i + 1}: untracked {untracked:5.1f} s, tracked {tracked:5.1f} s, "
              f"tracked / untracked {tracked / untracked:4.2f}", flush=True)
    return statistics.median(ratios)


def main() -> int:      # the snapshot last: its tracker leaves MLflow's active experiment set
    stable_allocator()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--spec", default=str(ROOT / "projects/sweeps/digits_weight_decay.yaml"))
    parser.add_argument("--only", default="tracking,sweep,measures,snapshot")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"{args.repeats} repeats", flush=True)
    results = []
    if "tracking" in parts:
        print("default digits run (20,000 steps), tracked and untracked:", flush=True)
        results.append(("tracked / untracked, median", tracking(args.repeats), "<= 1.15"))
    if "sweep" in parts:
        print(f"sweep {Path(args.spec).name}, stacked and ensemble: off:", flush=True)
        results.append(("sweep off / stacked, median", sweeps(Path(args.spec), args.repeats),
                        ">= 2.5"))
    if "measures" in parts:
        print("a member's measures against their arithmetic, default digits MLP:", flush=True)
        lc, pgd = measures(args.repeats)
        results += [("LC / bare forward over its vertices", lc, "-"),
                    ("PGD / its forward-backward passes", pgd, "-")]
    if "snapshot" in parts:
        print("partition snapshot, default digits MLP 4x200, 512x512:", flush=True)
        results.append(("snapshot / bare forward", snapshot(args.repeats), "<= 1.5"))
    print("\n| ratio | measured | goal |\n|---|---|---|")
    for name, value, goal in results:
        print(f"| {name} | {value:.2f} | {goal} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
