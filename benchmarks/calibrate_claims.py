"""The verdict rule's false-positive rate and power, by seeded simulation (issue #49).

Each simulated sweep: 5 swept values x S seeds of a positive quantity (mean 10, normal noise of
SD 1 within each value), a "decreasing" claim. Null: no effect. Effect: the true means fall
linearly across the 5 values by 1 or 2 within-value SDs in all. Counts how often the rule says
supported / contradicted. tests/test_claims.py runs the null part; docs/claims.md quotes this.

Run: python benchmarks/calibrate_claims.py [--sweeps 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from grok_mlflow.findings.claims import Claim
from grok_mlflow.findings.verdicts import evaluate

VALUES = [16, 32, 64, 128, 256]
CLAIM = Claim("falls with width", "grok/lc_peak_value", "decreasing", "width")


def simulated_sweep(rng: np.random.Generator, seeds: int, span_sd: float) -> list:
    """One sweep's trials: at value i the true mean is 10 - span_sd * (i / 4 - 1/2)."""
    trials = []
    for i, w in enumerate(VALUES):
        mean = 10.0 - span_sd * (i / (len(VALUES) - 1) - 0.5)
        for s in range(seeds):
            trials.append(({"width": w, "seed": s},
                           {"grok/lc_peak_value": float(mean + rng.normal())}))
    return trials


def rates(sweeps: int, seeds: int, span_sd: float, seed: int = 0) -> dict[str, int]:
    """How many of ``sweeps`` simulated sweeps each status got."""
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    for _ in range(sweeps):
        status = evaluate(CLAIM, simulated_sweep(rng, seeds, span_sd), VALUES).status
        counts[status] = counts.get(status, 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=200)
    args = parser.parse_args()
    print("| seeds | true effect (SDs across the 5 values) | supported | contradicted | "
          "inconclusive |\n|---|---|---|---|---|")
    start = time.perf_counter()
    for seeds in (4, 5):
        for span in (0.0, 1.0, 2.0):
            c = rates(args.sweeps, seeds, span)
            print(f"| {seeds} | {span:g} | {c.get('supported', 0)} of {args.sweeps} | "
                  f"{c.get('contradicted', 0)} of {args.sweeps} | "
                  f"{c.get('inconclusive', 0)} of {args.sweeps} |")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
