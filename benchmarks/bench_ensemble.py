"""Issue #19, first measurement: K small runs trained as one stacked model vs one after another.

Only the training step is measured here (no tracking; the stacked sweep itself is not built yet):
the digits MLP (4 hidden layers of ``width``, AdamW) for K members that differ in seed (their
initialisation and their minibatch order), trained

- sequentially: K ordinary models, N steps each;
- stacked: ``torch.func.stack_module_state`` puts every parameter on a leading member axis, one
  ``vmap``-ed forward/backward over the members' own minibatches, one AdamW step on the stacked
  tensors (AdamW is elementwise, so this is exactly K independent AdamW updates).

It prints total training steps per second of each and their ratio, and (float64) the largest
difference between a stacked member's final weights and the same member trained alone.

Usage::

    python benchmarks/bench_ensemble.py [--steps 200] [--members 4,8,16] [--widths 50,200]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from grok_mlflow.data import load_dataset
from grok_mlflow.models import build_model
from grok_mlflow.settings import Settings


def members(settings: Settings, k: int, dtype: torch.dtype) -> list[nn.Module]:
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        out.append(build_model(settings, (1, 8, 8), 10).to(dtype))
    return out


def batch_orders(n: int, batch: int, k: int, steps: int) -> torch.Tensor:
    """(K, steps, B) minibatch indices: member k's own seeded permutations, epoch by epoch."""
    per_epoch = n // batch
    orders = []
    for seed in range(k):
        gen = torch.Generator().manual_seed(seed)
        rows = []
        while len(rows) < steps:
            perm = torch.randperm(n, generator=gen)
            rows += [perm[i * batch:(i + 1) * batch] for i in range(per_epoch)]
        orders.append(torch.stack(rows[:steps]))
    return torch.stack(orders)


def sequential(models, x, y, orders, lr=1e-3, wd=0.01):
    for k, model in enumerate(models):
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
        for idx in orders[k]:
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return models


def stacked(models, x, y, orders, lr=1e-3, wd=0.01):
    params, buffers = stack_module_state(models)                 # {name: (K, ...)}
    base = copy.deepcopy(models[0]).to("meta")
    opt = torch.optim.AdamW(list(params.values()), lr=lr, weight_decay=wd)

    def loss_of(p, b, xb, yb):
        return nn.functional.cross_entropy(functional_call(base, (p, b), (xb,)), yb)

    batched = vmap(loss_of)
    for step in range(orders.shape[1]):
        idx = orders[:, step]                                    # (K, B)
        loss = batched(params, buffers, x[idx], y[idx]).sum()    # members are independent
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return params


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--members", default="4,8,16")
    parser.add_argument("--widths", default="50,200")
    args = parser.parse_args()
    data = load_dataset(Settings(), torch.device("cpu"))
    x, y = data.x_train, data.y_train
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps, "
          f"batch 200, digits MLP depth 4")
    warm = batch_orders(len(x), 200, 2, 20)           # first calls pay one-time costs
    for fn in (sequential, stacked):
        fn(members(Settings(width=50), 2, torch.float32), x, y, warm)
    print("| width | K | sequential steps/s | stacked steps/s | stacked / sequential |")
    print("|---|---|---|---|---|")
    for width in (int(w) for w in args.widths.split(",")):
        settings = Settings(width=width)
        for k in (int(m) for m in args.members.split(",")):
            orders = batch_orders(len(x), 200, k, args.steps)
            times = {}
            for name, fn in (("sequential", sequential), ("stacked", stacked)):
                models = members(settings, k, torch.float32)
                start = time.perf_counter()
                fn(models, x, y, orders)
                times[name] = time.perf_counter() - start
            total = k * args.steps
            print(f"| {width} | {k} | {total / times['sequential']:.0f} | "
                  f"{total / times['stacked']:.0f} | "
                  f"{times['sequential'] / times['stacked']:.2f} |", flush=True)
    # equality: float64, K = 3, width 50, 50 steps
    settings = Settings(width=50)
    orders = batch_orders(len(x), 200, 3, 50)
    alone = sequential(members(settings, 3, torch.float64), x.double(), y, orders)
    together = stacked(members(settings, 3, torch.float64), x.double(), y, orders)
    diff = max((together[name][k] - dict(alone[k].named_parameters())[name]).abs().max().item()
               for k in range(3) for name in together)
    print(f"\nfloat64, 3 members x 50 steps: largest |stacked - alone| weight difference {diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
