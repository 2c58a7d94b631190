"""Command line: ``grok-mlflow train --width 200 --steps 1000 ...`` (also ``python -m grok_mlflow``).

Every ``Settings`` field is an option of ``train``, in groups (data, model, optimisation,
measurement, run): ``--train_size`` (``--train-size`` also works), booleans as flags
(``--batchnorm``, ``--no-batchnorm``, or ``--batchnorm false`` as the MLproject passes them). The
commands are one table (``COMMANDS``: name -> its arguments and what it runs); ``main`` has the
one error handler: a bad value prints one line naming it and exits with status 2 before any work
starts; Ctrl-C during training exits 130 (the run KILLED, a checkpoint kept), an unreachable
store or a diverged run exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, fields
from typing import Any, Callable

from .settings import DEVICE_NAMES, Settings, SettingsError

__all__ = ["COMMANDS", "main"]


# a boolean flag's other spelling takes an optional value (``--log-model`` or ``--log-model false``)
_OPTIONAL_VALUE: dict[str, Any] = {"nargs": "?", "const": "true"}

@dataclass(frozen=True)
class Command:
    """One ``grok-mlflow`` command: its help, its arguments and what it runs (returns the exit
    status; raises ``SettingsError`` for a bad value)."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], Any]
    run: Callable[[argparse.Namespace], int]
    description: str = ""
    interrupted: str = ""        # what Ctrl-C leaves behind (said on exit 130), if it matters


# ---------------------------------------------------------------------------------- train
# train's options in groups, as ``mlflow run``'s help reads: a group starts at its first field
# in the order of ``Settings`` (data, model, optimisation, measurement); RUN's fields say how
# the run itself goes, wherever they sit
_GROUP_STARTS = {"dataset": "data", "model": "model", "optimizer": "optimisation",
                 "eval_points": "measurement"}
_RUN = ("preset", "seed", "device", "dtype", "checkpoint_every_s", "tracking_retry_s",
        "log_model")


def _short(help_text: str) -> str:
    """A setting's help up to its first ';' (the rest, and every valid range, in
    docs/settings.md and in the one-line error a bad value gets)."""
    short = help_text.split("; ")[0]
    if short.count("(") > short.count(")"):      # the cut fell inside a parenthesis
        short = short[:short.rindex("(")].rstrip()
    return short


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per ``Settings`` field, in groups; ``--train_size`` is the spelling shown
    (``--train-size`` still works, unlisted); a boolean is a flag (``--batchnorm`` /
    ``--no-batchnorm``) that still takes ``true`` / ``false`` (the MLproject passes values)."""
    defaults = Settings().to_params()
    groups = {name: parser.add_argument_group(f"{name} options")
              for name in ("data", "model", "optimisation", "measurement", "run")}
    current = "run"
    for f in fields(Settings):
        current = _GROUP_STARTS.get(f.name, current)
        group = groups["run" if f.name in _RUN else current]
        text = f"{_short(f.metadata['help'])} [{defaults[f.name] or 'none'}]".replace("%", "%%")
        if f.type in (bool, "bool"):
            group.add_argument(f"--{f.name}", dest=f.name, default=None, nargs="?", const="true",
                               metavar="true|false", help=text)
            group.add_argument(f"--no-{f.name}", dest=f.name, action="store_const",
                               const="false", help=argparse.SUPPRESS)
        else:
            group.add_argument(f"--{f.name}", dest=f.name, default=None, metavar="VALUE",
                               help=text)
        if "_" in f.name:                                  # the other spelling, unlisted
            group.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None,
                               help=argparse.SUPPRESS,
                               **(_OPTIONAL_VALUE if f.type in (bool, "bool") else {}))
    run = groups["run"]
    run.add_argument("--experiment", default=None,
                     help="MLflow experiment for a new run (default: grok_mlflow)")
    run.add_argument("--run-name", default=None, help="MLflow run name")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--resume", default=None, metavar="RUN_ID",
                     help="continue this run from its last checkpoint, with its own settings")


def _tag_mlflow_run_as_resume(run_id: str) -> None:
    """Under ``mlflow run . -P resume=ID`` MLflow has opened a new run (MLFLOW_RUN_ID) before we
    start; the training continues in run ``ID``, and the new run only points to it."""
    opened = os.environ.get("MLFLOW_RUN_ID")
    if opened and opened != run_id:
        from .store.tracking_store import tag_run
        tag_run(opened, {"grok_mlflow.resumed_run": run_id,
                         "mlflow.note.content": f"Launcher of a resume: the training continued "
                                                f"in run {run_id}."})


def _train_settings(args: argparse.Namespace) -> Settings:
    """The settings of ``train``: the options given, or a resumed run's own."""
    from .runner.recorded import resume_settings

    values = {f.name: getattr(args, f.name) for f in fields(Settings)
              if getattr(args, f.name) is not None}
    if not args.resume:
        return Settings.from_strings(values)
    settings = resume_settings(args.resume)
    # `mlflow run . -P resume=ID` passes every parameter at its default: values equal to the
    # default or to the run's own are fine, others are refused
    own, default = settings.to_params(), Settings().to_params()
    given = Settings.from_strings(values).to_params()
    changed = [k for k in values if given[k] not in (own[k], default[k])]
    if changed:
        raise SettingsError("resume: a resumed run keeps its settings; drop "
                            + ", ".join(f"--{k}" for k in changed))
    _tag_mlflow_run_as_resume(args.resume)
    return settings


def _train(args: argparse.Namespace) -> int:
    from .runner.build import check_settings
    from .runner.training import train

    settings = _train_settings(args)
    check_settings(settings)
    # SettingsError from here on: found while loading the data, before any run starts; or an
    # image file that does not decode mid-run (the tracker marked the run FAILED, points kept)
    train(settings, experiment=args.experiment, run_name=args.run_name,
          progress=not args.no_progress, resume=args.resume)
    return 0


# ------------------------------------------------------------------------- recorded runs
def _device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=DEVICE_NAMES,
                        help="auto (cuda if available), cpu or cuda (default auto, as train's)")


def _figure_arguments(parser: argparse.ArgumentParser, where: str) -> None:
    """``--out`` (the figure also as a file; ``where``: where it always goes) and ``--device``."""
    parser.add_argument("--out", default=None, help=f"also save the PNG to this file ({where})")
    _device_argument(parser)


def _partition_arguments(part: argparse.ArgumentParser) -> None:
    part.add_argument("run_id", metavar="RUN_ID")
    part.add_argument("--step", type=int, default=None, help="snapshot step (default: the last)")
    part.add_argument("--resolution", type=int, default=None,
                      help="pixels per side (default: the run's partition_resolution)")
    _figure_arguments(part, "it always goes into the run, partition/redrawn_step_N.png")


def _partition(args: argparse.Namespace) -> int:
    from .runner.recorded import draw_partition

    path, metrics = draw_partition(args.run_id, args.step, args.resolution, args.out,
                                   args.device)
    print(f"{path}: " + ", ".join(f"{k} {v:g}" for k, v in metrics.items()))
    return 0


def _radius_arguments(rad: argparse.ArgumentParser) -> None:
    rad.add_argument("run_id", metavar="RUN_ID", nargs="?", default=None)
    rad.add_argument("--preset", default=None, help="a preset's network at initialisation "
                                                    "instead of a run's")
    rad.add_argument("--step", type=int, default=None,
                     help="a partition snapshot step (default: the run's last checkpoint)")
    rad.add_argument("--radii", default=None,
                     help="comma-separated radii (default 1e-4,3e-4,...,0.3,1)")
    rad.add_argument("--directions", default="5,10,25", help="P values for LC (default 5,10,25)")
    rad.add_argument("--points", type=int, default=200, help="training points (default 200)")
    rad.add_argument("--tolerance", type=float, default=0.1,
                     help="relative change of deformation still counted as unbent (default 0.1)")
    _figure_arguments(rad, "a run's goes into the run, radius/radius.png; a preset's default "
                           "radius_<preset>.png")


def _radius(args: argparse.Namespace) -> int:
    from .runner.recorded import choose_radius

    try:
        radii = [float(r) for r in args.radii.split(",")] if args.radii else None
        directions = [int(p) for p in args.directions.split(",")]
    except ValueError:
        raise SettingsError("radius: --radii are numbers and --directions integers, "
                            "comma-separated") from None
    if args.points < 1 or not args.tolerance > 0:
        raise SettingsError("radius: --points must be >= 1 and --tolerance > 0")
    study, path = choose_radius(args.run_id, args.preset, args.step, radii, directions,
                                args.points, args.tolerance, args.out, args.device)
    print(study.table() + f"\nRecommended lc_radius: {study.recommended:g} (figure: {path})")
    return 0


def _compare_arguments(cmp_: argparse.ArgumentParser) -> None:
    cmp_.add_argument("run_id", metavar="RUN_ID")
    cmp_.add_argument("--points", type=int, default=20, help="training points (default 20)")
    cmp_.add_argument("--resolution", type=int, default=64,
                      help="grid points per side of each square (default 64)")
    cmp_.add_argument("--radius", type=float, default=None,
                      help="half the square's side and LC's radius (default: the run's)")
    _figure_arguments(cmp_, "it always goes into the run, regions/compare.png")


def _compare_regions(args: argparse.Namespace) -> int:
    from .runner.recorded import compare_regions

    if args.points < 1 or args.resolution < 2 or (args.radius is not None
                                                   and not args.radius > 0):
        raise SettingsError("compare-regions: --points >= 1, --resolution >= 2, --radius > 0")
    rows, rho, path = compare_regions(args.run_id, args.points, args.resolution, args.radius,
                                      args.out, args.device)
    print("| step | mean regions (2-D square) | mean LC |\n|---|---|---|")
    for step, regions, lc in rows:
        print(f"| {step} | {regions:.4g} | {lc:.4g} |")
    print(f"\nSpearman rank correlation over {len(rows)} snapshots: {rho:.3f} (figure: {path})")
    return 0


def _boundary_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.add_argument("--steps", default=None, metavar="S1,S2",
                        help="partition snapshot steps (default: the last snapshot, or the last "
                             "checkpoint of a run without snapshots)")
    parser.add_argument("--points", type=int, default=20,
                        help="squares near the boundary, and as many away (default 20)")
    parser.add_argument("--resolution", type=int, default=64,
                        help="grid points per side of each square (default 64)")
    parser.add_argument("--radius", type=float, default=None,
                        help="half the square's side (default: the run's largest LC radius)")
    _device_argument(parser)


def _boundary_regions(args: argparse.Namespace) -> int:
    from .runner.recorded import boundary_regions

    if args.points < 1 or args.resolution < 2 or (args.radius is not None
                                                   and not args.radius > 0):
        raise SettingsError("boundary-regions: --points >= 1, --resolution >= 2, --radius > 0")
    try:
        steps = None if args.steps is None else [int(s) for s in args.steps.split(",")]
    except ValueError:
        raise SettingsError(f"boundary-regions: --steps takes whole steps separated by commas, "
                            f"got {args.steps!r}") from None
    _, table = boundary_regions(args.run_id, steps, args.points, args.radius, args.resolution,
                                args.device)
    print(table, end="")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .runner.recorded import run_report

    print(run_report(args.run_id), end="")
    return 0


# ------------------------------------------------------------------------ the rest
def _import(args: argparse.Namespace) -> int:
    from .store.tracking_store import import_metrics

    for path in args.files:
        try:
            count = import_metrics(path)
        except (OSError, ValueError, KeyError) as err:
            raise SettingsError(f"import {path}: {err}") from None
        print(f"{path}: {count} metric points written", file=sys.stderr)
    return 0


def _sweep_arguments(sweep: argparse.ArgumentParser) -> None:
    sweep.add_argument("spec", help="sweep spec YAML (see grok_mlflow/sweeps/spec.py)")
    sweep.add_argument("--ray-address", default=None,
                       help="existing Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    sweep.add_argument("--storage-path", default=None, help="Ray Tune results directory")
    sweep.add_argument("--verbose", action="store_true",
                       help="Ray's and Ray Tune's own output too (default: the live table only)")
    sweep.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS",
                       help="when stderr is not a terminal, print the table this often "
                            "(default 30)")
    sweep.add_argument("--experiment", default=None,
                       help="MLflow experiment (default: $MLFLOW_EXPERIMENT_NAME, else the "
                            "sweep's name)")
    sweep.add_argument("--resume", nargs="?", const="latest", default=None, metavar="RUN_ID",
                       help="continue the latest unfinished sweep of this spec (or that parent "
                            "run): finished trials stay, interrupted ones continue from their "
                            "checkpoints, the rest start")
    sweep.add_argument("--only", action="append", default=[], metavar="KEY=V1,V2",
                       help="run a batch of the grid: only these values of a swept setting "
                            "(repeatable); the batch is its own sweep NAME[KEY=...] in the "
                            "spec's experiment, resumed with the same --only")


def _sweep(args: argparse.Namespace) -> int:
    from .sweeps.sweep import main_sweep

    return main_sweep(args.spec, args.ray_address or None, args.storage_path, args.experiment,
                      args.verbose, args.progress_every, args.resume, args.only)


def _mlproject(args: argparse.Namespace) -> int:
    from .settings import render_mlproject

    print(render_mlproject(), end="")
    return 0


COMMANDS: dict[str, Command] = {
    "train": Command("train one network and track it in MLflow", _train_arguments, _train,
                     "Train one network and record it in MLflow. Defaults in brackets; every "
                     "setting's valid values: docs/settings.md.",
                     interrupted="the run is marked KILLED with every measured point and a "
                                 "checkpoint written (continue it with --resume RUN_ID)"),
    "mlproject": Command("print the MLproject file generated from the settings",
                         lambda p: None, _mlproject),
    "import": Command("write metrics saved while the tracking store was unreachable "
                      "(unsent_metrics_*.jsonl) into it",
                      lambda p: p.add_argument("files", nargs="+"), _import),
    "sweep": Command("run a Ray Tune sweep (projects/sweeps/*.yaml)", _sweep_arguments, _sweep,
                     "Run every trial of a sweep spec as MLflow child runs."),
    "partition": Command("draw a run's input-space partition slice (PNG)", _partition_arguments,
                         _partition, "Draw the partition on the plane through the run's three "
                                     "training points, from a stored snapshot's weights."),
    "radius": Command("choose LC's radius: LC and neighbourhood deformation over radii "
                      "(figure, table, recommendation)", _radius_arguments, _radius,
                      "For a recorded run's network (or a preset's at initialisation): LC for "
                      "several radii and P, the deformation of the neighbourhoods layer by "
                      "layer, and the largest radius they are not yet bent at."),
    "compare-regions": Command("LC next to exact local region counts over a run's snapshots "
                               "(paper fig. 26)", _compare_arguments, _compare_regions),
    "boundary-regions": Command("linear regions near the decision boundary and away from it "
                                "(paper fig. 17)", _boundary_arguments, _boundary_regions,
                                "Exact region counts in equal 2-D squares centred on points of "
                                "the decision boundary and on the training points farthest "
                                "from it, at a run's snapshot steps."),
    "report": Command("print what a recorded run showed (Markdown)",
                      lambda p: p.add_argument("run_id", metavar="RUN_ID"), _report,
                      "The paper's phases as a finished run shows them: seen or not, at which "
                      "step, from which value to which."),
}


class _Formatter(argparse.HelpFormatter):
    """Help with the option names in one column wide enough for ``--partition_resolution``."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("grok_mlflow")
    except PackageNotFoundError:            # run from a checkout that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grok-mlflow",
                                     description="Watch deep networks grok, in MLflow.")
    parser.add_argument("--version", action="version", version=f"grok-mlflow {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.arguments(sub.add_parser(name, help=command.help,
                                         description=command.description or None,
                                         usage=f"grok-mlflow {name} [OPTIONS]"
                                         if name == "train" else None,
                                         formatter_class=_Formatter))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # a command-line tool: no per-file download bars from MLflow (checkpoints, snapshots) unless
    # the user asks for them
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    command = COMMANDS[args.command]
    try:
        return command.run(args)
    except SettingsError as err:
        print(f"grok-mlflow: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if not command.interrupted:
            raise
        print(f"grok-mlflow: interrupted; {command.interrupted}", file=sys.stderr)
        return 130
    except RuntimeError as err:
        return _runtime_failure(err)


def _runtime_failure(err: RuntimeError) -> int:
    """Exit 1 for the failures a run records itself (an unreachable store: the tracker said
    where the metrics were saved; a diverged run: FAILED, its last good checkpoint kept)."""
    from .store.recorder import TrackingUnavailable
    from .tracker.run_log import DivergenceError

    if isinstance(err, DivergenceError):
        print(f"grok-mlflow: error: diverged: {err}; the run is marked FAILED, its last good "
              "checkpoint kept", file=sys.stderr)
        return 1
    if isinstance(err, TrackingUnavailable):
        return 1
    raise err


if __name__ == "__main__":
    sys.exit(main())
