"""Fig. 1 as evidence (issue #48): what each arm of ``projects/sweeps/fig1_arms.yaml`` showed.

    python benchmarks/fig1_arms.py --export docs/runs/fig1_arms     # from $MLFLOW_TRACKING_URI
    python benchmarks/fig1_arms.py                                   # the table, from the CSVs

``--export`` copies every finished trial of every ``fig1_arms`` batch in the store (their
``history.csv``, the phase curves only: accuracy, loss, LC per set and radius, PGD per eps) into
a folder of the repository, one CSV per trial, so that batches run in different sessions (each
with its own store) add up. Without it, the CSVs are read back and printed as the arm x seed
table of ``docs/paper-on-mnist.md``: per arm, the second descent (r = 0.005) and delayed
robustness per eps in k of n seeds with Clopper-Pearson 95% intervals, the Kaplan-Meier median
of the migration onset with its interval, LC at the decision boundary against LC at the
training points over the second descent (where the run logged it), the step at which the train loss first reached its
floor and the loss spikes after it; ``--figures DIR`` draws one figure per arm (LC at r = 0.005
at the training points and at the boundary, and the train loss on one log-step axis, every
seed).

The train loss's floor: the run's lowest measured train loss; the floor step is the first
measured step within a factor 10 of it; a spike is a measured step after the floor step whose
loss is more than 100x the floor.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from grok_mlflow.findings.curves import series
from grok_mlflow.findings.history import read_history_csv
from grok_mlflow.findings.phases import boundary_shift, detect_phases
from grok_mlflow.findings.statistics import km_median

from common import export_trials

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "docs" / "runs" / "fig1_arms"
LC_KEY = "lc_r0.005/train"
EPS = ("0.05", "0.1", "0.2")


def loss_floor(history: dict) -> tuple[int | None, float, list[tuple[int, float]]]:
    """(the floor step, the floor, the spikes after it: (step, loss)) of the train loss."""
    steps, loss = series(history, "loss/train")
    if not len(loss):
        return None, math.nan, []
    floor = float(np.min(loss))
    at = int(steps[np.flatnonzero(loss <= 10 * floor)[0]])
    spikes = [(int(s), float(v)) for s, v in zip(steps, loss) if s > at and v > 100 * floor]
    return at, floor, spikes


def read_trials(folder: Path) -> dict[tuple[str, str], list[tuple[int, dict]]]:
    """{(dtype, loss): [(seed, history), ...]} from ``folder/<trial>.csv``."""
    arms: dict[tuple[str, str], list[tuple[int, dict]]] = {}
    for path in sorted(folder.glob("*.csv")):
        parts = dict(p.split("=", 1) for p in path.stem.split(","))
        arms.setdefault((parts["dtype"], parts["loss"]), []).append(
            (int(parts["seed"]), read_history_csv(path.read_text())))
    return arms


def _share(k: int, n: int) -> str:
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return f"{k} of {n} [{ci.low:.2f}, {ci.high:.2f}]"


def arm_row(arm: tuple[str, str], trials: list[tuple[int, dict]]) -> str:
    """One Markdown row of the arm x seed table."""
    phases = [detect_phases(h, lc_key=LC_KEY) for _, h in trials]
    n = len(trials)
    migrated = [p for p in phases if "grok/migration_onset_step" in p]
    onsets = [p.get("grok/migration_onset_step", p.get("grok/migration_onset_step_low"))
              for p in phases]
    censored = [p.get("grok/migration_onset_censored", 1.0) > 0.5 for p in phases]
    km = km_median([o for o in onsets if o is not None],
                   [c for o, c in zip(onsets, censored) if o is not None])
    median = ("censored" if km.censored else
              f"{km.estimate:,.0f} [{km.low:,.0f}, "
              f"{'inf' if math.isinf(km.high) else f'{km.high:,.0f}'}]")
    robust = {e: sum(f"grok_eps{e}/delay_steps" in p for p in phases) for e in EPS}
    floors = [loss_floor(h) for _, h in trials]
    floor_steps = sorted(f[0] for f in floors if f[0] is not None)
    spikes = [len(f[2]) for f in floors]
    return (f"| {arm[0]}, {arm[1]} | {_share(len(migrated), n)} | {median} | "
            + " | ".join(_share(robust[e], n) for e in EPS)
            + f" | {boundary_cell(trials, phases)}"
            + f" | {', '.join(f'{s:,}' for s in floor_steps)} | {', '.join(map(str, spikes))} |")


def boundary_cell(trials: list[tuple[int, dict]], phases: list[dict]) -> str:
    """LC(boundary) / LC(train) over the second descent (``phases.boundary_shift``): in how
    many of the seeds with a second descent and a boundary curve it rose beyond its interval,
    and its range over those seeds at the onset and at the end."""
    shifts = [boundary_shift(h, LC_KEY, int(p["grok/migration_onset_step"]))
              for (_, h), p in zip(trials, phases) if "grok/migration_onset_step" in p]
    shifts = [s for s in shifts if s is not None]
    if not shifts:
        return "not logged"
    onset = sorted(s.at_onset for s in shifts)
    end = sorted(s.at_end for s in shifts)
    return (f"rose in {_share(sum(s.rose for s in shifts), len(shifts))}: "
            f"{onset[0]:.2f}-{onset[-1]:.2f} -> {end[0]:.1f}-{end[-1]:.1f}")


def table(arms: dict) -> str:
    head = ("| arm | second descent (r = 0.005), k of n [95% CI] | migration onset, KM median "
            "[95% CI] | " + " | ".join(f"delayed robustness eps {e}" for e in EPS)
            + " | LC(boundary) / LC(train) over the second descent, onset -> end"
            + " | train loss at its floor from step (each seed) | loss spikes after it "
              "(each seed) |")
    rule = "|---" * (head.count("|") - 1) + "|"
    return "\n".join([head, rule, *(arm_row(a, arms[a]) for a in sorted(arms))]) + "\n"


def figures(arms: dict, folder: Path) -> None:
    """One figure per arm: LC(train, r = 0.005), LC(boundary) dashed, and the train loss,
    every seed."""
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    for (dtype, loss), trials in sorted(arms.items()):
        fig = Figure(figsize=(7, 5))
        top, bottom = fig.subplots(2, 1, sharex=True)
        for seed, history in sorted(trials):
            for ax, key in ((top, LC_KEY), (bottom, "loss/train")):
                steps, values = series(history, key)
                line, = ax.plot(np.maximum(steps, 1), values, label=f"seed {seed}", lw=1)
                if key == LC_KEY:         # LC at the decision boundary, where it was logged
                    steps, values = series(history, LC_KEY.replace("/train", "/boundary"))
                    ax.plot(np.maximum(steps, 1), values, ls="--", lw=1, color=line.get_color())
        top.set_ylabel("LC, r = 0.005")
        top.text(0.01, 0.03, "solid: at training points; dashed: at the decision boundary",
                 transform=top.transAxes, fontsize=7)
        bottom.set_ylabel("train loss")
        bottom.set_yscale("log")
        bottom.set_xscale("log")
        bottom.set_xlabel("step")
        top.legend(fontsize=7, frameon=False)
        top.set_title(f"fig. 1 MLP on MNIST: {dtype}, {loss}")
        fig.tight_layout()
        fig.savefig(folder / f"fig1_arm_{dtype}_{loss}.png", dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, default=None, metavar="DIR",
                        help="write the store's finished trials there instead")
    parser.add_argument("--from", dest="folder", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--figures", type=Path, default=None, metavar="DIR")
    args = parser.parse_args()
    if args.export:
        return export_trials("fig1_arms", args.export)
    arms = read_trials(args.folder)
    if not arms:
        print(f"no trials in {args.folder}", file=sys.stderr)
        return 1
    print(table(arms))
    if args.figures:
        figures(arms, args.figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
