"""A sweep's live table: every trial's progress while it runs."""

from __future__ import annotations


def test_a_sweep_shows_each_trials_progress_while_it_runs(tmp_path):
    """Two digits trials, stderr a pipe (a log): blocks of the live table every second, with
    trials RUNNING part-way, before the last block that says both are done."""
    import subprocess
    import sys

    from conftest import subprocess_env

    spec = tmp_path / "spec.yaml"
    spec.write_text("""name: live
base: {steps: 3000, depth: 2, width: 32, lc_samples: 50, lc_directions: 5, adv_samples: 50,
       eval_points: 30, adv_points: 3, partition_every: 0, log_model: false}
grid:
  seed: [0, 1]
resources: {cpu: 1}
max_concurrent: 2
""")
    done = subprocess.run([sys.executable, "-m", "grok_mlflow", "sweep", spec,
                           "--progress-every", "1"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600,
                          env=subprocess_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/m.db"))
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    heads = [i for i, line in enumerate(lines) if line.startswith("sweep live: ")]
    last = heads[-1]
    assert lines[last].startswith("sweep live: 2/2 trials done")
    assert lines[last + 1].split()[:3] == ["seed=0", "TERMINATED", "3000/3000"]
    partway = [line for line in lines[:last]
               if line.split()[1:2] == ["RUNNING"] and 0 < int(line.split()[2].split("/")[0])
               < 3000 and "acc/test" in line]
    assert partway, done.stderr[-3000:]        # seen running, part-way, before the end
    assert "Configuration for experiment" not in done.stderr + done.stdout  # Ray Tune's box: off
