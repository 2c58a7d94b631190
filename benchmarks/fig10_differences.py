"""Which difference from the grokking literature's transformer matters? (issue #26)

    python benchmarks/fig10_differences.py                        # every variant, 50% of pairs
    python benchmarks/fig10_differences.py --only literature pytorch_init --steps 3000
    python benchmarks/fig10_differences.py --train-fraction 0.4 --seed 1

Each variant is the fig. 10 recipe (p = 113, full batch, 1-layer width-128 transformer, AdamW
lr 1e-3, weight decay 1.0, betas (0.9, 0.98)) with the literature's choices (Nanda et al. 2023:
their init, MLP biases only, float64 loss, 10 warm-up steps, GeLU as the paper's fig. 10) and
one of them changed; ``old`` is this package's transformer before issue #26 (PyTorch's init,
every bias, float32 loss, no warm-up). Every run is the ordinary ``train``, tracked into a
temporary SQLite store (``--tracking-uri`` to keep them) with accuracy every ``--every`` steps
and a light LC probe (50 points, one radius; no partition). It prints, per variant, the first
measured step at which training accuracy reached 0.99 and test accuracy 0.5 and 0.9, the final
test accuracy and the wall time: docs/fig10.md's "which difference matters" table.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

LITERATURE = dict(transformer_init="nanda", transformer_biases="mlp", loss_float64=True,
                  warmup_steps=10, activation="gelu")
VARIANTS = {
    "literature": {},
    "pytorch_init": dict(transformer_init="pytorch"),
    "transformerlens_init": dict(transformer_init="transformerlens"),
    "all_biases": dict(transformer_biases="all"),
    "float32_loss": dict(loss_float64=False),
    "no_warmup": dict(warmup_steps=0),
    "relu": dict(activation="relu"),
    "old": dict(transformer_init="pytorch", transformer_biases="all", loss_float64=False,
                warmup_steps=0),
}


def first_step(history: dict, key: str, threshold: float) -> int | None:
    """The first measured step whose ``key`` is >= ``threshold`` (None: never)."""
    return next((s for s in sorted(history) if history[s].get(key, -1.0) >= threshold), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), help="variants to run")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--train-fraction", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=25, help="measure every N steps")
    parser.add_argument("--tracking-uri", default="", help="default: a temporary SQLite store")
    args = parser.parse_args()

    import mlflow

    from grok_mlflow.runner.training import train
    from grok_mlflow.settings import Settings

    base = Settings(dataset="modular_addition", modulus=113, train_fraction=args.train_fraction,
                    model="transformer", depth=1, width=128, optimizer="adamw", lr=1e-3,
                    weight_decay=1.0, adam_beta2=0.98, batch_size=0, steps=args.steps,
                    seed=args.seed, eval_points=2, eval_every=args.every, lc_samples=50,
                    lc_radius=(0.05,), partition_every=0, adv_points=0, log_model=False,
                    **LITERATURE)
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tracking_uri(args.tracking_uri or f"sqlite:///{tmp}/mlflow.db")
        print(f"p = 113, {args.train_fraction:.0%} of pairs, seed {args.seed}, {args.steps} "
              f"steps, measured every {args.every}\n")
        print("| variant | changed | train acc 0.99 | test acc 0.5 | test acc 0.9 | final test "
              "acc | wall s |")
        print("|---|---|---|---|---|---|---|")
        for name in args.only or VARIANTS:
            settings = dataclasses.replace(base, **VARIANTS[name])
            start = time.perf_counter()
            result = train(settings, experiment="fig10_differences", run_name=name,
                           progress=False)
            wall = time.perf_counter() - start
            history = mlflow_history(result.run_id)
            cells = [first_step(history, "acc/train", 0.99), first_step(history, "acc/test", 0.5),
                     first_step(history, "acc/test", 0.9)]
            changed = ", ".join(f"{k}={v}" for k, v in VARIANTS[name].items()) or "-"
            print(f"| {name} | {changed} | " + " | ".join(
                "not reached" if c is None else str(c) for c in cells)
                + f" | {result.metrics.get('acc/test', float('nan')):.3f} | {wall:.0f} |",
                flush=True)


def mlflow_history(run_id: str) -> dict[int, dict[str, float]]:
    """{step: {key: value}} of a run's accuracy metrics, read back from MLflow."""
    from mlflow.tracking import MlflowClient

    client, history = MlflowClient(), {}
    for key in ("acc/train", "acc/test"):
        for m in client.get_metric_history(run_id, key):
            history.setdefault(m.step, {})[key] = m.value
    return history


if __name__ == "__main__":
    main()
