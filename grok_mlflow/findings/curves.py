"""A measured curve as the phases read it: the noise rule, smoothing, the steps between
measurements, and whether a curve still moves at its end.

**The noise rule** (``NoiseRule``). A rise or fall of a curve between two measurements i and j is a
phase only when it is

- *resolved*: larger than ``z`` (2) times its noise, sqrt(se_i^2 + se_j^2 + 2 jitter^2). se is the
  sampling error of one measurement, read off the logged 99% interval (``ci_low``, ``ci_high``);
  the same points are measured at every step, so this overstates the noise of a change (the
  per-point differences are what vary): the rule errs towards "flat". jitter is the curve's
  step-to-step scatter, 1.4826 x the median absolute deviation of its second differences / sqrt(6)
  (robust to a few real kinks; 0 for a smooth curve);
- *material*: at least ``material`` (10%) of the curve's level, max(|value_i|, |value_j|) (LC),
  or ``adv_rise`` (0.05) absolute (accuracies).

A curve that never changes by that much is *flat within its noise*: no phase is logged.

**Phase steps between measurements.** Each step is estimated on the log-step axis (log(1 +
step)) between the measurements around it: a threshold crossing is interpolated linearly between
the last measurement before it and the first after; a peak or minimum is the vertex of the
parabola through it and its two neighbours. Each is logged with its bracket, the measured steps
on either side: ``grok/<name>_step_low`` and ``grok/<name>_step_high``. Any difference of steps
within the brackets is below the measurement grid's resolution.

A phase that does not happen is absent from the result, never zero. Smoothing is a centred moving
average over ``window`` consecutive measurements (the schedule is log-spaced, so this is a window of
constant width on the paper's log-step axis).

``moving_at_end`` (the trend test over the last stretch of the log-step axis) decides whether a
curve still moves: a phase under way is censored (``phases.censor``), a run still moving has not
settled (``phases.settled``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import linregress, median_abs_deviation

__all__ = ["Curve", "EndTrend", "NoiseRule", "Step", "Z99", "curve", "curve_of", "jitter",
           "moving_at_end", "series", "smooth"]

Z99 = 2.5758293035489004           # the logged intervals are 99% normal intervals (measure.py)


@dataclass(frozen=True)
class NoiseRule:
    """When a change of a curve counts as a phase (see the module docstring).

    Attributes:
        z: a change must exceed ``z`` times its noise (resolved).
        material: LC: a change must be at least this fraction of the curve's level.
        adv_rise: adversarial accuracy: a rise must be at least this much (absolute).
        acc_material: clean accuracy still moving at the end: at least this much (absolute).
        span: the last stretch of the log-step axis that decides whether a curve is still
            moving at the end: this fraction of log(1 + last step) (0.1: the last tenth).
        alpha: the level of the trend test over that stretch.
    """

    z: float = 2.0
    material: float = 0.10
    adv_rise: float = 0.05
    acc_material: float = 0.02
    span: float = 0.1
    alpha: float = 0.05


@dataclass(frozen=True)
class Step:
    """A phase step estimated between measurements: ``estimate`` in the bracket [low, high]
    (the measured steps on either side); ``index`` the measurement the grid rule picked."""

    estimate: int
    low: int
    high: int
    index: int

    def text(self) -> str:
        """``estimate (low-high)``, or the step alone when it was measured exactly."""
        return (f"{self.estimate:,}" if self.low == self.high
                else f"{self.estimate:,} ({self.low:,}-{self.high:,})")


@dataclass(frozen=True)
class Curve:
    """One measured curve: steps, raw and smoothed values, each measurement's sampling error
    ``se`` (0 where no interval was logged) and the step-to-step ``jitter``."""

    steps: np.ndarray
    values: np.ndarray
    smoothed: np.ndarray
    se: np.ndarray
    jitter: float

    @property
    def x(self) -> np.ndarray:
        """The log-step axis: log(1 + step)."""
        return np.log1p(self.steps.astype(float))

    def noise(self, i: int, j: int) -> float:
        """The noise of the change between measurements i and j."""
        return float(np.sqrt(self.se[i] ** 2 + self.se[j] ** 2 + 2 * self.jitter ** 2))

    def counts(self, i: int, j: int, rule: NoiseRule, *, absolute: float | None = None) -> bool:
        """Whether the smoothed change from i to j is resolved and material (``absolute``: the
        material size for an accuracy; else ``rule.material`` of the level)."""
        change = abs(float(self.smoothed[j] - self.smoothed[i]))
        level = max(abs(float(self.smoothed[i])), abs(float(self.smoothed[j])))
        size = absolute if absolute is not None else rule.material * level
        return change > rule.z * self.noise(i, j) and change >= size

    def crossing(self, k: int, level: float) -> Step:
        """The step where the smoothed curve crosses ``level`` between measurements k - 1 and k
        (interpolated on the log-step axis); k = 0: the first measurement itself."""
        s, x = self.smoothed, self.x
        if k == 0:
            return Step(int(self.steps[0]), int(self.steps[0]), int(self.steps[0]), 0)
        a, b = float(s[k - 1]), float(s[k])
        frac = 1.0 if a == b else min(max((level - a) / (b - a), 0.0), 1.0)
        est = float(np.expm1(x[k - 1] + frac * (x[k] - x[k - 1])))
        return Step(int(round(est)), int(self.steps[k - 1]), int(self.steps[k]), k)

    def extremum(self, k: int) -> Step:
        """A peak or minimum at measurement k, refined to the vertex of the parabola through
        k - 1, k, k + 1 on the log-step axis (kept inside that bracket)."""
        lo, hi = max(k - 1, 0), min(k + 1, len(self.steps) - 1)
        est = float(self.steps[k])
        if 0 < k < len(self.steps) - 1:
            x, y = self.x[k - 1:k + 2], self.smoothed[k - 1:k + 2]
            d1, d2 = (y[1] - y[0]) / (x[1] - x[0]), (y[2] - y[1]) / (x[2] - x[1])
            curvature = (d2 - d1) / (x[2] - x[0])
            if curvature != 0:
                # vertex of the parabola through the three points (Newton's divided differences)
                vertex = (x[0] + x[1]) / 2 - d1 / (2 * curvature)
                est = float(np.expm1(np.clip(vertex, x[0], x[2])))
        return Step(int(round(est)), int(self.steps[lo]), int(self.steps[hi]), k)


def smooth(values: ArrayLike, window: int = 5) -> np.ndarray:
    """Centred moving average; the window shrinks at the ends (no padding, no phase shift)."""
    v = np.asarray(values, dtype=float)
    if window <= 1 or len(v) < 3:
        return v.copy()
    half = window // 2
    cumsum = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(len(v))
    lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, len(v))
    return (cumsum[hi] - cumsum[lo]) / (hi - lo)


def jitter(values: np.ndarray) -> float:
    """Step-to-step scatter of a curve: the robust standard deviation of its second differences
    / sqrt(6) (iid noise of std sigma has second differences of variance 6 sigma^2); 0 with
    fewer than 4 points."""
    if len(values) < 4:
        return 0.0
    return float(median_abs_deviation(np.diff(values, n=2), scale="normal") / np.sqrt(6))


def series(history: Mapping[int, Mapping[str, float]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one metric: the steps that measured it with a finite value, sorted."""
    steps = np.array([s for s in sorted(history) if key in history[s] and
                      np.isfinite(history[s][key])], dtype=np.int64)
    return steps, np.array([history[s][key] for s in steps], dtype=float)


def curve(history: Mapping[int, Mapping[str, float]], key: str, window: int = 5) -> Curve:
    """The ``Curve`` of ``key``: its sampling error from ``key/ci_low`` and ``key/ci_high`` where
    logged (99% normal intervals), its jitter from its raw values."""
    steps, values = series(history, key)
    se = np.array([(history[s][f"{key}/ci_high"] - history[s][f"{key}/ci_low"]) / (2 * Z99)
                   if f"{key}/ci_high" in history[s] and f"{key}/ci_low" in history[s] else 0.0
                   for s in steps], dtype=float)
    se = np.where(np.isfinite(se), se, 0.0)
    return Curve(steps, values, smooth(values, window), se, jitter(values))


def curve_of(steps, values, window: int) -> Curve:
    """The ``Curve`` of raw (steps, values) without sampling errors (an accuracy, a mean)."""
    steps, values = np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=float)
    return Curve(steps, values, smooth(values, window), np.zeros(len(values)), jitter(values))


@dataclass(frozen=True)
class EndTrend:
    """How a curve moved over its last stretch (``moving_at_end``): the measured steps it
    spans, the fitted line's values at its ends (within the values measured; for a
    whole-stretch move the smoothed curve's farthest value and its last), the trend test's p
    and whether it is still moving."""

    first_step: int
    last_step: int
    start: float
    end: float
    p_value: float
    moving: bool

    @property
    def rising(self) -> bool:
        """Still moving, upward (an ascent that goes on; a fall is a descent under way)."""
        return bool(self.moving) and self.end > self.start

    def text(self, label: str) -> str:
        return (f"{label} {self.start:.3g} -> {self.end:.3g} over steps {self.first_step:,}-"
                f"{self.last_step:,}")


def moving_at_end(steps: np.ndarray, values: np.ndarray, rule: NoiseRule = NoiseRule(), *,
                  material: float | None = None, whole_stretch: bool = False,
                  arrival: bool = False) -> EndTrend | None:
    """Whether a curve still moves at its end: a straight line fitted (scipy.stats.linregress)
    on the log-step axis to the raw measurements of the last ``rule.span`` of that axis (at
    least the last 3 measurements) has a slope that is significant (p < ``rule.alpha``) and
    moves the curve across the stretch by at least ``material`` (absolute; default
    ``rule.material`` x the curve's level there). A single spike at the last measurement raises
    the fitted slope and its error alike: it keeps the curve moving only when the fit still
    finds a significant trend (a spike cannot be told from a start until a later measurement).
    ``whole_stretch`` (the settled rule): also moving when any smoothed value of the stretch
    lies farther than the material size, and beyond twice the curve's jitter, from the last
    smoothed value: a peak or a descent inside the stretch, which a straight line can miss.

    ``arrival`` (clean test accuracy, whose phase is one climb to a level): a curve that has
    *arrived* is not moving, either way: when its smoothed values have stayed within the
    material size (or within twice its jitter) of the last one since the middle of the stretch
    or earlier (at least 3 measurements), the climb in the stretch's first half is behind it
    (test accuracy that climbed from 0.4 to 1.0 and has held 1.0 for half the stretch has
    generalised; the line through the climb and the plateau would still slope). LC and
    adversarial accuracy are not read this way: a sparse or slow curve (robustness measured
    every few thousand steps, a descent at a tenth of its height per half stretch) can look
    arrived mid-move. None with fewer than 3 measurements."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=float)
    if len(values) < 3:
        return None
    x = np.log1p(steps.astype(float))
    inside = np.flatnonzero(x >= x[-1] * (1 - rule.span))
    first = int(min(inside[0], len(x) - 3))
    xs, ys = x[first:], values[first:]
    if np.ptp(ys) == 0:
        return EndTrend(int(steps[first]), int(steps[-1]), float(ys[0]), float(ys[-1]), 1.0,
                        False)
    size = material if material is not None else rule.material * float(np.max(np.abs(ys)))
    arrived = _arrived(x, values, size, rule) if arrival else None
    if arrived is not None:
        return EndTrend(int(steps[arrived]), int(steps[-1]), float(values[arrived]),
                        float(values[-1]), 1.0, False)
    fit = linregress(xs, ys)
    start, end = fit.intercept + fit.slope * xs[0], fit.intercept + fit.slope * xs[-1]
    p = float(fit.pvalue) if np.isfinite(fit.pvalue) else 0.0
    moving = p < rule.alpha and abs(end - start) >= size
    # what the text says: the line's ends, kept within the values measured (LC is never < 0)
    start, end = (float(np.clip(v, ys.min(), ys.max())) for v in (start, end))
    if whole_stretch and not moving:
        shown = smooth(values)[first:]
        far = int(np.argmax(np.abs(shown - shown[-1])))
        gap = abs(float(shown[far] - shown[-1]))
        if gap >= size and gap > rule.z * jitter(values):
            return EndTrend(int(steps[first + far]), int(steps[-1]), float(shown[far]),
                            float(shown[-1]), p, True)
    return EndTrend(int(steps[first]), int(steps[-1]), start, end, p, moving)


def _arrived(x: np.ndarray, values: np.ndarray, size: float, rule: NoiseRule) -> int | None:
    """The first measurement of the curve's final plateau (smoothed values within ``size``, or
    within twice the jitter, of the last) when that plateau begins by the middle of the last
    stretch of the log-step axis and holds at least 3 measurements; else None."""
    shown = smooth(values)
    near = np.abs(shown - shown[-1]) < max(size, rule.z * jitter(values))
    away = np.flatnonzero(~near)
    start = int(away[-1]) + 1 if len(away) else 0
    middle = x[-1] * (1 - rule.span / 2)
    return start if len(values) - start >= 3 and x[start] <= middle else None
