"""LC at the decision boundary (issue #51): boundary points by bisection, exact on a linear
classifier; a tracked run logs lc/boundary with points that lie on the boundary; the report and
grok/* read the migration toward it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from grok_mlflow.findings.phases import boundary_shift, detect_phases
from grok_mlflow.measures.boundary import boundary_points, top_two_gap


def test_bisection_finds_a_linear_classifiers_boundary_in_closed_form():
    """For a linear classifier the start's class region along a segment is an interval [0, t*)
    (an intersection of half-spaces), t* = the first k where the logit gap to class k crosses
    0: g_k(t) = g_k(0) + t (g_k(1) - g_k(0))."""
    torch.manual_seed(0)
    model = nn.Linear(5, 3).double()
    a, b = torch.randn(300, 5, dtype=torch.float64) * 3, torch.randn(300, 5, dtype=torch.float64) * 3
    found = boundary_points(model, a, b, iterations=40)
    with torch.no_grad():
        la, lb = model(a), model(b)
    start = la.argmax(-1)
    crossed = start != lb.argmax(-1)
    assert found.pairs == int(crossed.sum()) > 50 and found.offered == 300
    ga = la.gather(1, start[:, None]) - la                   # g_k(0) >= 0
    gb = lb.gather(1, start[:, None]) - lb                   # g_k(1)
    t_k = torch.where(gb < 0, ga / (ga - gb), torch.full_like(ga, np.inf))
    t_star = t_k.min(dim=1).values[crossed]
    a_c, b_c = a[crossed], b[crossed]
    expected = a_c + t_star[:, None] * (b_c - a_c)
    assert torch.allclose(found.points, expected, atol=1e-9)
    # on the boundary: the top two outputs tie (float64: to ~1e-11), far below the data's gap
    assert found.margin.abs().max() < 1e-9 < 1.0 < top_two_gap(la).mean()
    # pairs the model classifies alike have no crossing: none found
    same = boundary_points(model, a, a + 1e-6)
    assert same.pairs == 0 and same.points.shape == (0, 5)


def test_a_tracked_run_measures_lc_at_the_boundary(tracking_uri, capsys):
    from sklearn.datasets import load_digits

    import grok_mlflow

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 100), nn.ReLU(), nn.Linear(100, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    settings = grok_mlflow.TrackerSettings(steps=120, eval_points=8, lc_samples=80,
                                           adv_points=0, partition_every=0)
    with grok_mlflow.GrokTracker(model, train=(x[:1000], y[:1000]), test=(x[1000:], y[1000:]),
                                 settings=settings, run=grok_mlflow.RunOptions(progress=False)) as tracker:
        for step in range(1, settings.steps + 1):
            idx = torch.randint(0, 1000, (100,))
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tracker.step(step, loss=loss)
    lc_steps = [s for s, row in tracker.history.items() if "lc/train" in row]
    assert len(lc_steps) >= 8
    for s in lc_steps:
        row = tracker.history[s]
        assert "lc/boundary" in row and "lc/boundary/ci_low" in row, s
        assert 0 < row["boundary/pairs"] <= 40
        # on the boundary: the top-two gap at least 100x below the test points'
        assert row["boundary/margin"] * 100 <= row["boundary/test_margin"], row
    run = mlflow_run(tracker.run_id)
    assert "lc/boundary" in run.data.metrics and "boundary/margin" in run.data.metrics
    # the setting turns it off
    off = grok_mlflow.TrackerSettings(steps=2, eval_points=2, lc_samples=20, adv_points=0,
                                      partition_every=0, lc_boundary=False)
    with grok_mlflow.GrokTracker(model, train=(x[:1000], y[:1000]), test=(x[1000:], y[1000:]),
                                 settings=off, run=grok_mlflow.RunOptions(progress=False)) as quiet:
        for step in (1, 2):
            quiet.step(step)
    assert not any(k.startswith(("lc/boundary", "boundary/")) for row in quiet.history.values()
                   for k in row)


def test_a_regression_has_no_boundary_and_says_so_once(tracking_uri, capsys):
    import grok_mlflow

    torch.manual_seed(0)
    x = torch.rand(64, 4)
    y = x.sum(1, keepdim=True)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    settings = grok_mlflow.TrackerSettings(steps=2, eval_points=2, lc_samples=16, adv_points=0,
                                           partition_every=0)
    with grok_mlflow.GrokTracker(model, train=(x, y), test=(x, y), settings=settings,
                                 task="regression", run=grok_mlflow.RunOptions(progress=False)) as tracker:
        for step in (1, 2):
            tracker.step(step)
    err = capsys.readouterr().err
    assert err.count("no decision boundary to measure LC at (a regression task)") == 1
    assert not any("boundary" in k for row in tracker.history.values() for k in row)


def mlflow_run(run_id):
    from mlflow import MlflowClient

    return MlflowClient().get_run(run_id)


@pytest.mark.parametrize("rising", [True, False])
def test_the_migration_toward_the_boundary_is_a_number(rising):
    """A second descent in LC(train) while LC(boundary) holds (the ratio rises: regions moved
    towards the boundary) or falls with it (plain smoothing: the ratio stays)."""
    steps = [0] + list(np.unique(np.geomspace(1, 30_000, 50).astype(int)))
    x = np.log1p(steps) / np.log1p(30_000)
    train = 1.0 + 9.0 * np.exp(-((x - 0.7) / 0.1) ** 2)
    boundary = np.full_like(train, 10.0) if rising else 1.2 * train
    history = {}
    for s, t, b in zip(steps, train, boundary):
        history[int(s)] = {"acc/train": 1.0 if s >= 50 else 0.5, "lc/train": float(t),
                           "lc/train/ci_low": t * 0.97, "lc/train/ci_high": t * 1.03,
                           "lc/boundary": float(b), "lc/boundary/ci_low": b * 0.97,
                           "lc/boundary/ci_high": b * 1.03}
    phases = detect_phases(history)
    onset = int(phases["grok/migration_onset_step"])
    shift = boundary_shift(history, "lc/train", onset)
    assert shift.rose == rising and not shift.fell
    change = phases["grok/boundary_ratio_change"]
    assert (change > 2) if rising else change == pytest.approx(1.0)
    from grok_mlflow.findings.report import reproduction_report

    row = next(f for f in reproduction_report(history)
               if f.phase == "migration toward the boundary")
    assert row.seen == rising and row.text.startswith(
        "LC(boundary) / LC(train) " + ("rose" if rising else "did not change"))
