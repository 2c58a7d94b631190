"""SettledStopper in a user's own Ray Tune run, and the settled rule's bad input.

The trainable moves the hidden hyperplanes of a 2-16-2 ReLU net by hand, so that its local
complexity around the training points (all within 0.01 of (0.5, 0.5)) is exactly the number of
neurons whose hyperplane x1 = 0.5 passes through them: a first descent 8 -> 2 by step 10, an
ascent to 10 at step 100, a second descent to 2 by step 400, flat after (or, for the other
trial, an ascent that never ends). Its output is constant, so accuracy and PGD accuracy are 1.0
throughout: the real tracker, real Tune, real MLflow, and a curve whose phases are known."""

from __future__ import annotations

import math

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

STEPS = 2_000


def near_neurons(step: int, settles: bool) -> int:
    """How many of the 16 hyperplanes cut the data at ``step`` (piecewise linear in log10)."""
    x = math.log10(max(step, 1))
    knots = ([0, 1, 2, 2.6, 4], [8, 2, 10, 2, 2]) if settles else ([0, 1, 4], [8, 2, 16])
    for (x0, x1), (y0, y1) in zip(zip(knots[0], knots[0][1:]), zip(knots[1], knots[1][1:])):
        if x <= x1:
            return round(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    return knots[1][-1]


def trainable(config):
    import grok_mlflow

    torch.manual_seed(0)
    x = 0.5 + 0.01 * (2 * torch.rand(200, 2) - 1)
    y = torch.zeros(200, dtype=torch.long)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0]]).repeat(16, 1))
        model[2].weight.zero_()
        model[2].bias.copy_(torch.tensor([1.0, 0.0]))          # always class 0: accuracy 1.0
    settings = grok_mlflow.TrackerSettings(steps=STEPS, eval_points=40, lc_samples=50,
                                           adv_points=6, adv_samples=50, partition_every=0,
                                           until="settled")
    with grok_mlflow.GrokTracker(model, train=(x, y), test=(x, y), settings=settings,
                                 run=grok_mlflow.RunOptions(name=f"settles={config['settles']}", log_model=False, progress=False)) as tracker:
        for step in range(1, STEPS + 1):
            k = near_neurons(step, config["settles"])
            with torch.no_grad():
                model[0].bias.copy_(torch.tensor([-0.5] * k + [-5.0] * (16 - k)))
            tracker.step(step)


def test_the_stopper_ends_a_settled_trial_after_its_run_ended_and_leaves_the_other(
        tmp_path, tracking_uri, monkeypatch):
    import sys

    from ray import cloudpickle, tune

    import grok_mlflow

    cloudpickle.register_pickle_by_value(sys.modules[__name__])   # workers cannot import tests/
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    stopper = grok_mlflow.SettledStopper()
    tuner = tune.Tuner(trainable, param_space={"settles": tune.grid_search([True, False])},
                       tune_config=tune.TuneConfig(max_concurrent_trials=2),
                       run_config=tune.RunConfig(stop=stopper, storage_path=str(tmp_path / "ray"),
                                                 verbose=0))
    try:
        results = tuner.fit()
    finally:
        import ray

        ray.shutdown()
    assert not results.errors
    by_settles = {r.config["settles"]: r for r in results}
    # every result carries every metric (the last measured value carried forward)
    for r in results:
        for row in r.metrics_dataframe.to_dict("records"):
            assert {"lc/train", "acc/test", "adv/acc/eps_0.05", "grok/settled"} <= set(row)
    settled = by_settles[True].metrics
    assert settled["grok/settled"] == 1.0 and 400 < settled["step"] < STEPS
    assert list(stopper.stopped.values()) == [settled["step"]]
    assert by_settles[False].metrics["step"] == STEPS
    assert by_settles[False].metrics["grok/settled"] == 0.0
    client = MlflowClient()
    runs = {r.info.run_name: r for e in client.search_experiments()
            for r in client.search_runs([e.experiment_id])}
    done, capped = runs["settles=True"], runs["settles=False"]
    assert done.info.status == "FINISHED" and capped.info.status == "FINISHED"
    assert done.data.tags["grok_mlflow.stop_step"] == str(settled["step"])
    note = done.data.tags["mlflow.note.content"].splitlines()[2]
    assert note.startswith(f"Stopped at step {settled['step']:,} of {STEPS:,} (until: settled): "
                           "settled: after the second descent")
    history = client.get_metric_history(done.info.run_id, "lc/train")
    assert history[-1].step == settled["step"] and history[-1].value == 2.0
    assert max(h.value for h in history) == 10.0
    assert capped.data.tags["mlflow.note.content"].splitlines()[2].startswith(
        f"Ran to the cap, step {STEPS:,} (until: settled), without settling: ")


@pytest.mark.parametrize("result, message", [
    ({"step": 5}, "SettledStopper: trial t1 reports no grok/until: its trainable must measure "
                  "with grok_mlflow.GrokTracker"),
    ({"step": 5, "grok/until": 0.0, "grok/settled": 0.0},
     "SettledStopper: trial t1's GrokTracker was not given until='settled'"),
])
def test_the_stopper_refuses_trials_it_cannot_end_cleanly(result, message):
    import grok_mlflow

    with pytest.raises(ValueError) as info:
        grok_mlflow.SettledStopper()("t1", result)
    assert str(info.value).startswith(message)
