"""What measuring costs a run (``tracker.costs``): the forecast's arithmetic, and the totals a
real own-loop run logs (not into its history)."""

from __future__ import annotations

from mlflow.tracking import MlflowClient
from test_tracking import user_loop
from torch import nn

from grok_mlflow import Settings
from grok_mlflow.tracker.costs import MeasureCosts

from conftest import only_run


def test_the_forecast_is_each_kinds_mean_times_the_schedules_count():
    costs = MeasureCosts()
    costs.seconds = {"measure": 10.0, "pgd": 4.0, "partition": 3.0}   # PGD inside measure
    costs.counts = {"measure": 2, "pgd": 1, "partition": 1}
    assert costs.each("measure") == 3.0 and costs.each("pgd") == 4.0
    # 50 x 3 + 20 x 4 + 7 x 3 = 251 s
    assert costs.forecast(50, 20, 7) == (
        "grok-mlflow: measuring will take about 4.2 min over the run (accuracy, loss and LC "
        "50 x 3 s, PGD 20 x 4 s, partition snapshots 7 x 3 s); lc_samples, adv_samples, "
        "eval_points, adv_points and partition_resolution trade precision for time")
    assert costs.forecast(10, 2, 1) is None                  # 30 + 8 + 3 s: under a minute
    costs.seconds["pgd"], costs.counts["pgd"] = 0.0, 0
    assert costs.forecast(50, 20, 0).endswith(
        "(accuracy, loss and LC 50 x 5 s; PGD not timed yet); lc_samples, adv_samples, "
        "eval_points, adv_points and partition_resolution trade precision for time")
    assert MeasureCosts().forecast(50, 20, 7) is None        # nothing measured yet


def test_a_run_logs_what_measuring_cost_it_and_keeps_its_history_clean(tracking_uri):
    settings = Settings(steps=60, eval_points=6, lc_samples=20, lc_directions=4, adv_points=2,
                        adv_samples=20, partition_every=3, partition_resolution=64,
                        train_size=100, batch_size=50)
    tracker = user_loop(nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(),
                                      nn.Linear(16, 10)), settings)
    run = only_run(MlflowClient())
    m = run.data.metrics
    assert tracker.costs.counts == {"measure": len(tracker.schedule.eval_steps),
                                    "pgd": len(tracker.schedule.adv_steps),
                                    "partition": len(tracker.schedule.partition_steps)}
    assert m["time/measure_s"] > m["time/pgd_s"] > 0 and m["time/partition_s"] > 0
    assert m["time/run_s"] > m["time/measure_s"] + m["time/partition_s"]
    assert not any(k.startswith("time/") for row in tracker.history.values() for k in row)
