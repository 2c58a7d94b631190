"""Grokking phases read off measured curves: the one place where "a phase happened" is decided.

The paper (sec. 3) names three LC phases (first descent, ascent, second descent or "region
migration") and delayed robustness. ``detect_phases`` turns a run's history into step numbers that
make runs comparable in the MLflow UI; ``grok_mlflow.findings.report`` words the same reading.

=================================  ====================================================================
``grok/interpolation_step``        training accuracy first reaches ``interpolation_acc`` (0.99)
``grok/lc_first_min_step``         end of the first descent: the low point the ascent rises from
``grok/lc_peak_step``              ascent peak: the top of the smoothed train LC's largest rise
``grok/lc_peak_value``             smoothed train LC at the peak (LC units: hyperplanes per point)
``grok/ascent_steps``, ``_height``  peak step - first-minimum step; peak - first-minimum LC (smoothed)
``grok/migration_onset_step``      start of the second descent: smoothed train LC crosses ``rel_tol``
                                   (5%) of the ascent's height below the peak (logged only when
                                   the second descent counts: its fall resolved and material)
``grok/descent_depth``             fraction of the ascent undone by the end: (peak - last) / (peak -
                                   first minimum), smoothed
``grok/generalization_step``       smoothed test accuracy first reaches 95% of its final value (only
                                   if it ends >= ``min_gain`` above its first value)
``grok/robustness_onset_step``     after interpolation, where adversarial accuracy (mean over eps)
                                   leaves its floor before rising >= ``adv_rise`` above it
``grok/delay_steps``               robustness onset - interpolation
``grok/boundary_ratio_*``          LC(boundary) / LC(train) at the migration onset and at the end
                                   of the second descent, and end / onset (``boundary_shift``):
                                   > 1 when the regions moved towards the decision boundary
``grok_eps{e}/...``                per PGD budget e (``robustness_per_eps``): the robustness onset,
                                   its censoring, and ``delay_steps`` only when delayed (the onset
                                   at least 2x the interpolation step)
=================================  ====================================================================

The noise rule (when a change counts), smoothing and the steps between measurements are
``curves``': a phase is read there as a change of a ``Curve`` that counts, its step a ``Step``
with its bracket.

Example:
    phases = detect_phases(tracker.history)
    phases.get("grok/delay_steps")        # None when robustness never rose
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .curves import Z99, Curve, EndTrend, NoiseRule, Step, curve, curve_of, moving_at_end, series

__all__ = ["BOUNDARY_KEYS", "BRACKETED", "CENSORED", "BoundaryShift", "LCReading", "PHASE_KEYS",
           "SHAPE_KEYS", "adversarial_keys", "boundary_shift", "censor", "detect_phases",
           "end_trends", "lc_phases", "read_lc", "robustness_onset", "robustness_per_eps",
           "settled"]

PHASE_KEYS = ("grok/interpolation_step", "grok/lc_first_min_step", "grok/lc_peak_step",
              "grok/migration_onset_step", "grok/generalization_step",
              "grok/robustness_onset_step", "grok/delay_steps")
# the phase steps logged with a bracket (``_low``, ``_high``): every phase step but the delay
BRACKETED = PHASE_KEYS[:-1]
# what the LC curve's phases looked like (not steps): values, lengths, fractions
SHAPE_KEYS = ("grok/lc_peak_value", "grok/ascent_steps", "grok/ascent_height", "grok/descent_depth")
# how LC at the decision boundary moved against LC at the data over the second descent
BOUNDARY_KEYS = ("grok/boundary_ratio_onset", "grok/boundary_ratio_end",
                 "grok/boundary_ratio_change")
# the LC quantities: one set per radius (``grok_r{r}/...`` when a run measures several)
LC_KEYS = ("grok/lc_first_min_step", "grok/lc_peak_step", "grok/migration_onset_step",
           "grok/lc_peak_value", "grok/ascent_steps", "grok/ascent_height", "grok/descent_depth")

# "delayed": a phase at least this many times the interpolation step (the report, the rule)
DELAY_FACTOR = 2.0


@dataclass(frozen=True)
class LCReading:
    """What one LC curve shows under the noise rule: ``first_min`` and ``peak`` (the ascent, when
    it counts), whether the first and second descents count, the migration ``onset``, the share
    of the ascent undone by the end (``fallen``), ``transient``: (its low, its peak) of a rise
    and fall over before interpolation (a warm-up transient, not the paper's ascent),
    ``open_peak``: the last points rise above the peak and no second descent came before them
    (the ascent may go on: the peak is censored), and, for a curve without phases, ``flat``:
    the sentence that says so."""

    curve: Curve
    first_min: Step | None = None
    peak: Step | None = None
    first_descent: bool = False
    onset: Step | None = None
    second_descent: bool = False
    fallen: float = 0.0
    flat: str = ""
    transient: tuple[Step, Step] | None = None
    open_peak: bool = False

    @property
    def height(self) -> float:
        """The ascent's height on the smoothed curve (0 without an ascent)."""
        if self.peak is None or self.first_min is None:
            return 0.0
        s = self.curve.smoothed
        return float(s[self.peak.index] - s[self.first_min.index])


def _largest_rise(s: np.ndarray, first_peak: int, last_peak: int
                  ) -> tuple[float, tuple[int, int] | None]:
    """The pair i < j with the largest s[j] - s[i] (i the lowest point before j), j in
    [first_peak, last_peak]."""
    low, rise, ascent = 0, 0.0, None           # running minimum, best rise, its (i, j)
    for j in range(1, last_peak + 1):
        if s[j] < s[low]:
            low = j
        elif j >= first_peak and s[j] - s[low] > rise:
            rise, ascent = float(s[j] - s[low]), (low, j)
    return rise, ascent


def read_lc(c: Curve, rule: NoiseRule = NoiseRule(), *, rel_tol: float = 0.05,
            descent_frac: float = 0.25, after: int = 0, window: int = 5) -> LCReading:
    """The LC phases of one curve under the noise rule.

    The ascent is the curve's largest rise: the pair i < j with the largest s[j] - s[i] on the
    smoothed curve s (i the lowest point before j), counted when resolved and material. A small
    early wobble (LC rising 2 units while falling from 47 to 21) is then not mistaken for the
    ascent that follows it. The first descent counts when the fall from the first measurement
    to i does. The second descent counts when the fall from the peak to the end is resolved,
    material and at least ``descent_frac`` of the ascent (a sustained fall); its onset is where
    the curve first crosses ``rel_tol`` of the ascent below the peak.

    No phase ends on the last points: a peak among the last ``window`` // 2 + 1 measurements
    (those whose smoothed value includes the last measurement) is censored, not a peak (a spike
    cannot be told from a start until a later measurement), and the fall is read to the last
    point before them. ``after`` (the interpolation step): a rise and fall whose peak and
    onset both lie before it is a warm-up transient (``transient``), and the ascent is the
    largest rise peaking at or after it.
    """
    s = c.smoothed
    if len(s) < 3:
        return LCReading(c, flat="not measured")
    last = len(s) - 1
    # the last point whose smoothed value does not include the last measurement
    end = max(last - window // 2 - 1, 1)
    first_peak = int(np.searchsorted(c.steps, after)) if after else 0
    rise, ascent = _largest_rise(s, 0, end)
    transient = None
    if ascent is not None and c.steps[ascent[1]] < after and c.counts(*ascent, rule):
        i, j = ascent
        below = np.flatnonzero(s[j:end + 1] <= s[j] - rel_tol * rise)
        back = j + int(np.argmin(s[j:first_peak + 1])) if first_peak > j else j
        if len(below) and c.steps[j + int(below[0])] < after and c.counts(j, back, rule):
            transient = (c.extremum(i), c.extremum(j))
            rise, ascent = _largest_rise(s, first_peak, end)
    if ascent is None or not c.counts(*ascent, rule):
        lo, hi = float(s.min()), float(s.max())
        why = (f"no rise above its noise: the smoothed curve moved between {lo:.3g} and "
               f"{hi:.3g}" if ascent is not None else "it never rose")
        first = int(np.argmin(s))
        fell = first > 0 and c.counts(0, first, rule)
        return LCReading(c, first_descent=False, flat=why if not fell else "",
                         transient=transient)
    i, j = ascent
    first_min, peak = c.extremum(i), c.extremum(j)
    first_descent = i > 0 and c.counts(0, i, rule)
    # the onset: a shape, not a noise level (so that it does not move with the number of LC
    # points); whether the descent is real is the fall's own test below
    threshold = rel_tol * rise
    below = np.flatnonzero(s[j:end + 1] <= s[j] - threshold)
    onset = c.crossing(j + int(below[0]), float(s[j] - threshold)) if len(below) else None
    fallen = float(s[j] - s[end]) / rise
    second = (onset is not None and fallen >= descent_frac and end > j
              and c.counts(j, end, rule))
    # the last points (left out above) above the peak, with no second descent before them:
    # the ascent may still be going on
    open_peak = not second and bool(np.max(s[end + 1:], initial=-np.inf) > s[j])
    return LCReading(c, first_min, peak, first_descent, onset, second, fallen,
                     transient=transient, open_peak=open_peak)


def lc_phases(steps: np.ndarray, lc: np.ndarray, *, window: int = 5, rel_tol: float = 0.05,
              rule: NoiseRule = NoiseRule(), c: Curve | None = None,
              after: int = 0) -> dict[str, float]:
    """The LC phase quantities of one curve (module docstring), from ``read_lc``: the ascent's
    first minimum and peak (with brackets), its height and length and, when the second descent
    counts, its onset and depth. ``c``: the curve with its sampling errors (else none);
    ``after``: the interpolation step (a rise and fall before it is a warm-up transient)."""
    reading = read_lc(c if c is not None else curve_of(steps, lc, window), rule,
                      rel_tol=rel_tol, after=after, window=window)
    out: dict[str, float] = {}
    peak, first_min = reading.peak, reading.first_min
    if peak is None or first_min is None:    # a peak always comes with its first minimum
        return out
    _put(out, "grok/lc_first_min_step", first_min)
    if reading.open_peak:            # the ascent still going at the last points: no peak yet
        return out
    _put(out, "grok/lc_peak_step", peak)
    out["grok/lc_peak_value"] = float(reading.curve.smoothed[peak.index])
    out["grok/ascent_steps"] = peak.estimate - first_min.estimate
    out["grok/ascent_height"] = reading.height
    if reading.second_descent and reading.onset is not None:
        _put(out, "grok/migration_onset_step", reading.onset)
        out["grok/descent_depth"] = reading.fallen
    return out


def _put(out: dict, key: str, step: Step) -> None:
    out[key], out[key + "_low"], out[key + "_high"] = step.estimate, step.low, step.high


def interpolation(history: Mapping[int, Mapping[str, float]],
                  acc: float = 0.99) -> Step | None:
    """Where training accuracy first reaches ``acc`` (raw, not smoothed), between measurements."""
    c = curve_of(*series(history, "acc/train"), window=1)
    hits = np.flatnonzero(c.values >= acc)
    return c.crossing(int(hits[0]), acc) if len(hits) else None


def generalization(history: Mapping[int, Mapping[str, float]], *, window: int = 5,
                   frac: float = 0.95, min_gain: float = 0.1) -> Step | None:
    """Where smoothed test accuracy first reaches ``frac`` of its final value; None when it
    ends less than ``min_gain`` above its first value (it never left chance)."""
    c = curve_of(*series(history, "acc/test"), window=window)
    if not len(c.values) or c.smoothed[-1] - c.values[0] < min_gain:
        return None
    level = frac * float(c.smoothed[-1])
    return c.crossing(int(np.flatnonzero(c.smoothed >= level)[0]), level)


def detect_phases(history: Mapping[int, Mapping[str, float]], *, lc_key: str = "lc/train",
                  adv_keys: Sequence[str] | None = None, window: int = 5, rel_tol: float = 0.05,
                  interpolation_acc: float = 0.99, generalization_frac: float = 0.95,
                  adv_rise: float = 0.05, min_gain: float = 0.1,
                  rule: NoiseRule | None = None) -> dict[str, float]:
    """Phase steps of a run from its ``{step: {metric: value}}`` history.

    Args:
        history: measured values per step (``GrokTracker.history``).
        lc_key: the LC curve whose phases are ``grok/*`` (train LC at the first radius). With
            several radii in the history, each radius's LC phases are also ``grok_r{r}/*``.
        adv_keys: adversarial-accuracy keys to average (default: every ``adv/acc/eps_*``).
        window: smoothing window in measurements (odd, >= 1).
        rel_tol: the migration onset: this fraction of the ascent below the peak.
        interpolation_acc: training accuracy that counts as fitting the data.
        generalization_frac: fraction of the final test accuracy that counts as generalised.
        adv_rise: absolute rise of adversarial accuracy that counts as the late rise.
        min_gain: test accuracy must end at least this far above its first value (chance) for
            ``grok/generalization_step`` to exist.
        rule: the noise rule (default ``NoiseRule(adv_rise=adv_rise)``).
    Returns:
        {phase key: step (with ``_low`` / ``_high``), or value for ``SHAPE_KEYS``}; phases that
        did not happen are absent.
    """
    rule = rule or NoiseRule(adv_rise=adv_rise)
    out: dict[str, float] = {}
    interp = interpolation(history, interpolation_acc)
    if interp is not None:
        _put(out, "grok/interpolation_step", interp)
    after = interp.estimate if interp is not None else 0
    out.update(lc_phases(*series(history, lc_key), rel_tol=rel_tol, rule=rule,
                         c=curve(history, lc_key, window), after=after, window=window))
    radii = _radius_keys(history)
    if len(radii) > 1:
        for radius, key in radii.items():
            found = censor(history, lc_phases(*series(history, key), rel_tol=rel_tol, rule=rule,
                                              c=curve(history, key, window), after=after,
                                              window=window),
                           lc_key=key, rule=rule, names=("lc_first_min", "lc_peak",
                                                         "migration_onset"))
            out.update({k.replace("grok/", f"grok_r{radius}/", 1): v for k, v in found.items()})
    gen = generalization(history, window=window, frac=generalization_frac, min_gain=min_gain)
    if gen is not None:
        _put(out, "grok/generalization_step", gen)
    if adv_keys is None:
        adv_keys = adversarial_keys(history)
    common = (sorted(set.intersection(*(set(series(history, k)[0]) for k in adv_keys)))
              if adv_keys else [])
    if interp is not None and len(common) >= 3:
        adv = np.mean([[history[s][k] for s in common] for k in adv_keys], axis=0)
        onset = robustness_onset(np.array(common, dtype=np.int64), adv, interp.estimate,
                                 window=window, adv_rise=rule.adv_rise, rule=rule)
        if onset is not None:
            _put(out, "grok/robustness_onset_step", onset)
            out["grok/delay_steps"] = onset.estimate - interp.estimate
    if interp is not None:
        out.update(robustness_per_eps(history, interp.estimate, window=window, rule=rule))
    if "grok/migration_onset_step" in out:
        shift = boundary_shift(history, lc_key, int(out["grok/migration_onset_step"]),
                               window=window)
        if shift is not None:
            out["grok/boundary_ratio_onset"] = shift.at_onset
            out["grok/boundary_ratio_end"] = shift.at_end
            out["grok/boundary_ratio_change"] = shift.at_end / shift.at_onset
    return censor(history, out, lc_key=lc_key, rule=rule)


@dataclass(frozen=True)
class BoundaryShift:
    """LC(boundary) / LC(train) at the second descent's onset and at its end (the last point
    before those whose smoothing holds the last measurement), each with a 95% interval from the
    logged sampling errors of the two means (the delta method on the ratio); ``rose``: the
    end's interval lies above the onset's (the regions moved towards the boundary, relative to
    the data), ``fell``: below it."""

    onset_step: int
    end_step: int
    at_onset: float
    at_end: float
    onset_interval: tuple[float, float]
    end_interval: tuple[float, float]

    @property
    def rose(self) -> bool:
        return self.end_interval[0] > self.onset_interval[1]

    @property
    def fell(self) -> bool:
        return self.end_interval[1] < self.onset_interval[0]

    def text(self) -> str:
        verb = ("rose" if self.rose else "fell" if self.fell else
                "did not change beyond its sampling error")
        return (f"LC(boundary) / LC(train) {verb} over the second descent: {self.at_onset:.3g} "
                f"[{self.onset_interval[0]:.3g}, {self.onset_interval[1]:.3g}] at step "
                f"{self.onset_step:,}, {self.at_end:.3g} [{self.end_interval[0]:.3g}, "
                f"{self.end_interval[1]:.3g}] at step {self.end_step:,}")


def boundary_shift(history: Mapping[int, Mapping[str, float]], lc_key: str, onset: int, *,
                   window: int = 5) -> BoundaryShift | None:
    """How LC at the decision boundary moved against LC at the training points over the second
    descent (from the measurement at or after ``onset`` to the end, read as ``read_lc`` reads
    the fall): the paper's "regions migrate towards the boundary" as a number. None without a
    boundary curve (``lc_key`` with ``/train`` -> ``/boundary``) at those steps."""
    boundary = lc_key[: -len("/train")] + "/boundary"
    steps = [s for s in sorted(history) if lc_key in history[s] and boundary in history[s]
             and history[s][lc_key] > 0]
    if len(steps) < 3:
        return None
    end = steps[max(len(steps) - 2 - window // 2, 0)]
    start = next((s for s in steps if s >= onset), None)
    if start is None or start >= end:
        return None

    def ratio(step: int) -> tuple[float, tuple[float, float]]:
        row = history[step]
        b, t = row[boundary], row[lc_key]
        value = b / t
        rel = [((row.get(f"{k}/ci_high", v) - row.get(f"{k}/ci_low", v)) / (2 * Z99)) / v
               if v > 0 else 0.0 for k, v in ((boundary, b), (lc_key, t))]
        half = 1.959963984540054 * value * float(np.hypot(rel[0], rel[1]))
        return value, (value - half, value + half)

    (a, ai), (b, bi) = ratio(start), ratio(end)
    return BoundaryShift(start, end, a, b, ai, bi)


def robustness_per_eps(history: Mapping[int, Mapping[str, float]], interpolation_step: int, *,
                       window: int = 5, rule: NoiseRule = NoiseRule()) -> dict[str, float]:
    """Delayed robustness read per PGD budget, never averaged across budgets:
    ``grok_eps{e}/robustness_onset_step`` (with its bracket) where that eps's accuracy rose
    after interpolation (``read_robustness``), ``grok_eps{e}/delay_steps`` (onset -
    interpolation) only when the onset is at least ``DELAY_FACTOR`` x the interpolation step
    (delayed, as the report says), and ``grok_eps{e}/robustness_onset_censored``: 1 when no
    rise was seen by the last PGD step (``..._step_low``), else 0."""
    out: dict[str, float] = {}
    for key in adversarial_keys(history):
        steps, values = series(history, key)
        if len(values) < 3:
            continue
        head = "grok_eps" + key.rsplit("_", 1)[1]
        onset = robustness_onset(steps, values, interpolation_step, window=window, rule=rule)
        if onset is None:
            out[f"{head}/robustness_onset_censored"] = 1.0
            out[f"{head}/robustness_onset_step_low"] = float(steps[-1])
            continue
        _put(out, f"{head}/robustness_onset_step", onset)
        out[f"{head}/robustness_onset_censored"] = 0.0
        if onset.estimate >= DELAY_FACTOR * max(interpolation_step, 1):
            out[f"{head}/delay_steps"] = onset.estimate - interpolation_step
    return out


def _radius_keys(history: Mapping[int, Mapping[str, float]]) -> dict[str, str]:
    """{radius text: ``lc_r{r}/train``} of a history with LC at named radii, ascending."""
    keys = {k for row in history.values() for k in row
            if k.startswith("lc_r") and k.endswith("/train")}
    ordered = sorted(keys, key=lambda k: float(k[len("lc_r"):].split("/")[0]))
    return {k[len("lc_r"):].split("/")[0]: k for k in ordered}


def adversarial_keys(history: Mapping[int, Mapping[str, float]]) -> list[str]:
    """Every ``adv/acc/eps_*`` key of a history, sorted by eps."""
    keys = {k for row in history.values() for k in row if k.startswith("adv/acc/eps_")}
    return sorted(keys, key=lambda k: float(k.rsplit("_", 1)[1]))


@dataclass(frozen=True)
class RobustnessReading:
    """One adversarial-accuracy curve after interpolation: the smoothed ``curve``, its floor
    (index ``low``), the ``onset`` of a rise that counts (or None) and the index ``start`` of
    the first measurement at or after interpolation (None if there is none)."""

    curve: Curve
    start: int | None
    low: int | None = None
    onset: Step | None = None


def _end_fitted(c: Curve) -> Curve:
    """``c`` with its last smoothed value replaced by the least-squares line through its last 3
    raw values on the log-step axis, evaluated at the last step."""
    if len(c.values) < 3:
        return c
    x, y = c.x[-3:], c.values[-3:]
    slope_, intercept = np.polyfit(x, y, 1)
    smoothed = c.smoothed.copy()
    smoothed[-1] = float(intercept + slope_ * x[-1])
    return Curve(c.steps, c.values, smoothed, c.se, c.jitter)


def read_robustness(steps: np.ndarray, adv: np.ndarray, interpolation: int, *,
                    window: int = 5, rule: NoiseRule = NoiseRule()) -> RobustnessReading:
    """The late rise of one adversarial-accuracy curve: after interpolation, its floor is the
    smoothed (3 measurements) curve's minimum; a rise counts when the curve later reaches
    ``rule.adv_rise`` above the floor and that rise is resolved (beyond twice the jitter); the
    onset is where it last leaves the floor (``adv_rise``/5 above it) before the rise.

    The end: the centred average shrinks to the last two measurements there, which halves a
    rise that is still going on; the last smoothed value is instead the straight line through
    the last 3 measurements (on the log-step axis) at the last step, unbiased for a steady rise
    A rise seen only at the last measurement counts when the raw measurement before it was
    already half-way up (one jump at the end is not yet confirmed)
    (a synthetic rise over steps 1e4-3e4, PGD on 1,000 images at 39 of 60 steps, 200 seeded
    runs each: a rise of 0.05, the threshold itself, seen in 130, against 53 with the plain
    average; 0.075 in 200 against 199; a flat curve in none: tests/test_phases.py)."""
    c = _end_fitted(curve_of(steps, adv, window=min(window, 3)))
    after = np.flatnonzero(c.steps >= interpolation)
    if len(c.values) < 3 or not len(after):
        return RobustnessReading(c, None)
    s, start = c.smoothed, int(after[0])
    low = start + int(np.argmin(s[start:]))
    floor = float(s[low])
    rise = [low + int(r) for r in np.flatnonzero(s[low:] >= floor + rule.adv_rise)
            if c.counts(low, low + int(r), rule, absolute=rule.adv_rise)]
    last = len(s) - 1
    if rise == [last] and c.values[-2] < floor + rule.adv_rise / 2:
        rise = []          # one raw jump at the last measurement: not yet confirmed
    if not rise:
        return RobustnessReading(c, start, low)
    leave = floor + 0.2 * rule.adv_rise
    on_floor = np.flatnonzero(s[start:rise[0]] <= leave)
    k = start + int(on_floor[-1]) + 1        # the first measurement off the floor
    return RobustnessReading(c, start, low, c.crossing(k, leave))


def robustness_onset(steps: np.ndarray, adv: np.ndarray, interpolation: int, *, window: int = 5,
                     adv_rise: float = 0.05, rule: NoiseRule | None = None) -> Step | None:
    """Start of the late rise of one adversarial-accuracy curve (``read_robustness``): a
    ``Step`` between the last measurement on the floor and the first off it; None without such
    a rise (or < 3 points)."""
    rule = rule or NoiseRule(adv_rise=adv_rise)
    return read_robustness(steps, adv, interpolation, window=window, rule=rule).onset


def end_trends(history: Mapping[int, Mapping[str, float]], *, lc_key: str = "lc/train",
               rule: NoiseRule = NoiseRule(), settling: bool = False) -> dict[str, EndTrend]:
    """The end trend (``moving_at_end``) of each curve the phases are read from: ``lc`` (train
    LC at ``lc_key``), ``test`` (clean test accuracy) and ``adv`` (adversarial accuracy,
    mean over eps); curves with fewer than 3 measurements are left out. ``settling`` (the
    settled rule): the whole stretch counts, and LC's material size is ``rule.material`` of
    its largest value over the run (a descent towards 0 has settled once what is left of it is
    under a tenth of the curve's height, not of its own shrinking level)."""
    out = {}
    steps, lc = series(history, lc_key)
    lc_size = rule.material * float(np.max(np.abs(lc))) if settling and len(lc) else None
    found = moving_at_end(steps, lc, rule, material=lc_size, whole_stretch=settling)
    if found is not None:
        out["lc"] = found
    found = moving_at_end(*series(history, "acc/test"), rule, material=rule.acc_material,
                          whole_stretch=settling, arrival=True)
    if found is not None:
        out["test"] = found
    keys = adversarial_keys(history)
    common = (sorted(set.intersection(*(set(series(history, k)[0]) for k in keys)))
              if keys else [])
    if len(common) >= 3:
        adv = np.mean([[history[s][k] for s in common] for k in keys], axis=0)
        found = moving_at_end(np.array(common), adv, rule, material=rule.adv_rise,
                              whole_stretch=settling)
        if found is not None:
            out["adv"] = found
    return out


# each phase: (its step key, the curve that decides whether it is still under way)
CENSORED = {"interpolation": "grok/interpolation_step", "lc_first_min": "grok/lc_first_min_step",
            "lc_peak": "grok/lc_peak_step", "migration_onset": "grok/migration_onset_step",
            "generalization": "grok/generalization_step",
            "robustness_onset": "grok/robustness_onset_step"}


def censor(history: Mapping[int, Mapping[str, float]], found: dict[str, float], *,
           lc_key: str = "lc/train", rule: NoiseRule = NoiseRule(),
           names: Sequence[str] = tuple(CENSORED)) -> dict[str, float]:
    """``grok/<name>_censored`` for every phase whose curve was measured: 1.0 when the phase
    was not yet seen at the last step or is still under way (its curve moves at the end,
    ``moving_at_end``), else 0.0. An under-way phase loses its step (what was found is a point
    of a curve still moving) and keeps ``_step_low`` = the last measured step: it comes after.
    ``found``: ``detect_phases``' quantities, changed in place and returned; ``names``: the
    phases to judge (default all).

    - interpolation, the first minimum, the migration onset, the robustness onset: censored
      when not seen (they are events: once seen, they are behind the run);
    - the peak: censored when not seen, or when no second descent followed and LC still rises
      at the end (the ascent goes on; falling, the peak is behind); its value and length too;
    - generalization: censored when test accuracy never rose ``min_gain`` or still moves at
      the end (it is read against the level where test accuracy settles);
    - the descent depth: censored when LC still moves at the end (the descent goes on).
    """
    trends = end_trends(history, lc_key=lc_key, rule=rule)
    curves = {"interpolation": "acc/train", "lc_first_min": lc_key, "lc_peak": lc_key,
              "migration_onset": lc_key, "generalization": "acc/test"}
    last = {name: int(series(history, key)[0][-1]) for name, key in curves.items()
            if len(series(history, key)[0])}
    adv = adversarial_keys(history)
    if adv and "interpolation" in last and len(series(history, adv[0])[0]):
        last["robustness_onset"] = int(series(history, adv[0])[0][-1])
    lc_moving = "lc" in trends and trends["lc"].moving
    lc_rising = "lc" in trends and trends["lc"].rising      # the ascent goes on
    for name, end in last.items():
        if name not in names:
            continue
        key = CENSORED[name]
        under_way = key not in found
        if name == "lc_peak" and not under_way:
            under_way = "grok/migration_onset_step" not in found and lc_rising
        if name == "generalization" and not under_way:
            under_way = "test" in trends and trends["test"].moving
        found[f"grok/{name}_censored"] = float(under_way)
        if under_way:
            for suffix in ("", "_high"):
                found.pop(key + suffix, None)
            found[key + "_low"] = end
            if name == "lc_peak":
                for shape in (k for k in SHAPE_KEYS if k != "grok/descent_depth"):
                    found.pop(shape, None)
            if name == "robustness_onset":
                found.pop("grok/delay_steps", None)
    if "grok/descent_depth" in found and "lc_peak" in names:
        found["grok/descent_depth_censored"] = float(lc_moving)
    return found


def settled(history: Mapping[int, Mapping[str, float]], *, lc_key: str = "lc/train",
            rule: NoiseRule = NoiseRule()) -> tuple[bool, str]:
    """Whether a run's phases are settled, and why (or why not), one sentence: training
    accuracy interpolated (where measured), the last phase seen, and train LC, test accuracy
    and adversarial accuracy (those measured) no longer moving over the last ``rule.span`` of
    the log-step axis: no significant trend, and no value of the stretch farther than the
    material size from the last (``end_trends(settling=True)``: LC's size a tenth of its
    largest value; test accuracy that has held its level since the stretch's middle has
    arrived). The last phase is LC's second descent (never during the first descent or the
    ascent), its onset at or after interpolation (region migration follows fitting the data:
    so in all 112 ablation trials that showed one), or, where LC showed no ascent after
    interpolation (fig. 10 at r = 0.005: LC only falls, or rises for a few warm-up steps
    first), test accuracy's *delayed* generalization (``generalization``: it rose at least 0.1
    to a level it holds, at least ``DELAY_FACTOR`` (2) times the interpolation step: grokking,
    as the report's "delayed generalization"). Generalising with interpolation does not count:
    an MLP that generalises by step 40 has its LC ascent still to come at step 2,000 (the rule
    without this condition stopped 7 of 8 batch-norm ablation trials there). The stopper and
    ``until: settled`` use this rule."""
    steps, acc = series(history, "acc/train")
    fitted = interpolation(history)
    if len(acc) and fitted is None:
        return False, "training accuracy has not reached 0.99"
    after_fit = fitted.estimate if fitted is not None else 0
    reading = read_lc(curve(history, lc_key), rule, after=after_fit)
    if (reading.second_descent and reading.onset is not None
            and reading.onset.estimate >= after_fit):
        after = f"after the second descent (onset step {reading.onset.text()})"
    elif reading.peak is not None and reading.peak.estimate >= after_fit:
        return False, "no second descent yet"
    else:
        none = "no LC ascent" + (" after interpolation" if reading.peak is not None
                                  or reading.transient is not None else "")
        gen = generalization(history)
        if gen is None:
            return False, f"{none} yet, and test accuracy has not generalised"
        if fitted is None or gen.estimate < DELAY_FACTOR * max(fitted.estimate, 1):
            return False, (f"{none} yet; test accuracy generalised at step {gen.text()}, "
                           f"not {DELAY_FACTOR:g}x after interpolation: no grokking to settle")
        after = (f"{none}; after test accuracy grokked (step {gen.text()}, "
                 f"{gen.estimate / max(fitted.estimate, 1):.1f}x interpolation's; "
                 f"{series(history, 'acc/test')[1][-1]:.3g} at the end)")
    trends = end_trends(history, lc_key=lc_key, rule=rule, settling=True)
    labels = {"lc": "train LC", "test": "test accuracy", "adv": "adversarial accuracy"}
    moving = [trends[k].text(labels[k]) for k in labels if k in trends and trends[k].moving]
    if moving:
        return False, "still moving: " + "; ".join(moving)
    stretch = trends.get("lc")
    where = f" over steps {stretch.first_step:,}-{stretch.last_step:,}" if stretch else ""
    return True, (f"settled: {after}, " + ", ".join(labels[k] for k in labels if k in trends)
                  + f" flat within their noise{where} (the last {rule.span:.0%} of the "
                  f"log-step axis)")
