"""The statistics the verdicts rest on, as pure functions over numbers (no claims, no MLflow).

- ``km_median``: the Kaplan-Meier median of phase steps with right-censored trials
  (``scipy.stats.ecdf`` on ``CensoredData``) and its interval from the survival function's
  confidence band;
- ``gehan_scores``: each trial's Gehan score (how many trials it is certainly later than, minus
  how many it is certainly earlier than); without censoring these are centred ranks;
- ``trend_test``: a permutation test of the trend of those scores along an ordered setting
  (``scipy.stats.permutation_test``, exact when the trials' orderings number at most
  ``N_PERMUTATIONS``: up to 7 trials);
- ``slope``: the least-squares slope of each row, the effect size of a trend;
- ``stratified_bootstrap``: a statistic's bootstrap distribution, each swept value's trials
  resampled within themselves (rliable's stratified bootstrap; ``scipy.stats.bootstrap``);
  ``mean_with_interval`` and ``ratio_of_means`` (two independent samples) on top of it.

Censored trials are encoded as negative numbers (``encode``) so that a trial's step and its
censoring travel together through a resample.

Example:
    km_median([2456, 7630, 8928, 30000], [False, False, False, True]).estimate
    # -> 8279.0 (the survival curve sits at 0.5 between 7,630 and 8,928: their midpoint)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import CensoredData, bootstrap, ecdf, permutation_test

__all__ = ["ALPHA", "KMMedian", "N_PERMUTATIONS", "N_RESAMPLES", "decode", "encode",
           "gehan_scores", "km_median", "mean_with_interval", "percentile_interval",
           "ratio_of_means", "slope", "stratified_bootstrap", "trend_test"]

ALPHA = 0.05            # 1 - the intervals' confidence; the two-sided level of the trend test
N_RESAMPLES = 2000      # bootstrap resamples (seeded: the same interval every time)
N_PERMUTATIONS = 9999   # the trend test's resamples; exact when n! <= this (n <= 7 trials)


def encode(values: Sequence[float], censored: Sequence[bool]) -> np.ndarray:
    """Steps with their censoring in one array: a censored trial's last step as its negative
    (steps are > 0)."""
    v = np.asarray(values, dtype=float)
    return np.where(np.asarray(censored, dtype=bool), -v, v)


def decode(coded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(steps, censored) of ``encode`` d values."""
    coded = np.asarray(coded, dtype=float)
    return np.abs(coded), coded < 0


@dataclass(frozen=True)
class KMMedian:
    """A Kaplan-Meier median: ``estimate`` (inf when the survival curve never reaches 0.5: the
    median itself is censored), its ``low`` and ``high`` (inf when the upper band never
    reaches 0.5) at ``1 - ALPHA``."""

    estimate: float
    low: float
    high: float

    @property
    def censored(self) -> bool:
        return not math.isfinite(self.estimate)


def _first_at_half(times: np.ndarray, survival: np.ndarray) -> float:
    """The median read off a step survival curve: the first time it is <= 0.5; where it sits
    exactly at 0.5 until the next drop, the midpoint of the two (so that, without censoring,
    the median of an even number of steps is the usual one); inf if it never gets there, or
    stays at 0.5 to its end (the median lies somewhere after: censored)."""
    at = np.flatnonzero(survival <= 0.5 + 1e-12)
    if not len(at):
        return math.inf
    k = int(at[0])
    if math.isclose(survival[k], 0.5):
        later = np.flatnonzero(survival[k:] < 0.5 - 1e-12)
        if not len(later):         # 0.5 to the end (censored after): not determined
            return math.inf
        return float((times[k] + times[k + int(later[0])]) / 2)
    return float(times[k])


def km_median(steps: ArrayLike, censored: ArrayLike) -> KMMedian:
    """The Kaplan-Meier median of ``steps`` with the ``censored`` ones right-censored there
    (``scipy.stats.ecdf``), with the interval where the survival function's log-log confidence
    band crosses 0.5 (Brookmeyer-Crowley's construction). Without censoring the estimate is the
    sample median."""
    steps = np.asarray(steps, dtype=float)
    censored = np.asarray(censored, dtype=bool)
    if not len(steps):
        return KMMedian(math.nan, math.nan, math.nan)
    if censored.all():
        return KMMedian(math.inf, float(steps.min()), math.inf)
    sf = ecdf(CensoredData(uncensored=steps[~censored], right=steps[censored])).sf
    estimate = _first_at_half(sf.quantiles, sf.probabilities)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # a band at 0 or 1 takes a log of 0
        band = sf.confidence_interval(1 - ALPHA, method="log-log")
    low = _first_at_half(band.low.quantiles, np.nan_to_num(band.low.probabilities, nan=1.0))
    high = _first_at_half(band.high.quantiles, np.nan_to_num(band.high.probabilities, nan=1.0))
    return KMMedian(estimate, min(low, estimate), max(high, estimate))


def gehan_scores(steps: ArrayLike, censored: ArrayLike) -> np.ndarray:
    """Each trial's Gehan score: the trials it is certainly later than minus those it is
    certainly earlier than. Trial i is certainly later than j when j's step was seen (not
    censored) and is smaller than i's (i seen or censored there). Without censoring this is
    2 x rank - n - 1 (average ranks for ties): a rank test on these scores is a rank test."""
    t = np.asarray(steps, dtype=float)
    seen = ~np.asarray(censored, dtype=bool)
    later = seen[None, :] & (t[None, :] < t[:, None])       # later[i, j]: i certainly after j
    return later.sum(axis=1) - later.sum(axis=0).astype(float)


def trend_test(x: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """One-sided p-values (rising, falling) of a trend of ``scores`` along ``x``: the statistic
    sum((x - mean x) * score), its null distribution by permuting the scores over the trials
    (``scipy.stats.permutation_test``, ``pairings``: the x stay; exact when n! <=
    ``N_PERMUTATIONS``, else that many seeded resamples, so p >= 1 / (N_PERMUTATIONS + 1)).
    Ranks as scores make this Spearman's test; Gehan scores make it censoring-aware."""
    xc = np.asarray(x, dtype=float)
    xc = xc - float(np.mean(xc))
    s = np.asarray(scores, dtype=float)
    if np.ptp(s) == 0 or np.ptp(xc) == 0:
        return 1.0, 1.0

    def statistic(y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.sum(np.moveaxis(y, axis, -1) * xc, axis=-1)

    p = {}
    for side in ("greater", "less"):
        res = permutation_test((s,), statistic, permutation_type="pairings", vectorized=True,
                               n_resamples=N_PERMUTATIONS, alternative=side,
                               rng=np.random.default_rng(0))
        p[side] = float(res.pvalue)
    return p["greater"], p["less"]


def slope(x: Sequence[float], ys: np.ndarray) -> np.ndarray:
    """The least-squares slope of each row of ``ys`` on ``x`` (the last axis)."""
    xc = np.asarray(x, dtype=float)
    xc = xc - float(np.mean(xc))
    ys = np.asarray(ys, dtype=float)
    centred = ys - np.mean(ys, axis=-1, keepdims=True)
    return np.sum(centred * xc, axis=-1) / float(np.sum(xc ** 2))


def stratified_bootstrap(groups: Sequence[np.ndarray],
                         statistic: Callable[..., Any],
                         vectorized: bool = True) -> np.ndarray | None:
    """``statistic(*groups)`` over a stratified bootstrap: each group (a swept value's trials)
    resampled within itself, ``N_RESAMPLES`` seeded resamples (``scipy.stats.bootstrap``;
    rliable's stratified intervals). ``statistic`` takes one array per group (resamples on the
    last axis when ``vectorized``). None unless every group has >= 2 trials."""
    if any(len(g) < 2 for g in groups):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")    # a degenerate distribution: its spread is still right
        res = bootstrap([np.asarray(g, dtype=float) for g in groups], statistic,
                        n_resamples=N_RESAMPLES, vectorized=vectorized, method="percentile",
                        confidence_level=1 - ALPHA, rng=np.random.default_rng(0))
    return np.asarray(res.bootstrap_distribution, dtype=float)


def percentile_interval(distribution: np.ndarray | None) -> tuple[float, float] | None:
    """The ``1 - ALPHA`` percentile interval of a bootstrap distribution; None without one or
    when more than ``ALPHA`` / 2 of it is undefined (nan: censored medians in those
    resamples), since then an end of the interval is not known."""
    if distribution is None or not len(distribution):
        return None
    finite = np.isfinite(distribution)
    if np.mean(~finite) > ALPHA / 2:
        return None
    lo, hi = np.quantile(distribution[finite], [ALPHA / 2, 1 - ALPHA / 2])
    return float(lo), float(hi)


def mean_with_interval(values: ArrayLike) -> tuple[float, tuple[float, float] | None]:
    """The mean and its ``1 - ALPHA`` percentile bootstrap interval (None under 2 values)."""
    array = np.asarray(values, dtype=float)
    dist = stratified_bootstrap([array], lambda v, axis=-1: np.mean(v, axis=axis))
    return float(np.mean(array)), percentile_interval(dist)


def ratio_of_means(a: ArrayLike, b: ArrayLike
                   ) -> tuple[float, tuple[float, float] | None]:
    """mean(a) / mean(b) and its percentile bootstrap interval, the two samples resampled
    independently (nan when mean(b) is 0)."""
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)

    def ratio(x, y, axis=-1):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.mean(x, axis=axis) / np.mean(y, axis=axis)

    return float(ratio(xa, xb)), percentile_interval(stratified_bootstrap([xa, xb], ratio))
