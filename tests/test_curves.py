"""A measured curve as the phases read it: smoothing, and whether a curve still moves at its end
(a rise, a plateau, a spike, an arrival, a peak inside the last stretch)."""

from __future__ import annotations

import numpy as np

from grok_mlflow.findings.curves import moving_at_end, smooth
from grok_mlflow.tracker.schedule import log_schedule

END = log_schedule(3_000, points=30)


def test_smooth_keeps_constants_and_length():
    assert np.allclose(smooth([3.0] * 7, 5), 3.0)
    assert len(smooth(np.arange(10.0), 5)) == 10
    assert np.allclose(smooth(np.arange(10.0), 3)[1:-1], np.arange(1.0, 9.0))


def test_a_curve_still_rising_at_the_end_is_moving_and_a_plateau_is_not():
    steps = np.array(END)
    x = np.log1p(steps)
    rising = 0.1 + 0.8 * x / x[-1]                          # still climbing at the last step
    plateau = np.minimum(0.1 + 0.8 * x / np.log1p(300), 0.9)  # flat from step 300 on
    rng = np.random.default_rng(0)
    noisy_flat = plateau + rng.normal(0, 0.005, len(steps))  # flat within its noise
    late = plateau.copy()
    late[-3:] += [0.03, 0.06, 0.09]                           # a late rise inside the stretch
    spike = plateau.copy()
    spike[-1] += 0.08                                          # one spike at the last point
    trend = moving_at_end(steps, rising, material=0.02)
    assert trend.moving and trend.first_step >= 1_400 and trend.last_step == 3_000
    assert trend.end - trend.start > 0.05
    assert not moving_at_end(steps, plateau, material=0.02).moving
    assert not moving_at_end(steps, noisy_flat, material=0.02).moving
    assert moving_at_end(steps, late, material=0.02).moving
    # the spike: the fitted slope and its error rise together; with the stretch's other points
    # flat the trend is not significant, so one spike alone does not keep a run going
    assert not moving_at_end(steps, spike, material=0.02).moving


def test_test_accuracy_that_has_held_its_level_since_mid_stretch_has_arrived():
    """Test accuracy that climbed inside the last stretch and has held its level since the
    stretch's middle has arrived (not moving), though a line through climb and plateau slopes;
    one that reached its level later is still moving. LC is never read this way (a slow
    descent can hold within a tenth of its height for half a stretch and still be falling)."""
    steps = np.array(log_schedule(8_000, points=40) + list(range(100, 8_001, 100)))
    steps = np.unique(steps)
    x = np.log1p(steps)

    def climb(done_at: int) -> np.ndarray:        # 0.05 until 2,000, then up to 1.0 by done_at
        return np.interp(x, [0, np.log1p(2_000), np.log1p(done_at), x[-1]], [0.05, 0.05, 1, 1])

    early, late = climb(3_800), climb(6_500)      # the stretch is ~3,270-8,000, its middle ~5,100
    assert moving_at_end(steps, early, material=0.02).moving          # the line alone
    arrived = moving_at_end(steps, early, material=0.02, arrival=True)
    assert not arrived.moving and 3_800 <= arrived.first_step <= 4_000
    assert not moving_at_end(steps, early, material=0.02, arrival=True, whole_stretch=True).moving
    assert moving_at_end(steps, late, material=0.02, arrival=True).moving
    assert moving_at_end(steps, late, material=0.02, arrival=True, whole_stretch=True).moving


def test_the_settled_rule_sees_a_peak_or_a_fall_inside_the_last_stretch():
    """A straight line through a stretch that holds a peak and the first of the fall after it
    can be flat (not significant); the settled rule's whole-stretch check still sees the curve
    moving. A descent towards 0 has settled once what is left of it is under a tenth of the
    curve's largest value (not of its own shrinking level)."""
    steps = np.array(END)
    x = np.log1p(steps)
    peak_at = np.log1p(2_100)                         # inside the last tenth (~1,400-3,000)
    bump = 1.0 - 4.0 * np.abs(x - peak_at)             # rises to 1.0, then falls
    line = moving_at_end(steps, bump, material=0.1)
    assert not line.moving                             # the fitted line barely slopes
    stretch = moving_at_end(steps, bump, material=0.1, whole_stretch=True)
    assert stretch.moving and stretch.last_step == 3_000
    assert abs(stretch.start - stretch.end) > 0.1      # a value of the stretch far from the last
    tail = 0.02 * np.exp(-(x - x[0]))                  # what is left: 2% of a curve whose top is 1
    assert not moving_at_end(steps, tail, material=0.1, whole_stretch=True).moving
