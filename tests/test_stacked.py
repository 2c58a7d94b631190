"""Stacked training (issue #19): K runs as one stacked model, each member a full run."""

from __future__ import annotations

import copy
import dataclasses

import mlflow
import mlflow.pytorch
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from grok_mlflow.findings.history import read_history_csv
from grok_mlflow.measures.evaluation import accuracy_and_loss
from grok_mlflow.runner.stacking import member_views
from grok_mlflow.runner.training import train, train_stacked
from grok_mlflow.settings import Settings, SettingsError, TrackerSettings
from grok_mlflow.store.reading import run_artifact_text
from grok_mlflow.tracker.schedule import log_schedule
from grok_mlflow.tracker.stacked import StackedTracker, align_checkpoints
from grok_mlflow.tracker.tracking import RunOptions

# small and fast, every measure on: LC, PGD, partition snapshots
SMALL = Settings(steps=100, width=24, depth=2, lc_samples=20, lc_directions=4, adv_points=2,
                 adv_samples=20, eval_points=8, partition_every=4, partition_resolution=16)


def test_a_members_histories_equal_a_single_run_float64():
    """Members differing in seed, weight decay and train size (and lr): every metric at every
    measured step (accuracy, loss, LC per layer, PGD, partition) equals the run trained alone."""
    base = dataclasses.replace(SMALL, dtype="float64")
    grid = [dataclasses.replace(base, seed=1), dataclasses.replace(base, weight_decay=0.3),
            dataclasses.replace(base, train_size=700, lr=3e-3)]
    results = train_stacked(grid, progress=False)
    client = MlflowClient()
    for settings, result in zip(grid, results):
        alone = train(settings, progress=False)
        mine = read_history_csv(run_artifact_text(result.run_id, "history.csv"))
        theirs = read_history_csv(run_artifact_text(alone.run_id, "history.csv"))
        assert sorted(mine) == sorted(theirs) == log_schedule(100, 8)
        assert any(k.startswith("adv/acc/") for k in theirs[100])
        assert any(k.startswith("partition/") for k in theirs[100])
        for step, row in theirs.items():
            assert mine[step].keys() == row.keys()
            for key, value in row.items():
                assert mine[step][key] == pytest.approx(value, rel=1e-12, abs=1e-12), (step, key)
        run = client.get_run(result.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.params["seed"] == str(settings.seed)
        assert run.data.tags["grok_mlflow.version"]                 # the plugin's tags too
        config = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/config.json")
        assert config["stacked"]["index"] == grid.index(settings)
        assert config["settings"]["train_size"] == settings.train_size
        models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                             filter_string=f"source_run_id='{result.run_id}'",
                                             output_format="list")
        assert len(models) == 1                  # each member's own model, in its own run
        x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
        assert torch.equal(mlflow.pytorch.load_model(models[0].model_uri)(x), result.model(x))


def test_float32_members_stay_close_to_single_runs():
    """float32: a batched matmul sums in another order, so a member differs from the run alone
    by rounding, which training then amplifies (Adam's m / sqrt(v) turns rounding in near-zero
    gradients into lr-sized steps): after 100 steps within 5e-3 of each tensor's largest weight
    (typically 1e-6; measured up to 1e-3). float64 is the equality guarantee (above)."""
    grid = [Settings(steps=100, seed=k, weight_decay=(0.0, 0.01)[k % 2], width=64)
            for k in range(3)]
    for settings, member in zip(grid, train_stacked(grid, progress=False, track=False)):
        alone = train(settings, progress=False, track=False).model
        for a, b in zip(member.model.state_dict().values(), alone.state_dict().values()):
            assert ((a - b).abs().max() / b.abs().max()).item() < 5e-3


def test_a_diverging_member_fails_alone_and_the_others_finish(tmp_path):
    base = dataclasses.replace(SMALL, steps=200, eval_points=40, partition_every=0,
                               adv_points=0, checkpoint_every_s=0.01)
    grid = [base, dataclasses.replace(base, lr=1e36, init_scale=8.0), dataclasses.replace(
        base, seed=3)]
    results = train_stacked(grid, run_names=["ok", "diverges", "ok too"], progress=False)
    client = MlflowClient()
    runs = [client.get_run(r.run_id) for r in results]
    assert [r.info.status for r in runs] == ["FINISHED", "FAILED", "FINISHED"]
    assert runs[1].data.tags["grok_mlflow.failure"].startswith("diverged: training loss is nan")
    assert results[1].error.startswith("training loss is nan") and not results[0].error
    for r in (runs[0], runs[2]):
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "lc/train")]
        assert steps == log_schedule(200, 40)
    # the failed member's last good checkpoint (from before the divergence) is kept
    failure_step = int(runs[1].data.tags["grok_mlflow.failure_step"])
    path = mlflow.artifacts.download_artifacts(run_id=runs[1].info.run_id,
                                               artifact_path="checkpoints/last.pt",
                                               dst_path=str(tmp_path))
    state = torch.load(path, weights_only=False)
    assert state["step"] < failure_step
    assert all(bool(torch.isfinite(t).all()) for t in state["model"].values())


def _state(step, previous=None):
    return {"step": step, "previous": previous}


def test_align_checkpoints_takes_members_back_to_one_common_step():
    a = _state(20, _state(10))
    b = _state(10, _state(5))
    assert align_checkpoints([a, b, a], ["a", "b", "c"]) == [a["previous"], b, a["previous"]]
    assert align_checkpoints([a, b], ["a", "b"])[0]["step"] == 10
    # a kill during the very first flush: no previous checkpoint means step 0, a fresh start
    first = _state(7)
    assert align_checkpoints([first, None], ["a", "b"]) == [None, None]
    assert align_checkpoints([None, None], ["a", "b"]) == [None, None]
    # a member without a loadable checkpoint later on (a torn one): every member from step 0
    assert align_checkpoints([_state(30, _state(20)), None], ["a", "b"]) == [None, None]
    with pytest.raises(SettingsError, match="more than one flush apart"):
        align_checkpoints([_state(30, _state(20)), b], ["a", "b"])


def test_stacked_tracker_on_a_users_own_vmapped_ensemble():
    """A user's torch.func ensemble (not our loop): K runs, each member's measured accuracy
    is exactly that of a standalone model holding the member's weights."""
    from torch.func import functional_call, stack_module_state, vmap

    torch.manual_seed(0)
    models = [nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
              for _ in range(3)]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    x, y = torch.rand(300, 1, 8, 8), torch.randint(0, 10, (300,))
    x_test, y_test = torch.rand(100, 1, 8, 8), torch.randint(0, 10, (100,))
    members = member_views(models[0], params, buffers)
    optimizer = torch.optim.SGD(params.values(), lr=torch.tensor(0.5))
    settings = TrackerSettings(steps=60, eval_points=6, lc_samples=20, lc_directions=4,
                               adv_points=2, adv_samples=20, partition_every=0)

    def losses_of(p, xb, yb):
        return nn.functional.cross_entropy(functional_call(base, (p, buffers), (xb,)), yb)

    with StackedTracker(members, train=(x, y), test=(x_test, y_test), settings=settings,
                        progress=False, runs=[RunOptions(name=n) for n in ["a", "b", "c"]]) as tracker:
        for step in range(1, 61):
            idx = torch.randint(0, 300, (3, 32))
            losses = vmap(losses_of)(params, x[idx], y[idx])          # (3,)
            optimizer.zero_grad()
            losses.sum().backward()
            optimizer.step()
            tracker.step(step, losses.detach())
    client = MlflowClient()
    for k, run_id in enumerate(tracker.run_ids):
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.runName"] == "abc"[k]
        standalone = copy.deepcopy(models[0])
        standalone.load_state_dict({n: p[k].detach() for n, p in params.items()})
        acc, _ = accuracy_and_loss(standalone, x, y)
        assert run.data.metrics["acc/train"] == acc.item()
        assert [m.step for m in client.get_metric_history(run_id, "lc/train")] == \
            log_schedule(60, 6)
        assert "adv/acc/eps_0.1" in run.data.metrics


def test_train_stacked_refuses_bad_members_in_one_line_before_any_run():
    with pytest.raises(SettingsError, match="^width: stacked members must share it"):
        train_stacked([Settings(), Settings(width=50)], progress=False)
    # a member's own problem, found once its data is loaded: still before any run exists
    with pytest.raises(SettingsError, match=r"^lc_directions: must be <= the input dimension "
                                            r"of digits \(64\), got 65$"):
        train_stacked([Settings(), Settings(lc_directions=65)], progress=False)
    client = MlflowClient()
    assert not [r for e in client.search_experiments() for r in client.search_runs(
        [e.experiment_id])]


@pytest.mark.parametrize("left", ["behind", "torn"])
def test_a_group_stopped_between_two_members_checkpoints_resumes_at_one_step(tmp_path, capsys,
                                                                             left):
    """A stop mid-run, then member 1's checkpoint is taken back one flush (its own
    ``previous``): exactly what a kill between two members' writes leaves. Resuming takes every
    member back to the common step; their histories equal an uninterrupted group's. ``torn``:
    member 1's checkpoint is cut in half (a kill while the store copied it into place); the
    group trains again from step 0, and still no step is logged twice or differs."""
    base = dataclasses.replace(SMALL, steps=120, eval_points=30, partition_every=0,
                               adv_points=0, checkpoint_every_s=0.01)
    grid = [base, dataclasses.replace(base, seed=1, weight_decay=0.1)]
    names = ["a", "b"]

    def stop_at_80(step, latest):
        if step >= 80:
            raise KeyboardInterrupt("stopped")

    with pytest.raises(KeyboardInterrupt):
        train_stacked(grid, run_names=names, progress=False, on_progress=stop_at_80)
    client = MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    run_ids = [client.search_runs(experiments, f"attributes.run_name = '{n}'")[0].info.run_id
               for n in names]
    assert [client.get_run(r).info.status for r in run_ids] == ["KILLED", "KILLED"]
    last = [torch.load(mlflow.artifacts.download_artifacts(
        run_id=r, artifact_path="checkpoints/last.pt", dst_path=str(tmp_path / r)),
        weights_only=False) for r in run_ids]
    assert last[0]["step"] == last[1]["step"] and last[1]["previous"]["step"] < last[1]["step"]
    behind = tmp_path / "behind" / "last.pt"
    behind.parent.mkdir()
    torch.save(last[1]["previous"], behind)                  # member b: one flush behind
    if left == "torn":
        whole = behind.read_bytes()
        behind.write_bytes(whole[:len(whole) // 2])
    client.log_artifact(run_ids[1], str(behind), "checkpoints")
    capsys.readouterr()
    resumed = train_stacked(grid, run_names=names, resume=run_ids, progress=False)
    warned = capsys.readouterr().err
    assert (f"run {run_ids[1]}'s checkpoints/last.pt does not load" in warned) == (left == "torn")
    assert [r.run_id for r in resumed] == run_ids
    mlflow.set_experiment("reference")
    reference = train_stacked(grid, run_names=names, progress=False)
    for mine, theirs in zip(run_ids, reference):
        assert client.get_run(mine).info.status == "FINISHED"
        for key in ("lc/train", "acc/test", "loss/train"):
            got = client.get_metric_history(mine, key)
            assert [m.step for m in got] == log_schedule(120, 30), key    # none twice
            assert [m.value for m in got] == [
                m.value for m in client.get_metric_history(theirs.run_id, key)], key


def test_members_that_settle_end_at_their_own_step_and_the_rest_go_on(tracking_uri):
    """``until: settled`` in a stacked group: member 0's LC double-descends by construction
    (its hyperplanes moved by hand, as in test_stopper) and settles; member 1's keeps rising.
    Member 0's run ends FINISHED at its stop step with the reason; member 1 trains to the cap;
    neither history has a step twice or a step after its end."""
    import math

    def near(step, settles):
        x = math.log10(max(step, 1))
        knots = ([0, 1, 2, 2.6, 4], [8, 2, 10, 2, 2]) if settles else ([0, 1, 4], [8, 2, 16])
        return round(float(np.interp(x, *knots)))

    torch.manual_seed(0)
    x = 0.5 + 0.01 * (2 * torch.rand(200, 2) - 1)
    y = torch.zeros(200, dtype=torch.long)
    models = []
    for _ in range(2):
        m = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
        with torch.no_grad():
            m[0].weight.copy_(torch.tensor([[1.0, 0.0]]).repeat(16, 1))
            m[2].weight.zero_()
            m[2].bias.copy_(torch.tensor([1.0, 0.0]))
        models.append(m)
    settings = TrackerSettings(steps=2_000, eval_points=40, lc_samples=50, adv_points=6,
                               adv_samples=50, partition_every=0, until="settled")
    with StackedTracker(models, (x, y), (x, y), settings, progress=False,
                        runs=[RunOptions(name=n, log_model=False) for n in ["settles", "rises"]]) as stacked:
        for step in range(1, 2_001):
            for k, m in enumerate(models):
                n = near(step, k == 0)
                with torch.no_grad():
                    m[0].bias.copy_(torch.tensor([-0.5] * n + [-5.0] * (16 - n)))
            stacked.step(step)
    (stop,) = stacked.settled.values()
    assert list(stacked.settled) == [0] and 400 < stop < 2_000 and stacked.alive == [1]
    client = MlflowClient()
    done, capped = (client.get_run(r) for r in stacked.run_ids)
    assert done.info.status == capped.info.status == "FINISHED"
    assert done.data.tags["grok_mlflow.stop_step"] == str(stop)
    lc = [m.step for m in client.get_metric_history(done.info.run_id, "lc/train")]
    assert lc == sorted(set(lc)) and lc[-1] == stop
    assert client.get_metric_history(capped.info.run_id, "lc/train")[-1].step == 2_000
