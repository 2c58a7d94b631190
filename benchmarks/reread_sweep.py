"""Re-read a finished sweep with the current rules: each trial's phases from its stored
``history.csv`` (``phases.detect_phases``), then the spec's claims (``verdicts.evaluate_all``),
optionally at other radii. Nothing is trained and nothing is written to the store.

    python benchmarks/reread_sweep.py PARENT_RUN_ID
    python benchmarks/reread_sweep.py PARENT_RUN_ID --radius 0.005 0.05   # each claim at each r
    python benchmarks/reread_sweep.py PARENT_RUN_ID --settled   # where `stop: settled` stops

Prints the claims' Markdown (``claims.claims_markdown``) and, per trial, the phase steps with
their brackets (trials whose runs are not FINISHED, e.g. a sweep stopped halfway, are left out
and named); the spec is the one the parent run stored (its ``spec/`` artifact).
``--settled`` replays the settled rule (``phases.settled``, as the tracker asks it: at every
measured step from ``min_steps`` on, before the cap) on each trial's history and prints where
a ``stop: settled`` sweep would have stopped it, and the trial steps that saves.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parent")
    parser.add_argument("--radius", type=float, nargs="*", default=None,
                        help="judge every LC claim at each of these radii")
    parser.add_argument("--settled", action="store_true",
                        help="replay the settled rule on each trial instead")
    args = parser.parse_args()

    import mlflow

    from grok_mlflow.findings.claims import claims_markdown
    from grok_mlflow.findings.history import read_history_csv
    from grok_mlflow.findings.phases import detect_phases
    from grok_mlflow.findings.verdicts import evaluate_all
    from grok_mlflow.store.reading import run_artifact_text
    from grok_mlflow.store.sweep_runs import child_runs
    from grok_mlflow.sweeps.spec import load_spec, trial_name
    from grok_mlflow.sweeps.summary import trial_metrics
    from grok_mlflow.tracker.step import lc_prefix

    if args.settled:
        return _print_stops([(run.info.run_name, *_replay_settled(run)) for run in
                             sorted(child_runs(args.parent), key=lambda r: r.info.run_name)])

    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(run_id=args.parent, artifact_path="spec",
                                                    dst_path=tmp)
        spec_file = next(Path(local).glob("*.yaml"))
        spec = load_spec(str(spec_file))
    by_name = {trial_name(o): o for o in spec.trials()}
    radii = spec.base.lc_radius
    key = f"{lc_prefix(radii[0], radii)}/train"
    trials, rows, unfinished = [], [], []
    for run in child_runs(args.parent):
        name = run.data.tags.get("grok_mlflow.trial", run.data.tags.get("mlflow.runName"))
        if name not in by_name:
            continue
        if run.info.status != "FINISHED":        # still training, or stopped: not read
            unfinished.append(f"{name} ({run.info.status})")
            continue
        history = read_history_csv(run_artifact_text(run.info.run_id, "history.csv"))
        phases = detect_phases(history, lc_key=key)
        metrics = {k: v for k, v in run.data.metrics.items() if not k.startswith("grok")}
        trials.append((by_name[name], trial_metrics({**metrics, **phases}, run.data.params)))
        rows.append((name, phases))
    verdicts = []
    for claim in spec.claims:
        if args.radius:
            for r in args.radius:
                verdicts += evaluate_all(dataclasses.replace(claim, radius=r), trials,
                                         spec.grid[claim.versus],
                                         setting=f"{spec.base.model} on {spec.base.dataset}")
        else:
            verdicts += evaluate_all(claim, trials, spec.grid[claim.versus],
                                     setting=f"{spec.base.model} on {spec.base.dataset}")
    if unfinished:
        print(f"Not read (not FINISHED): {', '.join(sorted(unfinished))}\n")
    print(claims_markdown(verdicts, spec.name).split("\nHow the verdicts")[0])
    print("| trial | " + " | ".join(_SHOWN) + " |")
    print("|---" * (len(_SHOWN) + 1) + "|")
    order = list(by_name)
    for name, phases in sorted(rows, key=lambda row: order.index(row[0])):
        print(f"| {name} | " + " | ".join(_cell(phases, k) for k in _SHOWN) + " |")
    return 0


def _replay_settled(run) -> tuple[int | None, int, str]:
    """(the step the rule first holds before the cap or None, the cap, why), from the run's
    metric histories in the store (its artifacts are not needed)."""
    from mlflow.tracking import MlflowClient

    from grok_mlflow.findings.phases import settled
    from grok_mlflow.settings import Settings
    from grok_mlflow.tracker.step import lc_prefix

    client, history = MlflowClient(), {}
    for name in run.data.metrics:
        if not name.startswith("grok"):
            for m in client.get_metric_history(run.info.run_id, name):
                history.setdefault(m.step, {})[name] = m.value
    radii = Settings.from_strings({"lc_radius": run.data.params["lc_radius"]}).lc_radius
    key = f"{lc_prefix(radii[0], radii)}/train"
    min_steps = int(run.data.params.get("min_steps", 100))
    cap, seen = max(history), {}
    for step in sorted(history):
        seen[step] = history[step]
        if min_steps <= step < cap:
            ok, why = settled(seen, lc_key=key)
            if ok:
                return step, cap, why
    return None, cap, settled(history, lc_key=key)[1]


def _print_stops(stops: list) -> int:
    used = sum(stop or cap for _, stop, cap, _ in stops)
    full = sum(cap for _, _, cap, _ in stops)
    print(f"{sum(1 for s in stops if s[1])} of {len(stops)} trials stop before their cap; trial "
          f"steps {used:,} of {full:,} ({used / full:.0%})\n")
    print("| trial | stopped at | why |\n|---|---|---|")
    for name, stop, _, why in stops:
        print(f"| {name} | {f'{stop:,}' if stop else '-'} | {why} |")
    return 0


_SHOWN = ("lc_peak", "migration_onset", "robustness_onset", "generalization")


def _cell(phases: dict, name: str) -> str:
    key = f"grok/{name}_step"
    if key in phases:
        return f"{phases[key]:,.0f} ({phases[key + '_low']:,.0f}-{phases[key + '_high']:,.0f})"
    if phases.get(f"grok/{name}_censored") == 1.0:
        return f"> {phases.get(key + '_low', 0):,.0f}"
    return "-"


if __name__ == "__main__":
    sys.exit(main())
