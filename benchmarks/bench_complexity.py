"""Local complexity vs a bare forward pass over the same vertices (issue: LC speed).

Prints, per model and device, LC time / the time of one forward pass (no_grad, eval) over the
N*2P vertex tensor, measured side by side in this process, and how many counts differ between
float32 and float64. Targets: <= 0.75 for the MLP, <= 1.0 for the CNN.

    python benchmarks/bench_complexity.py               # full sizes (N=10,000 MLP, N=1,024 CNN)
    python benchmarks/bench_complexity.py --scale 0.1   # quicker
"""

from __future__ import annotations

import argparse

import torch

from grok_mlflow.measures.complexity import local_complexity, sample_directions
from grok_mlflow.runner.models import build_model
from grok_mlflow.settings import Settings

from common import best_time, mnist_images, stable_allocator


def bare_forward(model, vertices, chunk):
    """The naive cost: one no_grad forward over the prebuilt (N*2P, *S) vertex tensor."""
    with torch.no_grad():
        for start in range(0, len(vertices), chunk):
            model(vertices[start:start + chunk])


def run_case(name, model, x, radius, device, repeats):
    model = model.to(device).eval()
    x = x.to(device)
    p = 25
    directions = sample_directions(x[0].numel(), p, seed=0).to(device)
    signed = torch.cat([directions, -directions])                                  # (2P, D)
    vertices = (x.flatten(1)[:, None] + radius * signed[None]).view(-1, *x.shape[1:])  # (N*2P, *S)
    # The baseline gets its best chunk size (on CPU, cache-sized chunks are several times faster).
    chunks = [len(vertices)] if device.type == "cuda" else [128, 1024, 8192]
    t_forward = {c: float("inf") for c in chunks}
    t_lc = float("inf")
    # Interleaved repeats, best of each: this machine's timings drift between runs.
    for _ in range(repeats):
        for c in chunks:
            t_forward[c] = min(t_forward[c], best_time(lambda c=c, v=vertices: bare_forward(model, v, c),
                                                       1, device))
        t_lc = min(t_lc, best_time(lambda: local_complexity(model, x, radius=radius,
                                                            directions=directions), 1, device))
    best_chunk = min(t_forward, key=t_forward.get)
    del vertices
    lc32 = local_complexity(model, x, radius=radius, directions=directions).per_layer
    lc64 = local_complexity(model.double(), x.double(), radius=radius,
                            directions=directions.double()).per_layer
    model.float()
    differ = int((lc32 != lc64).sum())
    print(f"{name:<22} {device.type:<4} N={len(x):<6} P={p}  bare forward {t_forward[best_chunk]:7.3f} s "
          f"(chunk {best_chunk})  LC {t_lc:7.3f} s  LC/forward = {t_lc / t_forward[best_chunk]:4.2f}  "
          f"float32 vs float64: {differ} of {lc32.numel()} counts differ "
          f"(mean LC {lc32.sum(1).double().mean():.3f} vs {lc64.sum(1).double().mean():.3f})")


def main():
    stable_allocator()
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full N")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    n_mlp, n_cnn = max(1, int(10_000 * args.scale)), max(1, int(1024 * args.scale))
    x_mnist = mnist_images(n_mlp)
    source = "MNIST t10k"
    if x_mnist is None:
        x_mnist, source = torch.rand(n_mlp, 1, 28, 28), "uniform noise"
    mlp = build_model(Settings(model="mlp", depth=4, width=200), (1, 28, 28), 10)
    cnn = build_model(Settings(model="cnn", depth=5, width=32, train_size=1000), (3, 32, 32), 10)
    x_cifar = torch.rand(n_cnn, 3, 32, 32)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; MLP points: {source}")
    for device in devices:
        run_case("MLP 4x200, 784-d", mlp, x_mnist, 0.05, device, args.repeats)
        run_case("CNN 5 conv, 3x32x32", cnn, x_cifar, 0.005, device, args.repeats)


if __name__ == "__main__":
    main()
