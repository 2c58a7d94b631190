"""The reproduction report: phases put into synthetic curves are reported where they were put,
phases left out are reported as not seen (with the reason), and a real run carries the report in
its MLflow description, in report.md and through `grok-mlflow report`."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from grok_mlflow import Settings, train
from grok_mlflow.cli import main
from grok_mlflow.report import report_markdown, report_table, reproduction_report
from grok_mlflow.phases import smooth
from grok_mlflow.schedule import log_schedule

STEPS = log_schedule(100_000, points=80)
LOG = np.log10(np.maximum(np.array(STEPS, dtype=float), 1))


def curve(points: list[tuple[float, float]]):
    """Piecewise linear in log10(step) through (step, value) points: {step: value}."""
    xs = [np.log10(max(s, 1)) for s, _ in points]
    return dict(zip(STEPS, np.interp(LOG, xs, [v for _, v in points])))


def history(curves: dict[str, dict[int, float]]) -> dict[int, dict[str, float]]:
    """{step: {key: value}} from {key: {step: value}}; adv keys only every 4th measurement
    (PGD runs on a sparser cadence)."""
    out: dict[int, dict[str, float]] = {s: {} for s in STEPS}
    for key, values in curves.items():
        for i, s in enumerate(STEPS):
            if not key.startswith("adv/") or i % 4 == 0 or s == STEPS[-1]:
                out[s][key] = float(values[s])
    return out


PAPER_LC = curve([(0, 10), (100, 4), (8_000, 20), (100_000, 6)])       # double descent
FITS_AT_300 = curve([(0, 0.1), (300, 1.0), (100_000, 1.0)])
TEST_WITH_TRAIN = curve([(0, 0.1), (300, 0.85), (100_000, 0.88)])
TEST_GROKS = curve([(0, 0.1), (300, 0.12), (5_000, 0.12), (30_000, 0.9), (100_000, 0.92)])
ADV_LATE = curve([(0, 0.1), (300, 0.3), (10_000, 0.3), (100_000, 0.6)])
ADV_FROM_FIT = curve([(0, 0.1), (300, 0.3), (100_000, 0.6)])


def by_phase(findings):
    return {f.phase: f for f in findings}


def near(found, true, dex=0.15):
    return found is not None and abs(np.log10(found) - np.log10(true)) < dex


def test_the_papers_picture_is_reported_phase_by_phase_with_its_values():
    h = history({"lc/train": PAPER_LC, "acc/train": FITS_AT_300, "acc/test": TEST_GROKS,
                 "adv/acc/eps_0.1": ADV_LATE})
    f = by_phase(reproduction_report(h))
    assert all(x.seen for x in f.values()), [x.text for x in f.values() if not x.seen]
    assert near(f["first descent"].step, 100) and f["first descent"].start == 10.0
    # values are the raw curve's at the detected steps
    assert f["first descent"].end == PAPER_LC[f["first descent"].step] < 4.5
    assert near(f["ascent"].step, 8_000) and f["ascent"].end == PAPER_LC[f["ascent"].step] > 19
    assert 8_000 < f["second descent"].step < 20_000
    lc = [PAPER_LC[s] for s in STEPS]
    assert f["second descent"].end == pytest.approx(smooth(lc, 5)[-1])   # the smoothed end
    assert f["second descent"].end < 7
    assert f["interpolation"].step == min(s for s in STEPS if FITS_AT_300[s] >= 0.99)
    assert near(f["delayed generalization"].step, 25_000, dex=0.3)
    assert f["delayed generalization"].start == pytest.approx(0.12, abs=0.01)
    robust = f["delayed robustness (eps 0.1)"]
    adv_steps = sorted(s for s in h if "adv/acc/eps_0.1" in h[s])
    before = [s for s in adv_steps if s < 10_000][-2]
    assert before <= robust.step <= 10_000   # within the smoothing window (3 PGD points)
    assert robust.start == 0.3 and robust.end == pytest.approx(0.6)
    text = report_markdown(list(f.values()), title="synthetic")
    assert text.startswith("### What this run showed: synthetic")
    assert "| delayed robustness (eps 0.1) | yes |" in text


def test_phases_that_did_not_happen_are_reported_as_not_seen_with_the_reason():
    falling = curve([(0, 10), (100_000, 2)])
    h = history({"lc/train": falling, "acc/train": FITS_AT_300, "acc/test": TEST_WITH_TRAIN})
    f = by_phase(reproduction_report(h))
    assert not f["first descent"].seen and "never rose again" in f["first descent"].text
    assert not f["ascent"].seen and not f["second descent"].seen
    assert f["interpolation"].seen
    gen = f["delayed generalization"]
    assert not gen.seen and gen.text.startswith("no delay") and gen.step <= 300
    assert not any(p.startswith("delayed robustness") for p in f)   # no PGD measured


def test_robustness_rising_from_interpolation_on_is_not_delayed():
    h = history({"lc/train": PAPER_LC, "acc/train": FITS_AT_300, "acc/test": TEST_WITH_TRAIN})
    adv = {s: ADV_FROM_FIT[s] for s in STEPS}
    for i, s in enumerate(STEPS):
        if i % 4 == 0 or s == STEPS[-1]:
            h[s]["adv/acc/eps_0.05"] = adv[s]
            h[s]["adv/acc/eps_0.2"] = 0.0            # flat at zero: never rises
    f = by_phase(reproduction_report(h))
    assert not f["delayed robustness (eps 0.05)"].seen
    assert f["delayed robustness (eps 0.05)"].text.startswith("no delay")
    flat = f["delayed robustness (eps 0.2)"]
    assert not flat.seen and "did not rise 0.05" in flat.text


def test_an_lc_that_stays_up_or_only_dips_has_no_second_descent():
    stays = curve([(0, 10), (100, 4), (8_000, 20), (100_000, 20)])
    dips = curve([(0, 10), (100, 4), (8_000, 20), (20_000, 17.5), (100_000, 18)])
    for lc, words in ((stays, "stayed at its peak"), (dips, "only")):
        f = by_phase(reproduction_report(history({"lc/train": lc, "acc/train": FITS_AT_300})))
        assert f["first descent"].seen and f["ascent"].seen
        assert not f["second descent"].seen and words in f["second descent"].text


def test_a_run_that_never_fits_or_generalises_says_so():
    chance = curve([(0, 0.1), (100_000, 0.12)])
    h = history({"lc/train": PAPER_LC, "acc/train": curve([(0, 0.1), (100_000, 0.6)]),
                 "acc/test": chance})
    for s in STEPS[::4]:
        h[s]["adv/acc/eps_0.1"] = 0.1
    f = by_phase(reproduction_report(h))
    assert not f["interpolation"].seen and "at most 0.600" in f["interpolation"].text
    assert not f["delayed generalization"].seen
    assert "no generalization" in f["delayed generalization"].text
    assert "never interpolated" in f["delayed robustness (eps 0.1)"].text


def test_several_radii_get_their_own_lc_phases_and_a_missing_curve_is_not_measured():
    flat = curve([(0, 3), (100_000, 3)])
    h = history({"lc_r0.05/train": PAPER_LC, "lc_r0.005/train": flat})
    f = by_phase(reproduction_report(h))
    assert [p for p in f if p.endswith(")") and "r=" in p] == [
        "first descent (r=0.005)", "ascent (r=0.005)", "second descent (r=0.005)",
        "first descent (r=0.05)", "ascent (r=0.05)", "second descent (r=0.05)"]
    assert f["second descent (r=0.05)"].seen and not f["ascent (r=0.005)"].seen
    assert f["interpolation"].text == "train accuracy not measured"


def test_a_table_of_many_runs_has_a_row_each_and_a_column_per_phase():
    seen = reproduction_report(history({"lc/train": PAPER_LC, "acc/train": FITS_AT_300}))
    unseen = reproduction_report(history({"lc/train": curve([(0, 5), (100_000, 1)])}))
    table = report_table({"wd=0": seen, "wd=0.1": unseen}).splitlines()
    assert table[0].startswith("| run | first descent | ascent | second descent |")
    assert table[2].startswith("| wd=0 | step ") and table[3].startswith("| wd=0.1 | no | no |")


def test_a_finished_run_carries_its_report_and_the_cli_prints_it(capsys):
    settings = Settings(steps=60, depth=2, width=16, eval_points=6, lc_samples=40,
                        lc_directions=5, adv_samples=40, adv_points=3, adv_steps=3,
                        train_size=300, batch_size=50, partition_every=0)
    result = train(settings, progress=False)
    run = MlflowClient().get_run(result.run_id)
    note = run.data.tags["mlflow.note.content"]
    assert note.startswith("### What this run showed: digits_mlp:train_size=300,depth=2,")
    assert mlflow.artifacts.load_text(f"runs:/{result.run_id}/report.md") == note
    for phase in ("first descent", "ascent", "second descent", "interpolation",
                  "delayed generalization", "delayed robustness (eps 0.1)"):
        assert f"| {phase} |" in note
    capsys.readouterr()
    assert main(["report", result.run_id]) == 0
    assert capsys.readouterr().out == note
    assert main(["report", "no-such-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("grok-mlflow: error: report: no grok_mlflow history for run")
    assert len(err.splitlines()) == 1
