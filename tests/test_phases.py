"""Phase detection on synthetic curves with known change points, and on a real short run."""

from __future__ import annotations

import numpy as np
import pytest

from grok_mlflow.phases import detect_phases, smooth
from grok_mlflow.schedule import log_schedule

STEPS = log_schedule(100_000, points=80)


def history_from(**curves):
    """{step: {key: f(step)}} for curves given as functions of the step."""
    return {s: {key.replace("__", "/"): float(f(s)) for key, f in curves.items()} for s in STEPS}


def lc_curve(first_min=100, peak=5_000, onset_drop_at=None):
    """Piecewise linear in log10(step): 10 -> 4 at first_min -> 20 at peak -> 6 at 1e5."""
    ls = np.log10(np.maximum(np.array(STEPS, dtype=float), 1))
    lf, lp, le = np.log10(first_min), np.log10(peak), 5.0
    values = np.interp(ls, [0, lf, lp, le], [10, 4, 20, 6])
    table = dict(zip(STEPS, values))
    return lambda s: table[s]


def test_smooth_keeps_constants_and_length():
    assert np.allclose(smooth([3.0] * 7, 5), 3.0)
    assert len(smooth(np.arange(10.0), 5)) == 10
    assert np.allclose(smooth(np.arange(10.0), 3)[1:-1], np.arange(1.0, 9.0))


def test_lc_phases_are_found_where_they_were_put():
    phases = detect_phases(history_from(lc__train=lc_curve(100, 5_000)), window=1)
    near = lambda found, true: abs(np.log10(found) - np.log10(true)) < 0.15  # noqa: E731
    assert near(phases["grok/lc_first_min_step"], 100)
    assert near(phases["grok/lc_peak_step"], 5_000)
    onset = phases["grok/migration_onset_step"]
    assert 5_000 < onset < 20_000   # within the first 5% of the descent after the peak


def test_smoothing_ignores_noise_spikes():
    rng = np.random.default_rng(0)
    base = lc_curve(100, 5_000)
    noise = {s: rng.normal(0, 0.3) for s in STEPS}
    phases = detect_phases(history_from(lc__train=lambda s: base(s) + noise[s]), window=5)
    assert abs(np.log10(phases["grok/lc_peak_step"]) - np.log10(5_000)) < 0.3


def test_absent_phases_are_absent_not_zero():
    monotone = detect_phases(history_from(lc__train=lambda s: 10.0 / (1 + s),
                                          acc__train=lambda s: 0.5,
                                          acc__test=lambda s: 0.1 + 0.02 * (s > 50)))
    assert "grok/lc_first_min_step" not in monotone and "grok/lc_peak_step" not in monotone
    assert "grok/interpolation_step" not in monotone
    assert "grok/generalization_step" not in monotone     # stuck near chance
    assert "grok/robustness_onset_step" not in monotone and "grok/delay_steps" not in monotone


def test_accuracy_phases_and_delayed_robustness():
    steps = np.array(STEPS)
    history = history_from(**{
        "acc__train": lambda s: min(1.0, 0.1 + s / 300),        # reaches 0.99 at step 267
        "acc__test": lambda s: min(0.9, 0.1 + s / 250),          # final 0.9; 95% (0.855) at 189
        "adv__acc__eps_0.1": lambda s: (0.2 if s < 20_000 else
                                        0.2 + 0.6 * np.log10(s / 20_000) / np.log10(5))})
    phases = detect_phases(history, window=1)
    first_at = lambda thr, f: int(steps[np.argmax([f(s) >= thr for s in steps])])  # noqa: E731
    assert phases["grok/interpolation_step"] == first_at(0.99, lambda s: 0.1 + s / 300)
    assert phases["grok/generalization_step"] == first_at(0.855, lambda s: 0.1 + s / 250)
    onset = phases["grok/robustness_onset_step"]
    assert 15_000 <= onset <= 25_000   # the floor ends at 20,000
    assert phases["grok/delay_steps"] == onset - phases["grok/interpolation_step"]


@pytest.mark.parametrize("lc_key", ["lc/train", "lc_r0.05/train"])
def test_the_lc_key_is_configurable(lc_key):
    history = history_from(**{lc_key.replace("/", "__"): lc_curve(100, 5_000)})
    assert "grok/lc_peak_step" in detect_phases(history, lc_key=lc_key)


def test_the_dominant_ascent_wins_over_an_early_wobble():
    """Fig. 10's shape on a dense early schedule: LC falls 47 -> 21 with a small wobble on the
    way (+2 at steps 8-19), rises 21 -> 29 (steps 120-300), then slowly falls to 19. The ascent
    is the large rise, not the wobble; its shape quantities follow from the curve."""
    steps = np.array(sorted(set(range(1, 40)) | set(range(40, 15_001, 20))))
    knots = ([1, 8, 19, 30, 120, 300, 3_000, 15_000], [47, 44, 46, 40, 21, 29, 26, 19])
    lc = np.interp(steps, *knots)
    phases = detect_phases({int(s): {"lc/train": float(v)} for s, v in zip(steps, lc)},
                           window=1)
    assert phases["grok/lc_first_min_step"] == 120
    assert phases["grok/lc_peak_step"] == 300
    assert phases["grok/lc_peak_value"] == pytest.approx(29.0)
    assert phases["grok/ascent_steps"] == 180
    assert 300 < phases["grok/migration_onset_step"] < 3_000   # 5% of the ascent: 28.6
    assert phases["grok/descent_depth"] == pytest.approx((29 - 19) / (29 - 21))


def test_shape_quantities_are_absent_without_a_second_descent():
    rising = detect_phases(history_from(lc__train=lambda s: np.log10(s + 1) + 1.0), window=1)
    assert rising["grok/lc_peak_step"] == STEPS[-1] and "grok/lc_peak_value" in rising
    assert "grok/migration_onset_step" not in rising and "grok/descent_depth" not in rising


def test_the_real_fig10_cpu_history():
    """The fig. 10 CPU preset's seed-0 run (p = 113, 50% of pairs, 2,500 steps; README "Fig. 10"),
    its history as recorded: LC (r = 0.05) rises 54.3 -> 62.9 in the first 24 steps, falls to
    27.5 by interpolation (step 200), drifts to 23.9 while test accuracy climbs to 1.0 (step
    1,050) and falls to 17.3 by step 2,500. The only rise is the early one; the grokking is
    delayed 5x after interpolation."""
    from grok_mlflow.history import read_history_csv
    from grok_mlflow.report import reproduction_report

    from conftest import REPO

    history = read_history_csv((REPO / "tests" / "data" / "fig10_cpu_seed0_history.csv")
                               .read_text())
    phases = detect_phases(history, lc_key="lc_r0.005/train")
    assert phases["grok/interpolation_step"] == 200
    assert phases["grok/generalization_step"] == 1050
    wide = detect_phases(history, lc_key="lc_r0.05/train")
    assert (wide["grok/lc_first_min_step"], wide["grok/lc_peak_step"]) == (0, 21)
    assert wide["grok/migration_onset_step"] == 24
    assert wide["grok/descent_depth"] > 1            # ends far below where the rise began
    found = {f.phase: f for f in reproduction_report(history)}
    assert found["delayed generalization"].seen and found["delayed generalization"].step == 1050
