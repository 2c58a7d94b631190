"""Imagenette streaming: is training bounded by the model, not by decoding?

Side by side in one run, on stand-in Imagenette files of the real format (160x213 JPEGs, written
once under ``--root``), for ``train(track=False)``-style steps of torchvision's ResNet-18:

- decode rate: images/s that ``StreamedBatches`` delivers to the device with no model at all;
- streamed training: steps/s of forward + backward + Adam on minibatches from the stream;
- on-device training: the same steps on one minibatch already on the device (the model alone);
- ratio streamed / on-device (1.0 = decoding fully hidden behind the model).

    python benchmarks/bench_stream.py --root /tmp/imagenette --device cuda --image-size 160
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import torch
from time_presets import write_standins

from grok_mlflow.runner.batches import training_batches
from grok_mlflow.runner.build import resolve_device
from grok_mlflow.runner.data import dataset_spec, load_dataset
from grok_mlflow.runner.models import build_model
from grok_mlflow.settings import Settings


def steps_per_s(model, opt, batches, steps: int, device: torch.device) -> float:
    """Training steps/s over ``steps`` minibatches of ``batches`` (after 3 warm-up steps)."""
    def step(x, y):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step(*next(batches))
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step(*next(batches))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default="/tmp/grok_mlflow_imagenette_standin")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--workers", type=int, default=-1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=100,
                        help="stand-in training JPEGs per class (947 = the real count)")
    args = parser.parse_args()
    root = Path(args.root)
    start = time.perf_counter()
    write_standins(root, {"imagenette"}, imagenette_per_class=(args.per_class, 40))
    print(f"stand-in Imagenette under {root}: {time.perf_counter() - start:.0f} s")
    device = resolve_device(args.device)
    s = Settings(dataset="imagenette", data_root=str(root), download=False, model="resnet18",
                 image_size=args.image_size, batch_size=args.batch_size, eval_size=args.batch_size,
                 train_size=10 * args.per_class, data_workers=args.workers, device=str(device))
    data = load_dataset(s, device)
    torch.manual_seed(0)
    model = build_model(s, data.input_shape, data.num_classes,
                        dataset_spec(s.dataset).normalization).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=device.type == "cuda" or None)

    with contextlib.closing(training_batches(data, s)) as batches:
        next(batches)                                  # workers started and warm
        start, n = time.perf_counter(), 4 * args.steps
        for _ in range(n):
            x, _ = next(batches)
        if device.type == "cuda":
            torch.cuda.synchronize()
        decode = n * args.batch_size / (time.perf_counter() - start)
    x, y = data.x_train[:args.batch_size], data.y_train[:args.batch_size]
    streamed = on_device = 0.0
    for _ in range(args.rounds):      # interleaved, best of each: this machine's load drifts
        with contextlib.closing(training_batches(data, s)) as batches:
            streamed = max(streamed, steps_per_s(model, opt, batches, args.steps, device))
        on_device = max(on_device, steps_per_s(model, opt, iter(lambda: (x, y), None),
                                               args.steps, device))
    workers = batches.workers
    print(f"device {device}, ResNet-18, {args.image_size} px, batch {args.batch_size}, "
          f"{workers} workers")
    print(f"decode only:        {decode:8.0f} images/s  ({decode / args.batch_size:.1f} batches/s)")
    print(f"streamed training:  {streamed:8.2f} steps/s")
    print(f"on-device training: {on_device:8.2f} steps/s")
    print(f"ratio streamed / on-device: {streamed / on_device:.2f}")


if __name__ == "__main__":
    main()
