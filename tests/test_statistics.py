"""The statistics under the verdicts (findings/statistics.py): Kaplan-Meier medians of censored
steps, Gehan scores, the permutation trend test and its exactness, slopes, the bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grok_mlflow.findings.statistics import (
    decode,
    encode,
    gehan_scores,
    km_median,
    percentile_interval,
    slope,
    stratified_bootstrap,
    trend_test,
)


def test_the_kaplan_meier_median_of_censored_steps():
    """The depth-5 trials of the MNIST depth sweep: onsets 2,456, 7,630, 8,928 and one trial
    without a migration by 30,000. Averaging 30,000.5 in gave 12,254; the survival curve sits
    at 0.5 between 7,630 and 8,928, so the median is their midpoint, 8,279."""
    km = km_median([2456, 7630, 8928, 30000], [False, False, False, True])
    assert km.estimate == pytest.approx(8279.0) and not km.censored
    assert km.low == 2456 and km.high == math.inf          # 95%: not bounded above by 4 trials
    assert km_median([1, 2, 3], [False] * 3).estimate == 2.0       # no censoring: the median
    assert km_median([1, 2, 3, 4], [False] * 4).estimate == 2.5
    assert km_median([5, 9, 9], [False, True, True]).censored      # half or more censored
    # one onset and one trial censored after it: S = 0.5 to the end, the median is later
    assert km_median([7000, 30000], [False, True]).censored
    assert km_median([9, 9], [True, True]).censored


def test_gehan_scores_are_centred_ranks_without_censoring():
    assert list(gehan_scores([1, 2, 3], [False] * 3)) == [-2, 0, 2]
    assert list(gehan_scores([1, 1, 3], [False] * 3)) == [-1, -1, 2]     # ties share
    # a censored trial is later than every step seen before its last step, undetermined after
    assert list(gehan_scores([1, 5, 3], [False, True, False])) == [-2, 2, 0]
    assert list(gehan_scores([4, 5, 3], [False, True, False])) == [0, 2, -2]
    steps, censored = decode(encode([3, 7], [False, True]))
    assert list(steps) == [3, 7] and list(censored) == [False, True]


def test_the_trend_test_is_exact_up_to_7_trials():
    """n! orderings: 5 trials in perfect order give p = 1/120 exactly; 8 trials are resampled
    (9,999 seeded), so p >= 1/10,000."""
    rising, falling = trend_test([0, 1, 2, 3, 4], [1, 2, 3, 4, 5])
    assert rising == pytest.approx(1 / 120) and falling == pytest.approx(1.0)
    rising, _ = trend_test(np.arange(8), np.arange(8))
    assert 1 / 10_000 <= rising < 1e-3
    assert trend_test([0, 1, 2], [5, 5, 5]) == (1.0, 1.0)              # no order: no trend


def test_slopes_and_the_stratified_bootstrap():
    assert slope([0, 1, 2], np.array([[1, 3, 5], [2, 2, 2]])).tolist() == [2.0, 0.0]
    groups = [np.array([1.0, 1.2]), np.array([2.0, 2.2]), np.array([3.0, 3.2])]
    dist = stratified_bootstrap(groups, lambda *g, axis=-1: slope(
        [0, 1, 2], np.stack([np.mean(x, axis=-1) for x in g], axis=-1)))
    assert dist.shape == (2000,) and np.allclose(dist, 1.0, atol=0.2)
    low, high = percentile_interval(dist)
    assert low <= 1.0 <= high
    assert stratified_bootstrap([np.array([1.0]), np.array([2.0, 3.0])], np.mean) is None
    assert percentile_interval(np.array([1.0] * 90 + [np.nan] * 10)) is None   # > 2.5% undefined


def test_a_mean_and_a_ratio_of_means_with_their_bootstrap_intervals():
    from grok_mlflow.findings.statistics import mean_with_interval, ratio_of_means

    mean, (lo, hi) = mean_with_interval([1, 2, 3, 4, 5, 6])
    assert mean == 3.5 and 1 < lo < 3.5 < hi < 6
    assert mean_with_interval([4, 4, 4]) == (4.0, (4.0, 4.0))
    assert mean_with_interval([4]) == (4.0, None)          # one value: no interval
    ratio, (lo, hi) = ratio_of_means([5, 5, 5], [2, 3, 2.5])
    # each extreme resample (all 3s, all 2s) has chance 1/27 > 2.5%: the ends are 5/3 and 5/2
    assert ratio == 2.0 and (lo, hi) == pytest.approx((5 / 3, 5 / 2))
    assert ratio_of_means([1, 2], [0, 0])[1] is None        # 0 / 0 in every resample
