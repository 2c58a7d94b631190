"""A sweep spec: what a sweep runs (read, checked, cut into batches and stacked groups).

A spec is YAML::

    name: width                      # optional; default: the file name
    base:                            # a preset and/or settings shared by every trial
      preset: projects/digits_region_migration.yaml
      steps: 3000
    grid:                            # setting -> values; the trials are the full product
      width: [50, 200, 800]
      seed: [0, 1]
    resources: {cpu: 1, gpu: 0}      # per trial (gpu may be a fraction)
    max_concurrent: 2                # trials at once (default: as many as resources allow)
    max_failures: 2                  # a trial that dies is restarted this often; it continues
                                     # its child run from the run's last checkpoint
    ensemble: auto                   # auto: trials that differ only in shape-keeping settings
                                     # (seed, lr, weight_decay, ...) train as one stacked model;
                                     # off: one process per trial
    max_members: 16                  # at most this many trials in one stacked group
    pending_timeout_s: 600           # an autoscaling cluster: resources no node has yet are a
                                     # warning, and a trial PENDING longer ends the sweep
                                     # (default 0: no autoscaler; refused before any run)
    claims:                          # the paper's claims, judged over the trials at the end
      - text: "Increasing width hastens region migration"
        figure: "5"
        quantity: grok/migration_onset_step
        trend: decreasing            # see grok_mlflow.findings.claims for every field and the rules

``load_spec`` reads and checks one (every problem one ``SettingsError`` naming the file, before any
run exists); ``select_trials`` cuts a batch (``--only``); ``SweepSpec.stack_groups`` the groups
that train as one stacked model. ``sweep.run_sweep`` runs it.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..findings.claims import parse_claims
from ..runner.stacking import stack_key
from ..settings import Settings, SettingsError, apply_values, load_preset, read_yaml

__all__ = ["SweepSpec", "format_value", "load_spec", "select_trials", "trial_name", "trial_steps"]


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep spec: base settings, the grid, per-trial resources, concurrency."""

    name: str
    base: Settings
    grid: dict[str, list[Any]]
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1.0, "gpu": 0.0})
    max_concurrent: int = 0
    max_failures: int = 2
    source: str = ""
    ensemble: str = "auto"
    max_members: int = 16
    claims: tuple = ()        # claims.Claim, judged at the end
    pending_timeout_s: float = 0.0   # > 0: an autoscaling cluster; a trial may wait this long
    only: str = ""            # a batch of the grid (``select_trials``): "dtype=float64;loss=mse"

    def trials(self) -> list[dict[str, Any]]:
        """Every combination of the grid, as {setting: value}, in spec order."""
        keys = list(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*self.grid.values())]

    def stack_groups(self, slots: int = 1) -> list[list[dict[str, Any]]]:
        """The trials in the groups that train together (``ensemble: auto``): same
        ``stacking.stack_key``, cut into groups of near-equal size in grid order, at most
        ``max_members`` each; while there are fewer than ``slots`` groups the largest are cut
        again, so that a machine that runs ``slots`` trials at once also runs that many groups
        at once (measuring goes member by member: two 1-CPU groups measure in parallel where
        one 2-CPU group would not). With ``ensemble: off`` every trial alone."""
        trials = self.trials()
        if self.ensemble == "off":
            return [[t] for t in trials]
        sets: dict[Any, list[int]] = {}
        for i, trial in enumerate(trials):
            key = stack_key(apply_values(self.base, trial))
            sets.setdefault(key if key is not None else ("alone", i), []).append(i)
        members = list(sets.values())
        parts = [-(-len(m) // self.max_members) for m in members]
        while sum(parts) < slots:                       # cut the largest groups again
            cuttable = [k for k, (m, p) in enumerate(zip(members, parts)) if p < len(m)]
            if not cuttable:
                break
            parts[max(cuttable, key=lambda k: len(members[k]) / parts[k])] += 1
        groups: list[list[int]] = []
        for m, p in zip(members, parts):
            size, extra = divmod(len(m), p)
            bounds = [j * size + min(j, extra) for j in range(p + 1)]
            groups += [m[a:b] for a, b in zip(bounds, bounds[1:])]
        return [[trials[i] for i in g] for g in sorted(groups)]


def select_trials(spec: SweepSpec, only: list[str]) -> SweepSpec:
    """The batch of ``spec`` that ``--only KEY=V1,V2`` (repeatable) names: each named swept
    setting narrowed to those of its values, in the spec's order. The batch is its own sweep,
    ``NAME[KEY=V1,V2;...]``, in the spec's experiment, so that a long spec runs in batches
    (one per session) and each batch resumes with the same ``--only``. ``SettingsError`` in
    one line for a setting that is not swept or a value that is not in its list."""
    if not only:
        return spec
    grid = dict(spec.grid)
    for item in only:
        key, sep, text = item.partition("=")
        if not sep or key not in spec.grid:
            raise SettingsError(f"--only {item!r}: must be KEY=VALUE[,VALUE...] with KEY a swept "
                                f"setting: {', '.join(spec.grid)}")
        known = {format_value(v): v for v in spec.grid[key]}
        wanted = [v.strip() for v in text.split(",")]
        missing = [v for v in wanted if v not in known]
        if missing:
            raise SettingsError(f"--only {item!r}: {', '.join(missing)} not in the grid's {key} "
                                f"values: {', '.join(known)}")
        grid[key] = [v for v in spec.grid[key] if format_value(v) in wanted]
    label = ";".join(f"{k}={format_value(v)}" for k, v in grid.items() if v != spec.grid[k])
    return dataclasses.replace(spec, name=f"{spec.name}[{label}]", grid=grid, only=label)


def trial_name(overrides: dict[str, Any]) -> str:
    """``width=200,depth=4``: the varied settings of one trial."""
    return ",".join(f"{k}={format_value(v)}" for k, v in overrides.items())


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(format_value(v) for v in value)
    return str(value)


def load_spec(path: str) -> SweepSpec:
    """Read and validate a spec file; any problem raises ``SettingsError`` naming the file."""
    data = read_yaml(path, "spec")
    if not isinstance(data, dict) or not isinstance(data.get("grid"), dict) or not data["grid"]:
        raise SettingsError(f"spec {path}: needs a 'grid:' mapping of setting -> list of values")
    unknown = sorted(set(data) - {"name", "base", "grid", "resources", "max_concurrent",
                                  "max_failures", "ensemble", "max_members", "claims", "stop",
                                  "pending_timeout_s"})
    if unknown:
        raise SettingsError(f"spec {path}: unknown key(s) {', '.join(unknown)}; valid: name, "
                            "base, grid, resources, max_concurrent, max_failures, ensemble, "
                            "max_members, claims, stop, pending_timeout_s")
    base_values = data.get("base") or {}
    if not isinstance(base_values, dict):
        raise SettingsError(f"spec {path}: 'base:' must be a mapping of setting: value")
    base_values = {**dict(base_values), **_stop_values(data.get("stop"), path)}
    preset = base_values.pop("preset", "")
    try:
        base = load_preset(preset) if preset else Settings()
        base = apply_values(base, base_values)
        grid = {}
        for key, values in data["grid"].items():
            if not isinstance(values, list) or not values:
                raise SettingsError(f"grid.{key}: must be a non-empty list")
            grid[key] = values
            for value in values:                     # every grid value must make valid settings
                apply_values(base, {key: value})
    except SettingsError as err:
        raise SettingsError(f"spec {path}: {err}") from None
    options = _spec_options(data, path)
    try:
        claims = tuple(parse_claims(data.get("claims"), grid))
    except SettingsError as err:
        raise SettingsError(f"spec {path}: {err}") from None
    return SweepSpec(name=str(data.get("name") or Path(path).stem), base=base, grid=grid,
                     source=str(path), claims=claims, **options)


def _spec_options(data: dict[str, Any], path: str) -> dict[str, Any]:
    """The spec's run options (resources, concurrency, failures, stacking, pending timeout) as
    ``SweepSpec`` fields, each checked: ``SettingsError`` naming the file and the key."""
    resources = {"cpu": 1.0, "gpu": 0.0, **(data.get("resources") or {})}
    if set(resources) - {"cpu", "gpu"} or any(
            not isinstance(v, (int, float)) or v < 0 for v in resources.values()):
        raise SettingsError(f"spec {path}: resources must be {{cpu: >= 0, gpu: >= 0}}")
    max_concurrent = data.get("max_concurrent", 0)
    if not isinstance(max_concurrent, int) or max_concurrent < 0:
        raise SettingsError(f"spec {path}: max_concurrent must be an integer >= 0")
    max_failures = data.get("max_failures", 2)
    if not isinstance(max_failures, int) or max_failures < 0:
        raise SettingsError(f"spec {path}: max_failures must be an integer >= 0")
    ensemble = data.get("ensemble", "auto")
    if ensemble is False:            # YAML reads a bare `off` as false
        ensemble = "off"
    if ensemble not in ("auto", "off"):
        raise SettingsError(f"spec {path}: ensemble must be auto or off, got {ensemble!r}")
    max_members = data.get("max_members", 16)
    if isinstance(max_members, bool) or not isinstance(max_members, int) or max_members < 1:
        raise SettingsError(f"spec {path}: max_members must be an integer >= 1")
    pending = data.get("pending_timeout_s", 0)
    if isinstance(pending, bool) or not isinstance(pending, (int, float)) or pending < 0:
        raise SettingsError(f"spec {path}: pending_timeout_s must be a number of seconds >= 0")
    return dict(resources={k: float(v) for k, v in resources.items()},
                max_concurrent=max_concurrent, max_failures=max_failures, ensemble=ensemble,
                max_members=max_members, pending_timeout_s=float(pending))


def _stop_values(stop: Any, path: str) -> dict[str, Any]:
    """``stop: settled`` or ``stop: {rule: settled, min_steps: N}`` as settings: every trial
    trains ``until: settled`` (``grok_mlflow.tracker.stopping``), ``steps`` its cap."""
    if stop is None:
        return {}
    rule, rest = (stop, {}) if isinstance(stop, str) else (
        (stop.get("rule"), {k: v for k, v in stop.items() if k != "rule"})
        if isinstance(stop, dict) else (None, {}))
    if rule != "settled" or set(rest) - {"min_steps"}:
        raise SettingsError(f"spec {path}: stop must be settled or {{rule: settled, min_steps: "
                            f"N}}; got {stop!r}")
    return {"until": "settled", **rest}


def trial_steps(spec: SweepSpec, overrides: dict[str, Any]) -> int:
    """A trial's total steps (``steps`` may be on the grid)."""
    return int(overrides.get("steps", spec.base.steps))
