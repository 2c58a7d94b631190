"""A sweep's live table: every trial's progress while it runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import subprocess_env


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


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux for a real terminal")
def test_the_live_table_fits_an_80_column_terminal(tmp_path):
    """In a real terminal of 80 columns (tmux), a headline of ~100 characters and rows of ~90
    are cut to the width, so each redraw replaces exactly the rows it drew: no stale rows."""
    done = tmp_path / "drawn"
    script = tmp_path / "draw.py"
    script.write_text(f"""
import pathlib, time
from grok_mlflow.sweeps.progress import SweepProgress
names = {{f"weight_decay={{wd}},seed={{s}},train_size=1000,width=200": 30000
         for wd in (0, 0.5) for s in (0, 1)}}
table = SweepProgress("mnist_cpu_weight_decay_at_the_papers_scale_with_a_long_name", names)
for i in range(4):
    for row in table.rows.values():
        row.state, row.step = "RUNNING", 1000 * (i + 1)
        row.metrics = {{"acc_test": 0.9 + i / 100, "lc_train": 1.234 + i}}
    table.draw(force=True)
    time.sleep(0.3)
pathlib.Path({str(done)!r}).write_text("ok")
time.sleep(60)
""")
    session = f"grok{os.getpid()}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "30",
                    f"{sys.executable} {script}"], check=True, env=subprocess_env())
    try:
        for _ in range(300):
            if done.exists():
                break
            time.sleep(0.1)
        assert done.exists()
        screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], check=True,
                                capture_output=True, text=True).stdout
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    lines = [line for line in screen.splitlines() if line.strip()]
    assert len(lines) == 5, screen                       # the headline and 4 rows, once
    assert lines[0].startswith("sweep mnist_cpu_weight_decay") and lines[0].endswith("…")
    assert all(len(line) <= 80 for line in lines)
    assert all("4000/30000" in line for line in lines[1:]), screen    # the last draw only
