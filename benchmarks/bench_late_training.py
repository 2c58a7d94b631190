"""Training speed late in a long run ÷ early in it, with subnormal floats kept or flushed.

With AdamW the training loss of the default digits MLP falls to ~1e-8 and Adam's second-moment
estimates and many gradients shrink towards float32's subnormal range (below 1.2e-38), where x86
CPUs compute up to ~100x slower. This trains the default run's network (digits, MLP 4x200,
AdamW, batch 200) with the training loop's own parts (data on the device, ``TensorBatches``),
no measurement, and times ``--window`` steps at the start (after 200 warm-up steps) and at the
end of ``--steps``; then the same with ``torch.set_flush_denormal(True)``. It also counts the
subnormal entries in the optimizer state at the end.

    python benchmarks/bench_late_training.py --steps 20000
"""

from __future__ import annotations

import argparse
import time

import torch

from common import stable_allocator


def subnormals(optimizer: torch.optim.Optimizer) -> tuple[int, int]:
    """(subnormal, total) float entries in the optimizer's state tensors."""
    tiny = torch.finfo(torch.float32).tiny
    sub = total = 0
    for state in optimizer.state.values():
        for value in state.values():
            if torch.is_tensor(value) and value.is_floating_point() and value.dim():
                sub += int(((value != 0) & (value.abs() < tiny)).sum())
                total += value.numel()
    return sub, total


def run(steps: int, window: int, flush: bool) -> dict[str, float]:
    from grok_mlflow.measures.evaluation import loss_function
    from grok_mlflow.runner.batches import training_batches
    from grok_mlflow.runner.data import load_dataset
    from grok_mlflow.runner.models import build_model
    from grok_mlflow.runner.training import OPTIMIZERS
    from grok_mlflow.settings import Settings

    settings = Settings(steps=steps, device="cpu")
    torch.set_flush_denormal(flush)
    try:
        data = load_dataset(settings, torch.device("cpu"))
        torch.manual_seed(settings.seed)
        model = build_model(settings, data.input_shape, data.num_classes)
        optimizer = OPTIMIZERS[settings.optimizer](model.parameters(), lr=settings.lr,
                                                   weight_decay=settings.weight_decay)
        batches = training_batches(data, settings)
        loss_fn = loss_function(settings.loss)
        marks: dict[int, float] = {}
        for step in range(1, steps + 1):
            if step in (200, 200 + window, steps - window):
                marks[step] = time.perf_counter()
            x, y = next(batches)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        end = time.perf_counter()
        early = window / (marks[200 + window] - marks[200])
        late = window / (end - marks[steps - window])
        sub, total = subnormals(optimizer)
        return {"early": early, "late": late, "loss": float(loss), "subnormal": sub / total}
    finally:
        torch.set_flush_denormal(False)   # the process default


def main() -> None:
    stable_allocator()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=1_000)
    args = parser.parse_args()
    print(f"digits MLP 4x200, AdamW, {args.steps} steps, windows of {args.window} steps, CPU "
          f"({torch.get_num_threads()} threads)")
    rows = {}
    for flush in (False, True):
        r = rows[flush] = run(args.steps, args.window, flush)
        print(f"flush_denormal={flush!s:5}  early {r['early']:7.0f} steps/s   late "
              f"{r['late']:7.0f} steps/s   late/early {r['late'] / r['early']:.2f}   final loss "
              f"{r['loss']:.2e}   subnormal optimizer-state entries {r['subnormal']:.1%}")
    print(f"late steps/s, flushed / kept: {rows[True]['late'] / rows[False]['late']:.2f}")


if __name__ == "__main__":
    main()
