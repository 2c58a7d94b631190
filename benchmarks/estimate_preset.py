"""A preset's full runtime from its parts, measured in minutes instead of hours.

For each preset (on stand-in data of the real format, ``time_presets.write_standins``, unless
``--data-root`` holds the real files) this measures, with the real code on one device:

- one training step: ``train(track=False)`` for 2N and N steps, the difference over N (so that
  loading the data and building the model are not counted);
- one evaluation (accuracy, loss, LC on every set), one PGD evaluation and one partition
  snapshot: ``GrokTracker.measure`` and its parts on the preset's network, in a temporary store;

- the fixed cost of a run (process start, imports, the store, logging the model and the final
  artifacts): a one-step run through the real command line, less its two evaluations and step;

then multiplies by the preset's schedule (steps, eval, PGD and partition counts), adds the fixed
cost and prints the estimate next to its parts. ``time_presets.py`` times whole runs; on the default digits run
both agree within a few percent (see the README), so this is how the long presets are timed.

    python benchmarks/estimate_preset.py projects/fig2_cnn_cifar10.yaml --device cuda
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from time_presets import write_standins

from grok_mlflow.runner.build import resolve_device
from grok_mlflow.runner.data import dataset_spec, load_dataset
from grok_mlflow.runner.models import build_model
from grok_mlflow.runner.training import train
from grok_mlflow.settings import Settings, load_preset
from grok_mlflow.tracker.tracking import GrokTracker, RunOptions


def _timed(fn, device: torch.device) -> float:
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def one_step_run_s(settings: Settings) -> float:
    """Wall time of a one-step run of ``settings`` through the command line (no PGD, no
    partition snapshot): the fixed cost of a run plus two evaluations and one step."""
    values = {**settings.to_params(), "steps": "1", "adv_points": "0", "partition_every": "0",
              "preset": ""}
    args = [f"--{k}={v}" for k, v in values.items() if v != Settings().to_params()[k]]
    cmd = [sys.executable, "-m", "grok_mlflow", "train", "--no-progress", "--experiment",
           "estimate", *args]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def estimate(settings: Settings, train_steps: int) -> dict[str, float]:
    """Seconds per part and the schedule's counts for one preset's settings."""
    device = resolve_device(settings.device)
    run = lambda n: train(dataclasses.replace(settings, steps=n), progress=False,  # noqa: E731
                          track=False)
    run(2)                                                  # warm-up (kernels, page cache)
    short = _timed(lambda: run(train_steps), device)
    long = _timed(lambda: run(2 * train_steps), device)
    per_step = (long - short) / train_steps

    data = load_dataset(settings, device)
    model = build_model(settings, data.input_shape, data.num_classes,
                        dataset_spec(settings.dataset).normalization).to(device)
    tracker = GrokTracker(model, (data.x_train, data.y_train), (data.x_test, data.y_test),
                          settings.tracker_settings(dataset_spec(settings.dataset).default_adv_eps),
                          domain=data.domain,
                          run=RunOptions(progress=False, log_model=False, experiment="estimate"))
    with tracker:                                           # measures step 0: the warm-up
        due = tracker.schedule
        plain = min(due.eval_steps[1:], key=lambda t: (t in due.adv_steps
                                                       or t in due.partition_steps, t))
        evaluation = _timed(lambda: tracker.measure(plain, adversarial=False), device)
        with_pgd = _timed(lambda: tracker.measure(plain, adversarial=True), device)
        snapshot = (_timed(lambda: tracker.partition_snapshot(plain), device)
                    if tracker.schedule.partition_steps else 0.0)    # partition_every: 0
    counts = {"steps": settings.steps, "evals": len(tracker.schedule.eval_steps),
              "pgd": len(tracker.schedule.adv_steps),
              "partition": len(tracker.schedule.partition_steps)}
    parts = {"step": per_step, "eval": evaluation, "pgd": max(with_pgd - evaluation, 0.0),
             "partition": snapshot}
    parts["fixed"] = max(one_step_run_s(settings) - 2 * evaluation - per_step, 0.0)
    total = (parts["fixed"] + counts["steps"] * parts["step"] + counts["evals"] * parts["eval"]
             + counts["pgd"] * parts["pgd"] + counts["partition"] * parts["partition"])
    return {**{f"s_per_{k}": v for k, v in parts.items()}, **counts, "total_s": total}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("presets", nargs="*", help="preset files (none: the default run)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--train-steps", type=int, default=500)
    parser.add_argument("--standin", default="/tmp/grok_mlflow_standin")
    parser.add_argument("--data-root", default=None, help="real datasets here (no stand-ins)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        for preset in args.presets or [None]:
            settings = load_preset(preset) if preset else Settings()
            root = args.data_root or args.standin
            if settings.dataset != "digits":
                if not args.data_root:
                    write_standins(Path(root), {settings.dataset})
                settings = dataclasses.replace(settings, data_root=root, download=False)
            settings = dataclasses.replace(settings, device=args.device)
            r = estimate(settings, args.train_steps)
            name = Path(preset).stem if preset else "default (digits)"
            print(f"{name}: estimated {r['total_s']:.0f} s = {r['s_per_fixed']:.0f} s fixed + "
                  f"{r['steps']} steps x "
                  f"{1e3 * r['s_per_step']:.2f} ms + {r['evals']} evals x {r['s_per_eval']:.2f} s"
                  f" + {r['pgd']} PGD x {r['s_per_pgd']:.2f} s + {r['partition']} partition x "
                  f"{r['s_per_partition']:.2f} s", flush=True)


if __name__ == "__main__":
    main()
