"""When each measure runs: log-spaced steps and MeasureSchedule's cadences."""

from __future__ import annotations

from grok_mlflow.settings import TrackerSettings
from grok_mlflow.tracker.schedule import MeasureSchedule, log_schedule


def test_schedule_is_log_spaced_with_init_interval_and_last_step():
    steps = log_schedule(10_000, points=20, every=2500)
    assert steps[0] == 0 and steps[-1] == 10_000
    assert {2500, 5000, 7500} <= set(steps)
    gaps = [b - a for a, b in zip(steps[1:], steps[2:])]
    assert gaps[0] < gaps[-2]                     # dense early, sparse late
    assert log_schedule(7, points=100) == list(range(8))


def test_pgd_cadence_is_a_sparser_subset_of_the_eval_steps():
    s = MeasureSchedule.from_settings(TrackerSettings(steps=100_000, eval_points=60,
                                                      adv_points=20))
    assert s.adv_steps <= set(s.eval_steps)
    assert 12 <= len(s.adv_steps) <= 20 + 1 < len(s.eval_steps)     # + step 0
    assert {0, 100_000} <= s.adv_steps
    assert not MeasureSchedule.from_settings(TrackerSettings(), adversarial=False).adv_steps


def test_measure_schedule_snaps_every_cadence_to_the_eval_steps():
    s = MeasureSchedule.from_settings(TrackerSettings(steps=1000, eval_points=8, adv_points=3,
                                                      deform_points=2, partition_every=3))
    assert s.eval_steps == (0, 1, 3, 7, 19, 52, 139, 373, 1000)
    assert s.adv_steps == {0, 1, 19, 1000} and s.deform_steps == {0, 1, 1000}
    assert s.partition_steps == {0, 7, 139, 1000}              # every 3rd eval step, and the last
    assert [t for t in range(1001) if s.due(t)] == list(s.eval_steps)
    assert s.as_dict() == {"eval_steps": list(s.eval_steps), "adv_steps": [0, 1, 19, 1000],
                           "deform_steps": [0, 1, 1000]}
    assert not s.without_adversarial().adv_steps
