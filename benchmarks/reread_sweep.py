"""Re-read a finished sweep with the current rules: each trial's phases from its stored
``history.csv`` (``phases.detect_phases``), then the spec's claims (``verdicts.evaluate_all``),
optionally at other radii. Nothing is trained and nothing is written to the store.

    python benchmarks/reread_sweep.py PARENT_RUN_ID
    python benchmarks/reread_sweep.py PARENT_RUN_ID --radius 0.005 0.05   # each claim at each r
    python benchmarks/reread_sweep.py PARENT_RUN_ID --settled   # where `stop: settled` stops
    python benchmarks/reread_sweep.py --spec projects/sweeps/depth.yaml --export docs/runs/depth
    python benchmarks/reread_sweep.py --spec projects/sweeps/depth.yaml --trials docs/runs/depth \
        --radius 0.005 0.05                     # every batch of the spec, from the exported CSVs
    python benchmarks/reread_sweep.py --spec projects/sweeps/mnist_weight_decay.yaml \
        --trials docs/runs/mnist_weight_decay docs/runs/depth   # + runs of the same settings

Prints the claims' Markdown (``claims.claims_markdown``) and, per trial, the phase steps with
their brackets (trials whose runs are not FINISHED, e.g. a sweep stopped halfway, are left out
and named); the spec is the one the parent run stored (its ``spec/`` artifact).
``--settled`` replays the settled rule (``phases.settled``, as the tracker asks it: at every
measured step from ``min_steps`` on, before the cap) on each trial's history and prints where
a ``stop: settled`` sweep would have stopped it, and the trial steps that saves.

A spec run in batches (``--only``: each batch its own parent run, sessions apart, perhaps in
stores that are gone by the time the last batch ends) is read whole from exported trials:
``--export DIR`` writes every finished trial of the spec's experiment in the store as
``DIR/<trial>.csv`` (``common.export_trials``: the phase curves only, and its settings as
``<trial>.json``), and ``--trials DIR [DIR ...]`` judges the spec's claims over every trial in
the first folder, taking a trial it lacks from a later folder where one has the same settings
(all but where it ran: ``PLACE``), so that one run serves every spec it belongs to. Files of
trials the spec does not list, or whose settings differ from the spec's, are named and left
out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from grok_mlflow.findings.claims import claims_markdown, radius_dependent
from grok_mlflow.findings.history import read_history_csv
from grok_mlflow.findings.phases import detect_phases, settled
from grok_mlflow.findings.verdicts import evaluate_all
from grok_mlflow.settings import Settings, SettingsError
from grok_mlflow.store.reading import run_artifact_text
from grok_mlflow.store.sweep_runs import child_runs
from grok_mlflow.sweeps.spec import SweepSpec, load_spec, trial_name
from grok_mlflow.sweeps.summary import trial_metrics
from grok_mlflow.tracker.step import lc_prefix

from common import export_trials


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parent", nargs="?", help="a finished sweep's parent run")
    parser.add_argument("--radius", type=float, nargs="*", default=None,
                        help="judge every LC claim at each of these radii")
    parser.add_argument("--settled", action="store_true",
                        help="replay the settled rule on each trial instead")
    parser.add_argument("--spec", type=Path, default=None, help="the sweep spec YAML "
                        "(with --export or --trials)")
    parser.add_argument("--export", type=Path, default=None, metavar="DIR",
                        help="write every finished trial of the spec's experiment there")
    parser.add_argument("--trials", type=Path, nargs="+", default=None, metavar="DIR",
                        help="judge the spec's claims over the trials exported there (the "
                        "first folder the spec's own; later ones lend trials of the same "
                        "settings)")
    args = parser.parse_args()
    if (args.spec is None) == (args.parent is None) or \
            (args.spec is not None and (args.export is None) == (args.trials is None)):
        parser.error("give a PARENT_RUN_ID, or --spec with one of --export DIR, --trials DIR")
    if args.spec is not None:
        try:
            spec = load_spec(str(args.spec))
        except (OSError, SettingsError) as err:
            parser.error(f"--spec {args.spec}: {err}")
        if args.export is not None:
            return export_trials(spec.name, args.export)
        return _judge(spec, list(_exported(spec, args.trials)), args.radius)
    if args.settled:
        return _print_stops([(run.info.run_name, *_replay_settled(run)) for run in
                             sorted(child_runs(args.parent), key=lambda r: r.info.run_name)])
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(run_id=args.parent, artifact_path="spec",
                                                    dst_path=tmp)
        spec = load_spec(str(next(Path(local).glob("*.yaml"))))
    return _judge(spec, list(_stored(spec, args.parent)), args.radius)


def _stored(spec: SweepSpec, parent: str) -> Iterator[tuple[str, dict | None, dict, dict]]:
    """(trial, history or None where the run is not FINISHED, its last metrics, its params) of
    the parent's child runs that the spec lists."""
    names = {trial_name(o) for o in spec.trials()}
    for run in child_runs(parent):
        name = run.data.tags.get("grok_mlflow.trial", run.data.tags.get("mlflow.runName"))
        if name not in names:
            continue
        if run.info.status != "FINISHED":        # still training, or stopped: not read
            yield f"{name} ({run.info.status})", None, {}, {}
            continue
        history = read_history_csv(run_artifact_text(run.info.run_id, "history.csv"))
        yield name, history, dict(run.data.metrics), dict(run.data.params)


# settings that say where and how a trial ran, not what it trained: trials equal in every other
# setting are the same trial (training is seeded; the data root must hold the same files)
PLACE = frozenset({"preset", "data_root", "download", "data_workers", "checkpoint_every_s",
                   "tracking_retry_s"})


def _what(params: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in params.items() if k not in PLACE}


def _recorded(path: Path) -> dict[str, str] | None:
    """The settings ``--export`` recorded beside a trial's CSV (``<trial>.json``), or None."""
    beside = path.with_suffix(".json")
    return _what(json.loads(beside.read_text())) if beside.exists() else None


def _exported(spec: SweepSpec, folders: list[Path]
              ) -> Iterator[tuple[str, dict | None, dict, dict]]:
    """The same from ``folders[0]/<trial>.csv`` (the last metrics are each curve's last value,
    the params the spec's radii) and, for a trial missing there, from a CSV in a later folder
    whose recorded settings equal the trial's: the same run under another spec (the fig. 1 MLP
    at weight decay 0.01 is ``depth.yaml``'s depth 3), named as it is taken. A file of a trial
    the spec does not list, or whose recorded settings differ from the trial's, is named and
    left out."""
    wanted = {trial_name(o): _what(dataclasses.replace(spec.base, **o).to_params())
              for o in spec.trials()}
    found: dict[str, Path] = {}
    own, *others = folders
    for path in sorted(own.glob("*.csv")):
        recorded = _recorded(path)
        if path.stem not in wanted:
            yield f"{path.name} (not a trial of {spec.name})", None, {}, {}
        elif recorded is not None and recorded != wanted[path.stem]:
            differ = ", ".join(f"{k} {recorded.get(k)} -> {v}" for k, v in
                               wanted[path.stem].items() if recorded.get(k) != v)
            yield f"{path.name} (its settings differ from the spec's: {differ})", None, {}, {}
        else:
            found[path.stem] = path
    same = {json.dumps(recorded, sort_keys=True): path for folder in reversed(others)
            for path in sorted(folder.glob("*.csv")) if (recorded := _recorded(path))}
    for name, what in wanted.items():
        if name not in found and (path := same.get(json.dumps(what, sort_keys=True))):
            print(f"{name}: {path} (the same settings)")
            found[name] = path
    params = {"lc_radius": ",".join(f"{r:g}" for r in spec.base.lc_radius)}
    for name in (n for n in wanted if n in found):
        history = read_history_csv(found[name].read_text())
        last = {k: v for step in sorted(history) for k, v in history[step].items()}
        yield name, history, last, params


def _judge(spec: SweepSpec, found: list[tuple[str, dict | None, dict, dict]],
           radii: list[float] | None) -> int:
    """Print the spec's claims over the trials found and each trial's phase steps."""
    by_name = {trial_name(o): o for o in spec.trials()}
    key = f"{lc_prefix(spec.base.lc_radius[0], spec.base.lc_radius)}/train"
    left_out = sorted(name for name, history, _, _ in found if history is None)
    if left_out:
        print(f"Not read: {', '.join(left_out)}\n")
    trials, rows = [], []
    for name, history, metrics, params in found:
        if history is None:
            continue
        phases = detect_phases(history, lc_key=key)
        kept = {k: v for k, v in metrics.items() if not k.startswith("grok")}
        trials.append((by_name[name], trial_metrics({**kept, **phases}, params)))
        rows.append((name, phases))
    if not trials:
        print("no finished trial of this spec found", file=sys.stderr)
        return 1
    setting = f"{spec.base.model} on {spec.base.dataset}"
    # each LC claim at each radius asked for; a claim on accuracy or PGD once
    claims = [dataclasses.replace(c, radius=r) for c in spec.claims
              for r in (radii if radii and radius_dependent(c.quantity) else [c.radius])]
    verdicts = [v for c in claims for v in evaluate_all(c, trials, spec.grid[c.versus],
                                                        setting=setting)]
    print(f"{len(trials)} trials read\n")
    print(claims_markdown(verdicts, spec.name).split("\nHow the verdicts")[0])
    shown = _shown(rows)
    print("| trial | " + " | ".join(title for title, _ in shown) + " |")
    print("|---" * (len(shown) + 1) + "|")
    order = list(by_name)
    for name, phases in sorted(rows, key=lambda row: order.index(row[0])):
        print(f"| {name} | " + " | ".join(_cell(phases, key) for _, key in shown) + " |")
    return 0


def _replay_settled(run) -> tuple[int | None, int, str]:
    """(the step the rule first holds before the cap or None, the cap, why), from the run's
    metric histories in the store (its artifacts are not needed)."""
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


def _shown(rows: list[tuple[str, dict]]) -> list[tuple[str, str]]:
    """The trial table's (column title, phase key): the LC phases, the robustness onset over
    the mean of the eps and, where PGD ran at several eps, each eps's own, then generalization."""
    heads = sorted({k.split("/")[0] for _, phases in rows for k in phases
                    if k.startswith("grok_eps") and k.endswith("/robustness_onset_censored")},
                   key=lambda head: float(head.removeprefix("grok_eps")))
    per_eps = [(f"robustness_onset eps {h.removeprefix('grok_eps')}",
                f"{h}/robustness_onset") for h in heads]
    return [("lc_peak", "grok/lc_peak"), ("migration_onset", "grok/migration_onset"),
            ("robustness_onset" + (" (mean of eps)" if per_eps else ""),
             "grok/robustness_onset"), *per_eps, ("generalization", "grok/generalization")]


def _cell(phases: dict, name: str) -> str:
    key = f"{name}_step"
    if key in phases:
        return f"{phases[key]:,.0f} ({phases[key + '_low']:,.0f}-{phases[key + '_high']:,.0f})"
    if phases.get(f"{name}_censored") == 1.0:
        return f"> {phases.get(key + '_low', 0):,.0f}"
    return "-"


if __name__ == "__main__":
    sys.exit(main())
