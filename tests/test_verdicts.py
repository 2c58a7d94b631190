"""The paper's claims judged over a sweep's trials: the verdict rules on synthetic trial tables
(effects with intervals, censoring, the false-positive rate on null sweeps, radii, coverage)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grok_mlflow.findings.claims import Claim
from grok_mlflow.findings.verdicts import evaluate, spearman

Q = "grok/migration_onset_step"
WIDTHS = [16, 64, 256, 1024]


def table(values, seeds=3, key=Q, spread=0.02):
    """Trials over WIDTHS: values[i] (None = phase not seen) at every seed of width i, the
    seeds at values[i] x (1 - spread, 1, 1 + spread)."""
    offsets = np.linspace(-spread, spread, seeds) if seeds > 1 else [0.0]
    return [({"width": w, "seed": s}, {} if v is None else {key: float(v) * (1 + o)})
            for w, v in zip(WIDTHS, values) for s, o in enumerate(offsets)]


def verdict(trend, values, **claim):
    c = Claim(text="t", quantity=claim.pop("quantity", Q), trend=trend, versus="width", **claim)
    return evaluate(c, table(values), WIDTHS)


def test_spearman_is_exact_on_known_cases():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]) == pytest.approx(0.9)   # one swap
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))


@pytest.mark.parametrize("trend, values, status", [
    ("decreasing", [900, 500, 300, 200], "supported"),
    ("decreasing", [200, 300, 500, 900], "contradicted"),
    ("decreasing", [900, 300, 600, 500], "inconclusive"),           # rho = -0.4
    ("decreasing", [900, None, None, 200], "inconclusive"),         # seen in 2 of 4
    ("increasing", [1, 2, 3, 4], "supported"),
    ("increasing", [4, 3, 2, 1], "contradicted"),
    ("increasing", [5, 5, 5, 5], "inconclusive"),    # no rise: no evidence against either
    ("constant", [100, 105, 95, 102], "supported"),
    ("constant", [100, 200, 400, 800], "contradicted"),
    ("constant", [100, 300, 90, 250], "inconclusive"),
    ("rise_then_fall", [10, 30, 25, 5], "supported"),
    ("rise_then_fall", [10, 20, 30, 40], "contradicted"),
    ("rise_then_fall", [30, 10, 25, 5], "contradicted"),    # largest at an end, falling (p < 0.05)
    ("rise_then_fall", [10, 25, 9, 24], "inconclusive"),    # zigzag: no shape, no trend
    ("absent", [None, None, None, None], "supported"),
    ("absent", [1, 2, 3, None], "contradicted"),
    ("absent", [1, None, None, None], "inconclusive"),
    ("present", [1, 2, 3, 4], "supported"),
    ("present", [None, None, None, 4], "contradicted"),
    ("present", [1, 2, None, 4], "inconclusive"),
])
def test_each_trend_is_supported_contradicted_or_inconclusive(trend, values, status):
    assert verdict(trend, values).status == status


def test_the_effect_comes_first_with_its_interval_seeds_and_censoring():
    trials = table([900, 500, 300, 200], seeds=2, spread=0.0)
    trials[1] = ({"width": 16, "seed": 1}, {Q: 700.0})             # seeds 900 and 700
    v = evaluate(Claim("Width hastens migration", Q, "decreasing", "width"), trials, WIDTHS)
    assert v.status == "supported" and v.rho == pytest.approx(-1.0)
    # a phase step is summarised by its median (of 900 and 700: 800)
    assert v.points == ((16, 800.0), (64, 500.0), (256, 300.0), (1024, 200.0))
    # the effect: the slope of log(median) on log2(width), as % per doubling
    slope = np.polyfit(np.log2(WIDTHS), np.log([800, 500, 300, 200]), 1)[0]
    assert v.effect == pytest.approx(100 * np.expm1(slope))
    assert v.effect_unit == "% per doubling of width"
    low, high = v.effect_interval
    assert low <= v.effect <= high < 0
    assert v.reason.startswith(f"{v.effect:+.1f}% per doubling of width [95% interval "
                               f"{low:+.1f}%, {high:+.1f}%] (4 values x 2 seeds; 0 of 8 "
                               "censored); trend p = ")
    assert "permutation test of ranks over 8 trials, 9999 seeded resamples" in v.reason
    # one trial at some value: an effect without an interval, which cannot decide
    one = evaluate(Claim("t", Q, "decreasing", "width"), table([900, 500, 300, 200], seeds=1),
                   WIDTHS)
    assert one.status == "inconclusive" and one.effect_interval is None
    assert "(no interval: one trial at some value)" in one.reason
    # 4 trials: exact (4! = 24 orderings), p = 1/24 for the perfect order
    assert one.p_value == pytest.approx(1 / 24) and "exact" in one.reason
    few = verdict("decreasing", [900, None, None, 200])
    assert few.reason.startswith(f"{Q} not seen in 6 of 12 trials")


def test_where_selects_the_trials_an_absent_claim_is_about():
    trials = [({"batchnorm": False, "seed": 0}, {Q: 500.0}), ({"batchnorm": True, "seed": 0}, {}),
              ({"batchnorm": False, "seed": 1}, {Q: 400.0}), ({"batchnorm": True, "seed": 1}, {})]
    claim = Claim("BN removes migration", Q, "absent", "batchnorm", where={"batchnorm": True})
    v = evaluate(claim, trials, [False, True])
    assert v.status == "supported" and v.points == ((False, 1.0), (True, 0.0))
    assert evaluate(Claim("x", Q, "absent", "batchnorm"), trials, [False, True]).status \
        == "inconclusive"                                            # all trials: 2 of 4 have it


def test_a_present_claim_on_one_arm_versus_seed_shows_that_arms_share_per_seed():
    """`versus: seed` with `where: {arm: a}`: each seed's point is arm a's own (1.0 where a has
    the phase), not the share over both arms at that seed (0.5 before)."""
    trials = [({"arm": arm, "seed": s}, {Q: 500.0} if arm == "a" else {})
              for arm in ("a", "b") for s in range(3)]
    v = evaluate(Claim("a migrates", Q, "present", "seed", where={"arm": "a"}), trials, [0, 1, 2])
    assert v.status == "supported" and v.points == ((0, 1.0), (1, 1.0), (2, 1.0))


FIVE = [16, 32, 64, 128, 256]


def seeded(means, spread, seeds=4, key=Q, brackets=None):
    """Trials over FIVE: at value i, ``seeds`` trials means[i] + spread * (-1.5, -0.5, 0.5,
    1.5)[seed]; with ``brackets`` (a fraction), each trial's step bracket is value * (1 -+ it)."""
    offsets = np.linspace(-1.5, 1.5, seeds)
    out = []
    for w, m in zip(FIVE, means):
        for s, o in enumerate(offsets):
            v = float(m + spread * o)
            metrics = {key: v}
            if brackets is not None:
                metrics.update({key + "_low": v * (1 - brackets), key + "_high": v * (1 + brackets)})
            out.append(({"width": w, "seed": s}, metrics))
    return out


def judged(trials, trend="decreasing", key=Q, **claim):
    return evaluate(Claim("t", key, trend, "width", **claim), trials, FIVE)


def test_verdicts_over_seeds_need_the_test_and_the_interval_on_their_side():
    clear = judged(seeded([1000, 800, 600, 400, 200], spread=20))
    assert clear.status == "supported" and clear.effect_interval[1] < 0
    assert clear.p_value < 0.001
    against = judged(seeded([200, 400, 600, 800, 1000], spread=20))
    assert against.status == "contradicted" and against.effect_interval[0] > 0
    # the same perfect order of the means, but seeds that scatter more than the whole trend:
    # inconclusive, with an interval that says how large an effect it could have missed; with
    # less scatter the four seeds settle it
    trend = [10_000, 9_000, 8_000, 7_000, 6_000]
    noisy = judged(seeded(trend, spread=3_000))
    assert noisy.rho == pytest.approx(-1.0) and noisy.effect_interval[1] > 0
    assert noisy.status == "inconclusive"
    assert judged(seeded(trend, spread=1_000)).status == "supported"
    # no effect at all is never evidence against the claim: an interval around 0 is
    # inconclusive (the old rule read "interval <= 0.2" as contradicted)
    flat = judged(seeded([500, 500, 500, 500, 500], spread=50))
    assert flat.status == "inconclusive" and flat.effect_interval[0] < 0 < flat.effect_interval[1]


def test_the_rule_decides_on_at_most_5_percent_of_null_sweeps():
    """Issue 49: the old rule decided 12.5% of null sweeps. 400 seeded null sweeps (5 values x
    4 and x 5 seeds, normal noise, no effect): supported + contradicted <= 5%; an effect of 2
    within-value SDs across the sweep is found in most."""
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location(
        "calibrate_claims", REPO / "benchmarks" / "calibrate_claims.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rates = module.rates

    for seeds in (4, 5):
        null = rates(400, seeds, 0.0, seed=1)
        assert null.get("supported", 0) + null.get("contradicted", 0) <= 20, null
    power = rates(100, 5, 2.0, seed=1)
    assert power.get("supported", 0) >= 75 and not power.get("contradicted"), power


def test_censored_steps_enter_as_kaplan_meier_medians_never_averaged():
    """Issue 49's depth-5 example: onsets 2,456, 7,630, 8,928 and one trial censored at
    30,000. The old rule averaged 30,000.5 in (12,254); the Kaplan-Meier median is 8,279."""
    trials = []
    for depth, onsets in {1: [3000, 3500, 4000, 4200], 2: [2500, 2600, 3000, 3100],
                          5: [2456, 7630, 8928, None]}.items():
        for s, v in enumerate(onsets):
            trials.append(({"depth": depth, "seed": s},
                           {Q: float(v), "grok/migration_onset_censored": 0.0} if v else
                           {Q + "_low": 30_000.0, "grok/migration_onset_censored": 1.0}))
    v = evaluate(Claim("depth hastens", Q, "decreasing", "depth"), trials, [1, 2, 5])
    assert dict(v.points)[5] == pytest.approx(8279.0)
    assert "1 of 12 censored" in v.reason and "Gehan scores" in v.reason
    # a value whose median is itself censored: no effect can be measured
    late = [(o, {Q + "_low": 30_000.0, "grok/migration_onset_censored": 1.0})
            if o["depth"] == 5 and o["seed"] < 2 else (o, m) for o, m in trials]
    v = evaluate(Claim("depth hastens", Q, "decreasing", "depth"), late, [1, 2, 5])
    assert v.status == "inconclusive" and "the median at depth = 5 is censored" in v.reason


def test_phase_steps_within_their_brackets_are_not_resolved_not_contradicted():
    """Issue 36's random-labels sweep: every count's peak at the same measured step. With
    brackets of +-25% and means 5% apart, no value's bracket leaves the others'."""
    flat = judged(seeded([8000, 8100, 8200, 8300, 8400], spread=300, brackets=0.25),
                  trend="increasing")                   # seeds scatter more than the trend
    assert flat.status == "not resolved"
    assert "differ by less than their phase steps' brackets" in flat.reason
    wrong_way = judged(seeded([8400, 8300, 8200, 8100, 8000], spread=0, brackets=0.25),
                       trend="increasing")
    assert wrong_way.status == "not resolved"           # not "contradicted" within brackets
    # four seeds that agree resolve a trend the grid cannot: supported, brackets named
    seeds = judged(seeded([8000, 8100, 8200, 8300, 8400], spread=0, brackets=0.25),
                   trend="increasing")
    assert seeds.status == "supported" and "; brackets 16: " in seeds.reason
    wide = judged(seeded([8000, 9000, 10000, 11000, 12000], spread=0, brackets=0.1),
                  trend="increasing")
    assert wide.status == "supported"                   # 8,000 +- 10% and 12,000 +- 10% apart


def test_a_claim_about_a_range_the_sweep_never_reached_is_not_covered():
    from grok_mlflow.findings.claims import PaperSetting

    paper = PaperSetting(values=(20, 100, 500, 1000, 2000), model="MLP, depth 3",
                         data="MNIST", radius=0.005, reach=(20, 2000),
                         note="the fall is at width 2000")
    v = judged(seeded([1, 2, 3, 4, 5], spread=0.1, key="grok/lc_peak_value"),
               trend="rise_then_fall", key="grok/lc_peak_value", paper=paper)
    assert v.status == "not covered"
    assert ("the claim is about width 20-2000 in the paper (the fall is at width 2000); this "
            "sweep covers 16-256: not covered") in v.reason
    assert "the paper: MLP, depth 3 on MNIST" in v.reason


def test_each_verdict_names_its_radius_one_per_measured_radius_by_default():
    from grok_mlflow.findings.claims import PaperSetting
    from grok_mlflow.findings.verdicts import evaluate_all

    trials = []
    for w, fast, slow in zip(FIVE, [1, 2, 3, 4, 5], [5, 4, 3, 2, 1]):
        for s in range(2):
            trials.append(({"width": w, "seed": s},
                           {"grok_r0.005/lc_peak_value": fast + 0.01 * s,
                            "grok_r0.05/lc_peak_value": slow + 0.01 * s}))
    claim = Claim("peak grows", "grok/lc_peak_value", "increasing", "width")
    both = evaluate_all(claim, trials, FIVE)
    assert [(v.radius, v.status) for v in both] == [(0.005, "supported"),
                                                    (0.05, "contradicted")]
    assert both[0].reason.startswith("r = 0.005: ") and both[1].reason.startswith("r = 0.05: ")
    paper = Claim("peak grows", "grok/lc_peak_value", "increasing", "width",
                  paper=PaperSetting(radius=0.005))
    assert [v.radius for v in evaluate_all(paper, trials, FIVE)] == [0.005]
    named = Claim("peak grows", "grok/lc_peak_value", "increasing", "width", radius=0.05,
                  paper=PaperSetting(radius=0.005))
    (v,) = evaluate_all(named, trials, FIVE)
    assert v.radius == 0.05 and v.status == "contradicted"
    assert "the paper reads r = 0.005" in v.reason
    missing = Claim("x", "grok/lc_peak_value", "increasing", "width", radius=0.5)
    assert "r = 0.5 was not measured (measured: 0.005, 0.05)" in \
        evaluate_all(missing, trials, FIVE)[0].reason


def test_censored_slow_trials_are_kept_and_keeping_them_changes_the_verdict():
    """Issue 41: 'X hastens migration'. At the two largest values one seed of each migrated
    early and the other had not migrated by its last step (30,000). Dropping those two reads a
    clean decrease; kept as censored at 30,000 they rank above every onset seen, and the
    verdict no longer supports the claim."""
    onsets = {16: (9_000, 9_400), 32: (10_000, 10_400), 64: (8_000, 8_400),
              128: (7_000, None), 256: (6_000, None)}
    trials = []
    for w, pair in onsets.items():
        for s, v in enumerate(pair):
            m = ({Q: float(v), Q + "_low": v * 0.9, Q + "_high": v * 1.1,
                  "grok/migration_onset_censored": 0.0} if v is not None else
                 {Q + "_low": 30_000.0, "grok/migration_onset_censored": 1.0})
            trials.append(({"width": w, "seed": s}, m))
    claim = Claim("Width hastens migration", Q, "decreasing", "width")
    dropped = evaluate(claim, [t for t in trials if Q in t[1]], FIVE)
    kept = evaluate(claim, trials, FIVE)
    assert dropped.effect < 0 and dropped.rho == pytest.approx(-0.9)
    # one onset and one trial censored after it: the median is somewhere later, not 7,000
    assert kept.status == "inconclusive" and "the median at width = 128, 256 is censored" in \
        kept.reason
    assert "2 of 10 censored" in kept.reason
    # every trial censored: the verdict would rest on censored trials alone
    late = [(o, {Q + "_low": 30_000.0, "grok/migration_onset_censored": 1.0}) for o, _ in trials]
    alone = evaluate(claim, late, FIVE)
    assert alone.status == "inconclusive" and "censored trials alone" in alone.reason
    # absent / present: 'not seen by step N' is told from absent
    absent = evaluate(Claim("never", Q, "absent", "width"), late, FIVE)
    assert "not seen by step 30,000, its last (it may come later)" in absent.reason


def test_absent_where_a_setting_holds_needs_the_others_to_have_it():
    """The batch-norm sweep on MNIST: delayed robustness absent with batch norm, and absent
    without it too: nothing for batch norm to remove, so no support."""
    trials = [({"batchnorm": b, "seed": s}, {}) for b in (False, True) for s in range(2)]
    claim = Claim("BN removes grokking", "grok/delay_steps", "absent", "batchnorm",
                  where={"batchnorm": True})
    v = evaluate(claim, trials, [False, True])
    assert v.status == "inconclusive"
    assert "absent in the 2 other trials too: no contrast to attribute to batchnorm=True" in \
        v.reason


def test_a_rho_of_exactly_0_8_counts_as_one():
    assert spearman([0, 1, 2, 3], [9052, 10160, 9962, 10320]) == 0.8       # one swap in four


def _benchmark(name):
    """A benchmarks/ script as a module (its folder on sys.path, as when it runs)."""
    import importlib.util
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_a_spec_run_in_batches_is_judged_whole_from_its_exported_trials(tmp_path):
    """Issue 50: a spec's batches (`--only`) are their own parent runs; `reread_sweep.py --spec
    SPEC --trials DIR` judges the claims over every exported trial. On the fig. 1 arms as the
    repository keeps them (docs/paper-on-mnist.md: float64 + MSE migrates in 5 of 5 seeds,
    float64 + cross-entropy in none); a file the spec does not list is named and left out."""
    import shutil
    import subprocess
    import sys

    from conftest import REPO, subprocess_env

    folder = tmp_path / "trials"
    shutil.copytree(REPO / "docs" / "runs" / "fig1_arms", folder)
    shutil.copy(folder / "dtype=float64,loss=mse,seed=0.csv", folder / "width=25,seed=0.csv")
    done = subprocess.run([sys.executable, "benchmarks/reread_sweep.py", "--spec",
                           "projects/sweeps/fig1_arms.yaml", "--trials", str(folder),
                           "--radius", "0.005", "0.05"],
                          cwd=REPO, capture_output=True, text=True, env=subprocess_env(),
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "Not read: width=25,seed=0.csv (not a trial of fig1_arms)" in out
    # an LC claim is judged at each radius asked for, a PGD claim once
    bullets = [line for line in out.splitlines() if line.startswith("- **")]
    assert sum("float64, mse: region migration" in line for line in bullets) == 2
    assert sum("float64, mse: delayed robustness at eps 0.1 " in line for line in bullets) == 1
    assert "20 trials read" in out
    lines = {line.split(" (fig. 1)")[0]: line for line in out.splitlines() if "(fig. 1)" in line}
    assert "(5 of 5;" in lines["- **SUPPORTED**: float64, mse: region migration (LC's second "
                                "descent)"]
    assert "(0 of 5;" in lines["- **INCONCLUSIVE**: float64, cross_entropy: region migration "
                                "(LC's second descent)"]
    # the trial table gives each eps's robustness onset beside their mean's (PGD ran at three)
    rows = {line.split(" | ")[0]: line.split(" | ")[1:] for line in out.splitlines()
            if line.startswith("| ")}
    assert rows["| trial"][2:6] == ["robustness_onset (mean of eps)", "robustness_onset eps 0.05",
                                    "robustness_onset eps 0.1", "robustness_onset eps 0.2"]
    assert rows["| dtype=float64,loss=mse,seed=0"][4] == "5,875 (5,356-6,510)"
    bad = subprocess.run([sys.executable, "benchmarks/reread_sweep.py", "--spec",
                          "projects/sweeps/fig1_arms.yaml"], cwd=REPO, capture_output=True,
                         text=True, env=subprocess_env(), timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == (
        "reread_sweep.py: error: give a PARENT_RUN_ID, or --spec with one of --export DIR, "
        "--trials DIR")


def test_the_paper_scale_depth_sweep_read_from_its_five_exported_batches():
    """The depth spec's 25 trials as docs/runs/depth keeps them (docs/claims.md quotes these
    verdicts): a median never seen by the last step prints as censored, not as a number, and
    leaves the claim without an effect; the decline's effect and interval as written there."""
    import subprocess
    import sys

    from conftest import REPO, subprocess_env

    done = subprocess.run([sys.executable, "benchmarks/reread_sweep.py", "--spec",
                           "projects/sweeps/depth.yaml", "--trials", "docs/runs/depth",
                           "--radius", "0.005", "0.05"], cwd=REPO, capture_output=True,
                          text=True, env=subprocess_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {(cells[1], cells[2]): cells for line in done.stdout.splitlines()
            if line.startswith("| ") and len(cells := line.split(" | ")) == 10}
    eps = rows[("`grok_eps0.05/robustness_onset_step`", "-")]
    assert eps[5:] == ["1: censored, 2: censored, 3: 2.099e+04, 4: 1.059e+04, 5: 3235", "-",
                       "8", "-", "inconclusive |"]
    decline = rows[("`grok/descent_depth`", "0.005")]
    assert decline[6:] == ["+0.14 [+0.101, +0.18] per doubling of depth", "0", "0.0006",
                           "supported |"]
    assert ("`grok/descent_depth`", "0.05") in rows


def test_export_trials_keeps_each_finished_trial_once_with_its_phase_curves(tracking_uri,
                                                                           tmp_path, capsys):
    """`common.export_trials`: every finished child run with a trial tag, as <trial>.csv with
    the phase curves only and <trial>.json with its settings; a trial finished twice keeps the
    later run and is named; a run not FINISHED and the parent are left out."""
    import json
    import time

    import mlflow

    from grok_mlflow.findings.history import history_csv, read_history_csv

    common = _benchmark("common")
    assert common.export_trials("nowhere", tmp_path / "x") == 1
    mlflow.set_experiment("depth")
    with mlflow.start_run(run_name="depth[depth=2]"):
        for value, status in ((1.0, "FINISHED"), (2.0, "FINISHED"), (3.0, "KILLED")):
            with mlflow.start_run(nested=True, tags={"grok_mlflow.trial": "depth=2,seed=0"}):
                mlflow.log_text(history_csv({10: {"lc_r0.005/train": value, "acc/test": 0.5,
                                                  "lr": 1e-3}}), "history.csv")
                mlflow.log_params({"depth": "2", "lr": str(value)})
                if status != "FINISHED":
                    mlflow.end_run(status)
            time.sleep(0.01)           # start times a millisecond apart at least: "latest"
    assert common.export_trials("depth", tmp_path / "out") == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "depth=2,seed=0.csv", "depth=2,seed=0.json"]
    assert json.loads((tmp_path / "out" / "depth=2,seed=0.json").read_text()) == {
        "depth": "2", "lr": "2.0"}                                   # the later run's settings
    kept = read_history_csv((tmp_path / "out" / "depth=2,seed=0.csv").read_text())
    assert kept == {10: {"lc_r0.005/train": 2.0, "acc/test": 0.5}}
    assert capsys.readouterr().out.strip() == (
        f"1 trials written to {tmp_path / 'out'}; finished more than once, the latest kept: "
        "depth=2,seed=0")


def test_a_trial_of_the_same_settings_is_taken_from_another_specs_export(tmp_path):
    """`--trials OWN OTHER`: the weight-decay spec's 0.01 trials are depth.yaml's depth-3 runs
    (every setting but where it ran equal, as exported beside each CSV): taken from
    docs/runs/depth and named; an own file whose recorded settings differ is named and left
    out with the difference."""
    import shutil
    import subprocess
    import sys

    from conftest import REPO, subprocess_env

    own, depth = tmp_path / "own", REPO / "docs" / "runs" / "depth"
    own.mkdir()
    for suffix in (".csv", ".json"):
        shutil.copy(depth / f"depth=3,seed=0{suffix}", own / f"weight_decay=0.1,seed=0{suffix}")
    done = subprocess.run([sys.executable, "benchmarks/reread_sweep.py", "--spec",
                           "projects/sweeps/mnist_weight_decay.yaml", "--trials", str(own),
                           str(depth)], cwd=REPO, capture_output=True, text=True,
                          env=subprocess_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert ("Not read: weight_decay=0.1,seed=0.csv (its settings differ from the spec's: "
            "weight_decay 0.01 -> 0.1)") in out
    for seed in range(5):
        assert f"weight_decay=0.01,seed={seed}: {depth}/depth=3,seed={seed}.csv (the same " \
            "settings)" in out
    assert "5 trials read" in out and "depth=2" not in out
