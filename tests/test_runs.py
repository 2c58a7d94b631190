"""Recorded runs rebuilt: the radius and compare-regions commands on a run (partition redraw:
test_partition.py; report: test_report.py)."""

from __future__ import annotations

from conftest import REPO


def test_grok_mlflow_radius_on_a_run_and_on_a_preset(tmp_path, tracking_uri, capsys,
                                                     monkeypatch):
    from mlflow.tracking import MlflowClient

    from grok_mlflow.cli import main
    from grok_mlflow.settings import Settings
    from grok_mlflow.training import train

    result = train(Settings(steps=40, eval_points=3, depth=2, width=16, lc_samples=20,
                            adv_points=0, partition_every=0), progress=False)
    out = tmp_path / "r.png"
    assert main(["radius", result.run_id, "--points", "30", "--radii", "0.001,0.01,0.1,1",
                 "--directions", "3,6", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Recommended lc_radius: " in printed and out.stat().st_size > 10_000
    artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id, "radius")}
    assert artifacts == {"radius/radius.png", "radius/radius.md"}
    # without --out a run's figure goes into the run, never into the current directory
    empty = tmp_path / "cwd"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert main(["radius", result.run_id, "--points", "10", "--radii", "0.01,0.1",
                 "--directions", "2"]) == 0
    assert f"(figure: runs:/{result.run_id}/radius/radius.png)" in capsys.readouterr().out
    assert list(empty.iterdir()) == []
    assert main(["radius", "--preset", str(REPO / "projects" / "digits_gelu.yaml"),
                 "--points", "10",
                 "--radii", "0.01,0.1", "--directions", "2", "--out", str(out)]) == 0
    assert main(["radius"]) == 2
    assert "radius: give a RUN_ID or --preset FILE" in capsys.readouterr().err
    assert main(["radius", result.run_id, "--step", "7"]) == 2
    assert "no snapshot at step 7; snapshot steps: none" in capsys.readouterr().err



def test_grok_mlflow_compare_regions(tmp_path, tracking_uri, capsys):
    from mlflow.tracking import MlflowClient

    from grok_mlflow.cli import main
    from grok_mlflow.settings import Settings
    from grok_mlflow.training import train

    result = train(Settings(steps=60, eval_points=6, depth=2, width=16, lc_samples=20,
                            adv_points=0, partition_every=2, partition_resolution=16),
                   progress=False)
    assert main(["compare-regions", result.run_id, "--points", "5", "--resolution", "24",
                 "--out", str(tmp_path / "c.png")]) == 0
    printed = capsys.readouterr().out
    assert "Spearman rank correlation over" in printed and printed.count("\n| ") >= 3
    artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id, "regions")}
    assert artifacts == {"regions/compare.png", "regions/compare.csv"}
    assert main(["compare-regions", "0123456789abcdef"]) == 2
    assert "compare-regions" in capsys.readouterr().err


def test_partition_radius_and_compare_regions_on_a_users_own_loop_run(tmp_path, tracking_uri,
                                                                       capsys):
    """Issue 42: a run of your own loop (its model logged, partition snapshots on) is analysed
    after the fact like a train run: from its logged model, its snapshots' weights and the
    points it recorded (analysis/points.pt). A run without a logged model says why in one
    line."""
    import torch
    from mlflow.tracking import MlflowClient
    from torch import nn

    import grok_mlflow
    from grok_mlflow.cli import main

    torch.manual_seed(0)
    x, y = torch.rand(300, 12), torch.randint(0, 3, (300,))
    settings = grok_mlflow.TrackerSettings(steps=40, eval_points=6, lc_samples=30,
                                           adv_points=0, partition_every=2,
                                           partition_resolution=32)
    ids = []
    for log_model in (True, False):
        model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        with grok_mlflow.GrokTracker(model, train=(x, y), test=(x, y), settings=settings,
                                     progress=False, log_model=log_model) as tracker:
            for step in range(1, settings.steps + 1):
                loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                tracker.step(step, loss=loss)
        ids.append(tracker.run_id)
    run_id, bare = ids
    assert main(["partition", run_id]) == 0
    assert "partition/regions" in capsys.readouterr().out
    assert main(["radius", run_id, "--points", "10", "--radii", "0.01,0.1",
                 "--directions", "2"]) == 0
    assert main(["compare-regions", run_id, "--points", "5", "--resolution", "16"]) == 0
    capsys.readouterr()
    artifacts = {a.path for d in ("partition", "radius", "regions")
                 for a in MlflowClient().list_artifacts(run_id, d)}
    assert {"radius/radius.png", "regions/compare.png"} <= artifacts
    assert any(p.startswith("partition/redrawn_step_") for p in artifacts)
    assert main(["radius", bare]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"grok-mlflow: error: radius: run {bare}: its model cannot be loaded "
                          "here") and "log_model=True" in err and len(err.splitlines()) == 1
