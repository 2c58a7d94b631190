"""Recorded runs: what the ``grok-mlflow`` commands do with a run that has finished (or stopped).

Everything starts from one way to rebuild a run, ``RecordedRun.load``: its ``config.json``'s
settings rebuild its data and its model exactly as training built them (``build``), and
``weights_at`` puts the weights of a step into the model (the last checkpoint, or a partition
snapshot). On that: ``run_report`` (the report of a run or a sweep), ``resume_settings``,
``draw_partition``, ``choose_radius``, ``compare_regions`` and ``boundary_regions``.

Example:
    run = RecordedRun.load(run_id, "partition")        # SettingsError for an unknown run
    step = run.weights_at(None)                          # the last snapshot, loaded
    x = run.points(20)                                   # 20 seeded training inputs
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ..findings.history import read_history_csv
from ..findings.plots import history_figure, partition_figure, radius_figure, regions_figure
from ..findings.report import report_markdown, reproduction_report
from ..findings.statistics import mean_with_interval, ratio_of_means
from ..measures.complexity import local_complexity
from ..measures.network import input_module_of
from ..measures.partition import partition_slice
from ..measures.radius import DEFAULT_RADII, radius_study
from ..measures.regions import local_region_count, rank_correlation, regions_near_and_away
from ..measures.tasks import measured_model
from ..settings import Settings, SettingsError, TrackerSettings, load_preset
from ..store.reading import (
    load_checkpoint,
    load_logged_model,
    load_recorded_points,
    load_snapshot_weights,
    run_artifact_text,
    run_config,
    run_tags,
    snapshot_steps,
)
from ..store.tracking_store import log_run_figure, log_run_text, tracking_uri
from .build import check_settings, data_and_model, resolve_device
from .data import DataSplits

__all__ = ["RecordedRun", "boundary_regions", "choose_radius", "compare_regions", "draw_partition",
           "plot", "resume_settings", "run_report"]


class RecordedPoints:
    """The points a tracked run recorded (``starting.analysis_points``), where a ``train`` run
    has its rebuilt ``DataSplits``: ``x_train``, ``partition_x``, ``partition_labels``,
    ``tokens``."""

    def __init__(self, points: Mapping[str, Tensor], x: Tensor) -> None:
        self.x_train, self.partition_x = x, points["partition_x"]
        self.partition_labels = points["partition_labels"].tolist()
        self.tokens = not x.is_floating_point()


def _config_settings(config: Mapping[str, Any]) -> Settings:
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                              for k, v in config["settings"].items()}
    return Settings(**values)


def resume_settings(run_id: str) -> Settings:
    """The settings a run was started with (its ``config.json``)."""
    return _config_settings(run_config(run_id, "resume"))


@dataclass
class RecordedRun:
    """A recorded run rebuilt: its config, settings (on the chosen device), data (on the CPU) and
    model (on the device, as initialised from the run's seed until ``weights_at`` loads a step).

    Attributes:
        run_id: the MLflow run (None: a preset's network at initialisation).
        command: the command that asked (it names errors, e.g. ``partition: ...``).
    """

    run_id: str | None
    command: str
    config: dict
    settings: Settings | TrackerSettings
    data: DataSplits | "RecordedPoints"
    model: nn.Module
    base: nn.Module | None = None       # the module the stored weights load into (else model)

    @classmethod
    def load(cls, run_id: str, command: str, device: str = "auto") -> "RecordedRun":
        """Rebuild ``run_id``: a ``train`` run from its settings (data and model exactly as
        training built them); any other tracked run (your own loop, Lightning, the Hugging Face
        Trainer, DDP, a stacked member) from its logged model and the points it recorded
        (``analysis/points.pt``). ``SettingsError`` in one line for an unknown run, or for what
        cannot be had (no logged model, a model class this process cannot import, no points)."""
        config = run_config(run_id, command)
        if "settings" not in config:
            return cls._from_tracker(run_id, command, config, device)
        return cls._build(run_id, command, config,
                          dataclasses.replace(_config_settings(config), device=device))

    @classmethod
    def _from_tracker(cls, run_id: str, command: str, config: dict,
                      device: str) -> "RecordedRun":
        where = f"{command}: run {run_id}"
        resolved = resolve_device(device)
        try:
            points = load_recorded_points(run_id)
        except Exception:  # noqa: BLE001 - a run recorded before the points were
            raise SettingsError(f"{where} has no recorded points (analysis/points.pt: runs "
                                "tracked by grok_mlflow 0.1 after issue 42 record them); use "
                                "radius_study(model, x) / local_region_count(model, x, "
                                "radius=...) with your model and data") from None
        try:
            base = load_logged_model(run_id, resolved)
        except Exception as err:  # noqa: BLE001 - no model logged, or its class not importable
            raise SettingsError(f"{where}: its model cannot be loaded here ({type(err).__name__}:"
                                f" {str(err).splitlines()[0][:120]}); it needs log_model=True "
                                "and the model's class importable in this process, or in Python "
                                "with your model: RecordedRun.from_run(run_id, model) and "
                                "draw_partition / choose_radius / compare_regions on it") from None
        return cls._tracked(run_id, command, config, points, base, resolved)

    @property
    def resolution(self) -> int:
        """The resolution of the run's snapshots: as its tracker resolved it (0 in the settings
        = sized to the model at the start; runs before that recorded 512 or their value)."""
        chosen = self.config.get("tracker_settings", {}).get("partition_resolution")
        return int(chosen or self.settings.partition_resolution or 512)

    @classmethod
    def _tracked(cls, run_id, command, config, points, base, device) -> "RecordedRun":
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in config["tracker_settings"].items()}
        settings = TrackerSettings(**values)
        x, y = points["train_x"].to(device), points["train_y"].to(device)
        output = config.get("analysis", {}).get("output")
        net = measured_model(base, x[:8], y[:8], config.get("task"), output).net
        return cls(run_id, command, config, settings, RecordedPoints(points, x), net, base)

    @classmethod
    def from_run(cls, run_id: str, model: nn.Module, data: tuple[Tensor, Tensor] | None = None,
                 command: str = "analysis") -> "RecordedRun":
        """A tracked run rebuilt around ``model`` (your module, built as in your script: a run
        logged without its model, or whose class this process cannot import from the store):
        its weights come from the run's snapshots (``weights_at``), the points from ``data``
        ((x, y) tensors) or else those the run recorded. Pass the result to
        ``draw_partition``, ``choose_radius`` or ``compare_regions`` in place of a run id.

        Example:
            study, png = choose_radius(RecordedRun.from_run(run_id, MyNet()))
        """
        config = run_config(run_id, command)
        if "settings" in config:
            raise SettingsError(f"{command}: run {run_id} was trained by grok_mlflow's train: "
                                "RecordedRun.load(run_id, ...) rebuilds it from its settings")
        device = next(model.parameters()).device
        if data is None:
            try:
                points = load_recorded_points(run_id)
            except Exception:  # noqa: BLE001 - a run recorded before the points were
                raise SettingsError(f"{command}: run {run_id} has no recorded points; pass "
                                    "data=(x, y)") from None
        else:
            x, y = data
            points = {"train_x": x, "train_y": y, "partition_x": x[:3], "partition_labels": y[:3]}
            try:
                recorded = load_recorded_points(run_id)
                points.update(partition_x=recorded["partition_x"],
                              partition_labels=recorded["partition_labels"])
            except Exception:  # noqa: BLE001 - none recorded: the first three of ``data``
                pass
        return cls._tracked(run_id, command, config, points, model, device)

    @classmethod
    def from_preset(cls, preset: str, command: str, device: str = "auto") -> "RecordedRun":
        """A preset's network at initialisation, as its run would start."""
        settings = dataclasses.replace(load_preset(preset), device=device)
        return cls._build(None, command, {}, settings)

    @classmethod
    def _build(cls, run_id, command, config, settings) -> "RecordedRun":
        data, model = data_and_model(settings, check_settings(settings), torch.device("cpu"))
        return cls(run_id, command, config, settings, data, model)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def input_module(self) -> str | None:
        """LC's input module (the embedding of a token model), or None for the input itself."""
        return input_module_of(self.model, self.settings.lc_input) or None

    @property
    def stored_id(self) -> str:
        """The run's id; ``SettingsError`` for a preset's network, which has no run."""
        if self.run_id is None:
            raise SettingsError(f"{self.command}: a preset's network at initialisation has no "
                                "recorded run to read")
        return self.run_id

    def snapshot_steps(self) -> list[int]:
        return snapshot_steps(self.stored_id)

    def weights_at(self, step: int | None, checkpoint: bool = False) -> int:
        """Load the weights of the partition snapshot at ``step`` (default the last), or with
        ``checkpoint`` and no ``step`` those of the last checkpoint when there is one; returns
        the step loaded. ``SettingsError`` listing the snapshot steps when there is none at
        ``step``."""
        if checkpoint and step is None:
            state = load_checkpoint(self.stored_id, self.device)
            if state is not None and self.base is None:
                self.model.load_state_dict(state["model"])
                return int(state["step"])
            if self.base is not None:       # a tracker run: its logged model is the last state
                return int(self.config.get("schedule", {}).get("eval_steps", [0])[-1])
        steps = self.snapshot_steps()
        if step is None and not steps:
            raise SettingsError(f"{self.command}: run {self.run_id} has neither a checkpoint "
                                "nor a partition snapshot to take weights from" if checkpoint
                                else f"{self.command}: run {self.run_id} has no partition "
                                "snapshots (it was trained with partition_every 0)")
        step = steps[-1] if step is None else step
        if step not in steps:
            raise SettingsError(f"{self.command}: run {self.run_id} has no snapshot at step "
                                f"{step}; snapshot steps: {', '.join(map(str, steps)) or 'none'}")
        (self.base or self.model).load_state_dict(load_snapshot_weights(self.stored_id, step))
        return step

    def partition_points(self) -> tuple[Tensor, list]:
        """The partition plane's three points and their labels."""
        if isinstance(self.data, RecordedPoints):
            return self.data.partition_x.to(self.device), self.data.partition_labels
        points = self.config["partition_points"]
        return self.data.x_train[points["train_index"]], points["labels"]

    def points(self, n: int) -> Tensor:
        """``n`` training inputs drawn with the run's seed + 1, on the model's device."""
        gen = torch.Generator().manual_seed(self.settings.seed + 1)
        index = torch.randperm(len(self.data.x_train), generator=gen)[:n]
        return self.data.x_train[index].to(self.device)


def _recorded(run: "str | RecordedRun", command: str, device: str) -> RecordedRun:
    """A run id rebuilt (``RecordedRun.load``), or a ``RecordedRun`` (``from_run``) as it is."""
    if isinstance(run, RecordedRun):
        return run
    return RecordedRun.load(run, command, device)


def _save(fig, out: str | None, run_id: str | None = None, artifact: str = "") -> str:
    """Log ``fig`` into run ``run_id`` as ``artifact`` and/or save it to the file ``out``
    (never a file nobody asked for: without ``out`` a run's figure goes into the run only);
    return where it went (the file, else ``runs:/RUN_ID/artifact``)."""
    if out is not None:
        fig.savefig(out, dpi=100)
    if run_id is not None:
        log_run_figure(run_id, fig, artifact)
    return out if out is not None else f"runs:/{run_id}/{artifact}"


def draw_partition(run_id: str, step: int | None = None, resolution: int | None = None,
                   out: str | None = None, device: str = "auto") -> tuple[str, dict[str, float]]:
    """Draw the partition slice of a recorded run at one of its snapshot steps.

    The run's own settings, data subset and three partition points (``config.json``) rebuild
    the model; its weights come from ``partition/weights/step_*.pt`` (stored with every
    snapshot when ``partition_every`` > 0).

    Args:
        run_id: an MLflow run recorded by grok_mlflow, in the current tracking store (or a
            ``RecordedRun``: ``RecordedRun.from_run(run_id, your_model)``).
        step: a snapshot step; default the last one.
        resolution: pixels per side; default the run's snapshots' (``partition_resolution`` as
            the run resolved it).
        out: PNG path; default ``partition_<run_id>_step<step>.png``.
        device: where to compute (cpu, cuda, auto).
    Returns:
        (PNG path, ``partition/*`` metric values).
    Raises:
        SettingsError: unknown run, a run without snapshots, or a step it has none for (the
            message lists the available steps).
    """
    run = _recorded(run_id, "partition", device)
    run_id = run.run_id or run_id
    if not run.config.get("partition_points"):
        raise SettingsError(f"partition: run {run_id} has no partition snapshots "
                            "(it was trained with partition_every 0)")
    step = run.weights_at(step)
    plane, labels = run.partition_points()
    part = partition_slice(run.model, plane,
                           resolution=resolution or run.resolution,
                           seed=run.settings.seed, input_module=run.input_module)
    fig = partition_figure(part, labels, f"run {run_id[:8]}, step {step}")
    return _save(fig, out, run_id, f"partition/redrawn_step_{step}.png"), part.metrics()


def choose_radius(run_id: str | None = None, preset: str | None = None, step: int | None = None,
                  radii=None, directions=(5, 10, 25), points: int = 200, tolerance: float = 0.1,
                  out: str | None = None, device: str = "auto"):
    """``grok-mlflow radius``: LC and deformation over radii for a recorded run's network (its
    last checkpoint, or its partition snapshot at ``step``) or a preset's network at
    initialisation; a figure, a table and the recommended radius (``radius.radius_study``).

    With ``run_id`` the figure and table are also logged into that run
    (``radius/radius.png``, ``radius/radius.md``).

    Returns:
        (RadiusStudy, PNG path).
    Raises:
        SettingsError: neither or both of run_id/preset, an unknown run, a step without a
            snapshot (the message lists them), bad radii/directions.
    """
    if (run_id is None) == (preset is None):
        raise SettingsError("radius: give a RUN_ID or --preset FILE (one of them)")
    if run_id is not None:
        run = _recorded(run_id, "radius", device)
        run_id = run.run_id or run_id
        what = f"run {run_id[:8]}, step {run.weights_at(step, checkpoint=True)}"
        name = run_id
    else:
        assert preset is not None            # one of the two, checked above
        run = RecordedRun.from_preset(preset, "radius", device)
        what = f"{os.path.basename(preset)} at initialisation"
        name = os.path.splitext(os.path.basename(preset))[0]
    try:
        study = radius_study(run.model, run.points(points), radii=radii or DEFAULT_RADII,
                             directions=directions, seed=run.settings.seed, tolerance=tolerance,
                             input_module=run.input_module)
    except ValueError as err:
        raise SettingsError(f"radius: {err}") from None
    out = _save(radius_figure(study, what),
                out if out is not None or run_id is not None else f"radius_{name}.png", run_id,
                "radius/radius.png")
    if run_id is not None:
        log_run_text(run_id, f"### Choosing LC's radius: {what}\n\n{study.table()}",
                     "radius/radius.md")
    return study, out


def compare_regions(run_id: str, points: int = 20, resolution: int = 64,
                    radius: float | None = None, out: str | None = None, device: str = "auto"):
    """``grok-mlflow compare-regions``: LC next to exact region counts (paper fig. 26).

    At every partition snapshot of the run (its stored weights): mean LC of ``points`` seeded
    training points (the run's radius and P, unless ``radius`` is given) and the mean number of
    linear regions in the 2-D square of side 2r around each of them
    (``regions.local_region_count``); both trajectories on one figure and their Spearman rank
    correlation, logged into the run (``regions/compare.png``, ``regions/compare.csv``).

    Returns:
        (rows [(step, mean regions, mean LC)], rank correlation, PNG path).
    """
    run = _recorded(run_id, "compare-regions", device)
    run_id = run.run_id or run_id
    steps = run.snapshot_steps()
    if len(steps) < 2:
        raise SettingsError(f"compare-regions: run {run_id} has {len(steps)} partition "
                            "snapshot(s); it needs two or more (train with partition_every > 0)")
    if run.data.tokens:
        raise SettingsError("compare-regions: counts regions in input space; token models "
                            "are not supported")
    r, seed = radius or run.settings.lc_radius[0], run.settings.seed
    x = run.points(points)
    rows = []
    for step in steps:
        run.weights_at(step)
        regions = local_region_count(run.model, x, radius=r, resolution=resolution,
                                     seed=seed).double().mean().item()
        lc = local_complexity(run.model, x, radius=r, n_directions=run.settings.lc_directions,
                              seed=seed).mean().item()
        rows.append((step, regions, lc))
    rho = rank_correlation(torch.tensor([row[1] for row in rows]),
                           torch.tensor([row[2] for row in rows]))
    fig = regions_figure(rows, rho, f"run {run_id[:8]}: r = {r:g}, {points} points, "
                                    f"{resolution}x{resolution} grid")
    out = _save(fig, out, run_id, "regions/compare.png")
    table = "step,mean_regions,mean_lc\n" + "".join(f"{s},{g:.6g},{c:.6g}\n" for s, g, c in rows)
    log_run_text(run_id, table + f"# spearman,{rho:.6g}\n", "regions/compare.csv")
    return rows, rho, out


@dataclass(frozen=True)
class NearAndAwayRow:
    """One step of ``boundary_regions``: mean region counts near the boundary and away from it
    with their 95% bootstrap intervals, their ratio, and how many squares of each."""

    step: int
    near: float
    near_interval: tuple[float, float] | None
    away: float
    away_interval: tuple[float, float] | None
    ratio: float
    ratio_interval: tuple[float, float] | None
    squares: int


def boundary_regions(run: "str | RecordedRun", steps: list[int] | None = None, points: int = 20,
                     radius: float | None = None, resolution: int = 64,
                     device: str = "auto") -> tuple[list[NearAndAwayRow], str]:
    """``grok-mlflow boundary-regions``: the paper's fig. 17 as numbers.

    At each of ``steps`` (partition snapshots; default the last snapshot, or the last
    checkpoint when the run has none): exact linear-region counts
    (``regions.regions_near_and_away``) in squares of side 2r (r: ``radius``, default the
    run's largest LC radius) centred on ``points`` points of the decision boundary, bisected
    between seeded pairs of test points (training points for a tracker run, which records
    only those) of different predicted classes, and on as many training points farthest from
    the boundary. Logged into the run as ``regions/boundary.md`` and ``regions/boundary.csv``.

    Returns:
        (one ``NearAndAwayRow`` per step, the Markdown table).
    """
    run = _recorded(run, "boundary-regions", device)
    if run.data.tokens:
        raise SettingsError("boundary-regions: counts regions in input space; token models "
                            "are not supported")
    r = radius or max(run.settings.lc_radius)
    pool = getattr(run.data, "x_test", run.data.x_train)
    gen = torch.Generator().manual_seed(run.settings.seed + 2)
    pairs = pool[torch.randperm(len(pool), generator=gen)[:16 * points]].to(run.device)
    half = len(pairs) // 2
    with torch.no_grad():
        if run.model(pairs[:2]).shape[-1] < 2:
            raise SettingsError("boundary-regions: the model has one output; it needs a "
                                "classifier's logits (>= 2 classes)")
    rows, candidates = [], run.points(8 * points)      # the same seeded points at every step
    for step in [None] if steps is None else list(steps):
        step = run.weights_at(step, checkpoint=step is None and not run.snapshot_steps())
        found = regions_near_and_away(run.model, pairs[:half], pairs[half:2 * half],
                                      candidates, radius=r, points=points,
                                      resolution=resolution, seed=run.settings.seed)
        if not len(found.near):
            raise SettingsError(f"boundary-regions: at step {step} no pair of points changes "
                                "class: there is no decision boundary between them")
        near, away = found.near.double().numpy(), found.away.double().numpy()
        rows.append(NearAndAwayRow(step, *mean_with_interval(near), *mean_with_interval(away),
                                   *ratio_of_means(near, away), len(near)))
    table = _near_and_away_table(rows, r, resolution)
    if run.run_id is not None:
        log_run_text(run.run_id, table, "regions/boundary.md")
        log_run_text(run.run_id, "step,squares,near,away,ratio\n" + "".join(
            f"{w.step},{w.squares},{w.near:.6g},{w.away:.6g},{w.ratio:.6g}\n" for w in rows),
            "regions/boundary.csv")
    return rows, table


def _near_and_away_table(rows: list[NearAndAwayRow], radius: float, resolution: int) -> str:
    def cell(value: float, interval: tuple[float, float] | None) -> str:
        return f"{value:.4g} " + (f"[{interval[0]:.4g}, {interval[1]:.4g}]" if interval else "")

    lines = [f"Linear regions in squares of side {2 * radius:g} ({resolution}x{resolution} grid), "
             "mean [95% bootstrap interval]:", "",
             "| step | squares of each | near the boundary | away from it | near / away |",
             "|---|---|---|---|---|"]
    lines += [f"| {w.step} | {w.squares} | {cell(w.near, w.near_interval)} | "
              f"{cell(w.away, w.away_interval)} | {cell(w.ratio, w.ratio_interval)} |"
              for w in rows]
    return "\n".join(lines) + "\n"


def _sweep_report(run_id: str) -> str:
    """A sweep parent's verdicts on its claims and its per-trial table (``claims.md``,
    ``report.md``), or "" when ``run_id`` has neither."""
    parts = []
    for name in ("claims.md", "report.md"):
        try:
            parts.append(run_artifact_text(run_id, name))
        except Exception:  # noqa: BLE001 - not a sweep parent, or a sweep without claims
            continue
    return "\n".join(parts)


def plot(run, title: str | None = None):
    """The figure of a recorded run or of a tracker: ``run`` a run id (its ``history.csv``,
    from the current tracking store) or anything with a ``history`` (a ``GrokTracker``). A
    ``matplotlib.figure.Figure`` drawn without pyplot (a notebook shows it as a cell's value
    and keeps its own backend); ``SettingsError`` naming a run without a history.

    Example:
        grok_mlflow.plot(tracker.run_id)       # or grok_mlflow.plot(tracker)
    """
    if isinstance(run, str):
        try:
            history = read_history_csv(run_artifact_text(run, "history.csv"))
        except Exception as err:  # noqa: BLE001 - unknown run, or a run with no measurements
            raise SettingsError(f"plot: no grok_mlflow history for run {run!r} in "
                                f"{tracking_uri()} ({type(err).__name__})") from None
        title = run_tags(run).get("mlflow.runName", run) if title is None else title
    else:
        history = run.history
    return history_figure(history, title=title or "")


def run_report(run_id: str, expected: Mapping[str, str] | None = None) -> str:
    """The report (``grok_mlflow.findings.report``) of a recorded run, from its ``history.csv``
    (``expected``: {phase: claim} for an extra column); ``SettingsError`` naming the run when it
    has no history."""
    try:
        history = read_history_csv(run_artifact_text(run_id, "history.csv"))
    except Exception as err:  # noqa: BLE001 - unknown run, or a run with no measurements
        sweep = _sweep_report(run_id)
        if sweep:
            return sweep
        raise SettingsError(f"report: no grok_mlflow history for run {run_id!r} in "
                            f"{tracking_uri()} ({type(err).__name__})") from None
    tags = run_tags(run_id)
    return report_markdown(reproduction_report(history),
                           title=tags.get("mlflow.runName", run_id), expected=expected,
                           stopped=tags.get("grok_mlflow.stop_note", ""))

