"""Grokking phases detected on measured curves (beyond the paper; its sec. 3 names the phases).

The paper describes three LC phases (first descent, ascent, second descent or "region migration")
and delayed robustness. ``detect_phases`` turns a run's history into step numbers that make runs
comparable in the MLflow UI's table and parallel-coordinates plot:

=================================  ====================================================================
``grok/interpolation_step``        first step with training accuracy >= ``interpolation_acc`` (0.99)
``grok/lc_first_min_step``         end of the first descent: the low point before the ascent, the
                                   smoothed train LC's largest rise (>= ``rel_tol`` of its range)
``grok/lc_peak_step``              ascent peak: the top of that largest rise
``grok/lc_peak_value``             smoothed train LC at the peak (LC units: hyperplanes per point)
``grok/ascent_steps``              peak step - first-minimum step
``grok/migration_onset_step``      start of the second descent: first step after the peak where smoothed
                                   train LC is below the peak by >= ``rel_tol`` of the ascent height
``grok/descent_depth``             fraction of the ascent the second descent undid by the last
                                   measurement: (peak - last) / (peak - first minimum)
``grok/generalization_step``       first step with smoothed test accuracy >= 95% of its final value
                                   (only if it ends >= ``min_gain`` above its first value)
``grok/robustness_onset_step``     start of the late rise of adversarial accuracy (mean over eps): after
                                   interpolation, the last step within ``adv_rise``/5 of its minimum
                                   before it rises by >= ``adv_rise`` above that minimum
``grok/delay_steps``               robustness onset - interpolation
=================================  ====================================================================

A phase that does not happen is absent from the result, never zero. Smoothing is a centred moving
average over ``window`` consecutive measurements (the schedule is log-spaced, so this is a window
of constant width on the paper's log-step axis).

Example:
    >>> phases = detect_phases(tracker.history)
    >>> phases.get("grok/delay_steps")        # None when robustness never rose
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = ["PHASE_KEYS", "SHAPE_KEYS", "adversarial_keys", "detect_phases", "lc_phases", "robustness_onset",
           "series", "smooth"]

PHASE_KEYS = ("grok/interpolation_step", "grok/lc_first_min_step", "grok/lc_peak_step",
              "grok/migration_onset_step", "grok/generalization_step",
              "grok/robustness_onset_step", "grok/delay_steps")
# what the LC curve's phases looked like (not steps): values, lengths, fractions
SHAPE_KEYS = ("grok/lc_peak_value", "grok/ascent_steps", "grok/descent_depth")


def smooth(values: Sequence[float], window: int = 5) -> np.ndarray:
    """Centred moving average; the window shrinks at the ends (no padding, no phase shift)."""
    v = np.asarray(values, dtype=float)
    if window <= 1 or len(v) < 3:
        return v.copy()
    half = window // 2
    cumsum = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(len(v))
    lo, hi = np.maximum(idx - half, 0), np.minimum(idx + half + 1, len(v))
    return (cumsum[hi] - cumsum[lo]) / (hi - lo)


def series(history: Mapping[int, Mapping[str, float]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one metric: the steps that measured it with a finite value, sorted."""
    steps = np.array([s for s in sorted(history) if key in history[s] and
                      np.isfinite(history[s][key])], dtype=np.int64)
    return steps, np.array([history[s][key] for s in steps], dtype=float)


def _first(steps: np.ndarray, mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(steps[hits[0]]) if len(hits) else None


def lc_phases(steps: np.ndarray, lc: np.ndarray, *, window: int = 5,
              rel_tol: float = 0.05) -> dict[str, float]:
    """The LC phases of one curve (see the module docstring): the dominant ascent, the first
    descent before it and the second descent after it.

    The ascent is the curve's largest rise: the pair of measurements i < j with the largest
    s[j] - s[i] on the smoothed curve s (i the lowest point before j). It counts only if it rises
    by >= ``rel_tol`` of the curve's range. A small early wobble (LC rising 2 units at steps
    8-19 while falling from 47 to 21) is then not mistaken for the ascent that follows it (21
    -> 29 at steps 113-300): the earlier rule, "the first minimum that the curve rises from",
    took the wobble.

    Returns {key: value}: ``grok/lc_first_min_step`` (i), ``grok/lc_peak_step`` (j),
    ``grok/lc_peak_value`` (s[j], LC units), ``grok/ascent_steps`` (j - i in steps),
    ``grok/migration_onset_step`` (the first step after the peak at least ``rel_tol`` of the
    ascent's height below it) and ``grok/descent_depth`` (the fraction of the ascent undone by
    the last measurement, (s[j] - s[-1]) / (s[j] - s[i]): 0 = none, 1 = back to the minimum,
    > 1 below it), the last two only when the second descent started. Absent phases are absent.
    """
    out: dict[str, float] = {}
    if len(lc) < 3:
        return out
    s = smooth(lc, window)
    tol = rel_tol * max(float(s.max() - s.min()), 1e-12)
    low, rise, ascent = 0, 0.0, None           # running minimum, best rise, its (i, j)
    for j in range(1, len(s)):
        if s[j] < s[low]:
            low = j
        elif s[j] - s[low] > rise:
            rise, ascent = float(s[j] - s[low]), (low, j)
    if ascent is None or rise < tol:
        return out
    first_min, peak = ascent
    out["grok/lc_first_min_step"] = int(steps[first_min])
    out["grok/lc_peak_step"] = int(steps[peak])
    out["grok/lc_peak_value"] = float(s[peak])
    out["grok/ascent_steps"] = int(steps[peak] - steps[first_min])
    onset = _first(steps[peak:], s[peak:] <= s[peak] - rel_tol * rise)
    if onset is not None:
        out["grok/migration_onset_step"] = onset
        out["grok/descent_depth"] = float((s[peak] - s[-1]) / rise)
    return out


def detect_phases(history: Mapping[int, Mapping[str, float]], *, lc_key: str = "lc/train",
                  adv_keys: Sequence[str] | None = None, window: int = 5, rel_tol: float = 0.05,
                  interpolation_acc: float = 0.99, generalization_frac: float = 0.95,
                  adv_rise: float = 0.05, min_gain: float = 0.1) -> dict[str, float]:
    """Phase steps of a run from its ``{step: {metric: value}}`` history.

    Args:
        history: measured values per step (``GrokTracker.history``).
        lc_key: the LC curve to read the LC phases from (train LC at the first radius).
        adv_keys: adversarial-accuracy keys to average (default: every ``adv/acc/eps_*``).
        window: smoothing window in measurements (odd, >= 1).
        rel_tol: fraction of a curve's range that counts as a real rise or fall (not noise).
        interpolation_acc: training accuracy that counts as fitting the data.
        generalization_frac: fraction of the final test accuracy that counts as generalised.
        adv_rise: absolute rise of adversarial accuracy that counts as the late rise.
        min_gain: test accuracy must end at least this far above its first value (chance) for
            ``grok/generalization_step`` to exist.
    Returns:
        {phase key: step, or value for ``SHAPE_KEYS``}; phases that did not happen are absent.
    """
    out: dict[str, float] = {}
    steps, acc = series(history, "acc/train")
    interpolation = _first(steps, acc >= interpolation_acc) if len(acc) else None
    if interpolation is not None:
        out["grok/interpolation_step"] = interpolation
    out.update(lc_phases(*series(history, lc_key), window=window, rel_tol=rel_tol))
    steps_te, acc_te = series(history, "acc/test")
    if len(acc_te):
        smoothed = smooth(acc_te, window)
        generalization = _first(steps_te, smoothed >= generalization_frac * smoothed[-1])
        # a net that never rose above its initial (chance) accuracy did not generalise
        if generalization is not None and smoothed[-1] - acc_te[0] >= min_gain:
            out["grok/generalization_step"] = generalization
    if adv_keys is None:
        adv_keys = adversarial_keys(history)
    common = (sorted(set.intersection(*(set(series(history, k)[0]) for k in adv_keys)))
              if adv_keys else [])
    if interpolation is not None and len(common) >= 3:
        adv = np.mean([[history[s][k] for s in common] for k in adv_keys], axis=0)
        onset = robustness_onset(np.array(common, dtype=np.int64), adv, interpolation,
                                 window=window, adv_rise=adv_rise)
        if onset is not None:
            out["grok/robustness_onset_step"] = onset
            out["grok/delay_steps"] = onset - interpolation
    return out


def adversarial_keys(history: Mapping[int, Mapping[str, float]]) -> list[str]:
    """Every ``adv/acc/eps_*`` key of a history, sorted by eps."""
    keys = {k for row in history.values() for k in row if k.startswith("adv/acc/eps_")}
    return sorted(keys, key=lambda k: float(k.rsplit("_", 1)[1]))


def robustness_onset(steps: np.ndarray, adv: np.ndarray, interpolation: int, *, window: int = 5,
                     adv_rise: float = 0.05) -> int | None:
    """Start of the late rise of one adversarial-accuracy curve (see the module docstring).

    Args:
        steps: (T,) measured steps, increasing.   adv: (T,) accuracies in [0, 1].
        interpolation: the interpolation step; the rise is looked for from there on.
    Returns:
        The last step after interpolation within ``adv_rise``/5 of the curve's floor before it
        rises ``adv_rise`` above that floor; None without such a rise (or < 3 points).
    """
    if len(adv) < 3:
        return None
    s = smooth(adv, min(window, 3))
    after = np.flatnonzero(steps >= interpolation)
    if not len(after):
        return None
    start = after[0]
    low = start + int(np.argmin(s[start:]))
    floor = s[low]
    rise = np.flatnonzero(s[low:] >= floor + adv_rise)
    if not len(rise):
        return None
    rise_idx = low + rise[0]
    # the onset: where the curve last leaves its floor before the rise
    on_floor = np.flatnonzero(s[start:rise_idx] <= floor + 0.2 * adv_rise)
    return int(steps[start + on_floor[-1]])
