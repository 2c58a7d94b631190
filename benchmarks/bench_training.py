"""Training throughput: our loop (``train(track=False)``) / a minimal hand-written PyTorch loop
(same model, same batches size, data on the device), steps per second, side by side; and the
cost of ``loss_float64`` (the loss from float64 logits) on the MLP presets' loop.

    python benchmarks/bench_training.py [--steps 3000]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from grok_mlflow.runner.build import resolve_device
from grok_mlflow.runner.data import load_dataset
from grok_mlflow.runner.models import build_model
from grok_mlflow.runner.training import train
from grok_mlflow.settings import Settings

from common import stable_allocator


def minimal_loop(settings: Settings, device: torch.device) -> None:
    data = load_dataset(settings, device)
    torch.manual_seed(settings.seed)
    model = build_model(settings, data.input_shape, data.num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    n = len(data.x_train)
    for _ in range(settings.steps):
        idx = torch.randint(0, n, (settings.batch_size,), device=device)
        loss = torch.nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    stable_allocator()
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--devices", default="cpu,cuda", help="comma-separated; cuda if present")
    args = parser.parse_args()
    cases = [("digits MLP 4x200", Settings(steps=args.steps)),
             ("digits CNN 5x32", Settings(model="cnn", depth=5, width=32, steps=args.steps // 3))]
    devices = [d for d in args.devices.split(",") if d != "cuda" or torch.cuda.is_available()]
    for device_name in devices:
        device = resolve_device(device_name)
        for name, settings in cases:
            settings = replace(settings, device=device_name)
            ours, minimal = float("inf"), float("inf")
            for _ in range(2):   # interleaved, best of two
                ours = min(ours, timed(lambda s=settings: train(s, progress=False, track=False)))
                minimal = min(minimal, timed(lambda s=settings, d=device: minimal_loop(s, d)))
            print(f"{name:<18} {device_name:<4} {settings.steps} steps: ours "
                  f"{settings.steps / ours:8.0f} steps/s, minimal loop {settings.steps / minimal:8.0f}"
                  f" steps/s, ratio ours/minimal = {minimal / ours:4.2f}")
        # loss_float64 on the MLP presets' loops: fig. 1's MLP (3 x 200, batch 200, 10 classes;
        # digits stands in for MNIST: the same loop, 64 inputs) and the default digits run
        for name, settings in [("digits MLP 3x200", Settings(depth=3, steps=args.steps)),
                               ("digits MLP 4x200", Settings(steps=args.steps))]:
            settings = replace(settings, device=device_name)
            high = replace(settings, loss_float64=True)
            f32, f64 = float("inf"), float("inf")
            for _ in range(3):   # interleaved, best of three
                f32 = min(f32, timed(lambda s=settings: train(s, progress=False, track=False)))
                f64 = min(f64, timed(lambda s=high: train(s, progress=False, track=False)))
            print(f"{name:<18} {device_name:<4} loss_float64: {settings.steps / f64:8.0f} steps/s "
                  f"vs float32 loss {settings.steps / f32:8.0f} steps/s, cost = {f64 / f32:4.2f}x")


if __name__ == "__main__":
    main()
