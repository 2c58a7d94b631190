"""Recorded runs rebuilt: the radius and compare-regions commands on a run (partition redraw:
test_partition.py; report: test_report.py)."""

from __future__ import annotations

import pytest

from grok_mlflow.settings import SettingsError

from conftest import REPO


def test_grok_mlflow_radius_on_a_run_and_on_a_preset(tmp_path, tracking_uri, capsys,
                                                     monkeypatch):
    from mlflow.tracking import MlflowClient

    from grok_mlflow.cli import main
    from grok_mlflow.runner.training import train
    from grok_mlflow.settings import Settings

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
    from grok_mlflow.runner.training import train
    from grok_mlflow.settings import Settings

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
    # fig. 17 as numbers on the same run: one row per snapshot step asked, logged into the run
    assert main(["boundary-regions", result.run_id, "--steps", "0,60", "--points", "4",
                 "--resolution", "16"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 0 |")
            or line.startswith("| 60 |")]
    assert len(rows) == 2 and all(line.count("|") == 6 for line in rows)
    artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id, "regions")}
    assert {"regions/boundary.md", "regions/boundary.csv"} <= artifacts
    for bad, message in ((["--steps", "a"], "--steps takes whole steps"),
                         (["--points", "0"], "--points >= 1"),
                         (["--steps", "7"], "no snapshot at step 7")):
        assert main(["boundary-regions", result.run_id, *bad]) == 2
        assert message in capsys.readouterr().err


def test_partition_radius_and_compare_regions_on_a_users_own_loop_run(tmp_path, tracking_uri,
                                                                       capsys):
    """Issue 42: a run of your own loop (its model logged, partition snapshots on) is analysed
    after the fact like a train run: from its logged model, its snapshots' weights and the
    points it recorded (analysis/points.pt). A run without a logged model says why in one
    line."""
    import torch
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
                                     run=grok_mlflow.RunOptions(progress=False, log_model=log_model)) as tracker:
            for step in range(1, settings.steps + 1):
                loss = nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                tracker.step(step, loss=loss)
        ids.append(tracker.run_id)
    run_id, bare = ids
    _analyse_with_the_three_commands(run_id, capsys)
    assert main(["radius", bare]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"grok-mlflow: error: radius: run {bare}: its model cannot be loaded "
                          "here") and "log_model=True" in err and len(err.splitlines()) == 1
    assert "RecordedRun.from_run(run_id, model)" in err
    # ... which does it with the model at hand: its snapshots' weights, the recorded points
    from grok_mlflow.runner.recorded import RecordedRun, choose_radius, draw_partition

    mine = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
    study, where = choose_radius(RecordedRun.from_run(bare, mine), radii=[0.01, 0.1],
                                 directions=(2,), points=10)
    assert where == f"runs:/{bare}/radius/radius.png" and study.radii == [0.01, 0.1]
    png, metrics = draw_partition(RecordedRun.from_run(bare, mine), step=2, resolution=16)
    assert png == f"runs:/{bare}/partition/redrawn_step_2.png" and metrics
    with pytest.raises(SettingsError) as info:
        draw_partition(RecordedRun.from_run(bare, mine), step=3)
    assert str(info.value) == (f"analysis: run {bare} has no snapshot at step 3; snapshot "
                               "steps: 0, 2, 9, 40")


def test_a_run_records_at_most_16_mib_of_points_for_its_analysis(tracking_uri):
    """3x224x224 float inputs (ImageNet's size): the recorded points stop at the cap, 27 of
    them (27 x 602,112 bytes = 15.5 MiB <= 16 MiB); small inputs: 1,000."""
    import torch
    from torch import nn

    import grok_mlflow
    from grok_mlflow.store.reading import load_recorded_points
    from grok_mlflow.tracker.starting import POINTS_CAP_BYTES

    x, y = torch.rand(40, 3, 224, 224), torch.randint(0, 3, (40,))
    model = nn.Sequential(nn.Conv2d(3, 2, 16, stride=16), nn.ReLU(), nn.Flatten(),
                          nn.Linear(2 * 14 * 14, 3))
    settings = grok_mlflow.TrackerSettings(steps=2, eval_points=2, lc_samples=2,
                                           lc_directions=2, adv_points=0, partition_every=0,
                                           eval_size=40)
    with grok_mlflow.GrokTracker(model, train=(x, y), test=(x, y), settings=settings,
                                 run=grok_mlflow.RunOptions(progress=False, log_model=False)) as tracker:
        tracker.step(1)
        tracker.step(2)
    points = load_recorded_points(tracker.run_id)
    assert POINTS_CAP_BYTES == 16 * 2 ** 20
    assert points["train_x"].shape == (27, 3, 224, 224) and len(points["train_y"]) == 27
    assert points["train_x"].numel() * 4 <= POINTS_CAP_BYTES


def test_the_readmes_own_loop_script_then_the_three_commands_on_its_run(tracking_uri, capsys):
    """Issue 42's "done when": the complete own-loop script of docs/your-loop.md (shortened to 60 steps),
    then `partition`, `radius` and `compare-regions` on its run: exit 0, figures in the run."""
    import re



    page = (REPO / "docs" / "your-loop.md").read_text()          # its first Python block
    script = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    assert "steps=2000" in script
    scope: dict = {}
    exec(compile(script.replace("steps=2000", "steps=60"), "your-loop.md", "exec"), scope)
    _analyse_with_the_three_commands(scope["tracker"].run_id, capsys)


def _analyse_with_the_three_commands(run_id: str, capsys) -> None:
    """`partition`, `radius`, `compare-regions` and `boundary-regions` on ``run_id``: exit 0,
    figures and tables in the run."""
    from mlflow.tracking import MlflowClient

    from grok_mlflow.cli import main

    assert main(["partition", run_id, "--resolution", "32"]) == 0
    assert "partition/regions" in capsys.readouterr().out
    assert main(["radius", run_id, "--points", "10", "--radii", "0.01,0.1",
                 "--directions", "2"]) == 0
    assert main(["compare-regions", run_id, "--points", "4", "--resolution", "8"]) == 0
    assert main(["boundary-regions", run_id, "--points", "3", "--resolution", "8"]) == 0
    capsys.readouterr()
    artifacts = {a.path for d in ("partition", "radius", "regions")
                 for a in MlflowClient().list_artifacts(run_id, d)}
    assert {"radius/radius.png", "radius/radius.md", "regions/compare.png",
            "regions/compare.csv", "regions/boundary.md"} <= artifacts
    assert any(p.startswith("partition/redrawn_step_") for p in artifacts)


def test_a_run_and_a_sweep_leave_the_checkout_as_it_was(tmp_path, tracking_uri):
    """Tests run in their temporary directory: what MLflow and Ray put relative to the working
    directory (a SQLite store's ./mlruns artifact root, ./ray_results) lands there, not in the
    checkout (the suite once left ~80 runs' artifacts in ./mlruns/1-3 and a ./ray_results)."""
    import subprocess

    from grok_mlflow.cli import main

    from conftest import REPO

    def status() -> list[str]:
        out = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
        return sorted(line for line in out.splitlines() if "__pycache__" not in line
                      and ".pytest_cache" not in line)

    before = status()
    assert main(["train", "--steps", "5", "--eval_points", "2", "--lc_samples", "10",
                 "--adv_points", "0", "--partition_every", "0", "--no-progress"]) == 0
    spec = tmp_path / "spec.yaml"
    spec.write_text("base: {steps: 5, eval_points: 2, lc_samples: 10, adv_points: 0,\n"
                    "       partition_every: 0, log_model: false}\ngrid: {seed: [0, 1]}\n")
    assert main(["sweep", str(spec)]) == 0
    assert (tmp_path / "mlruns").is_dir() and (tmp_path / "ray_results").is_dir()
    assert status() == before
