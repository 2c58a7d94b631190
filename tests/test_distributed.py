"""GrokTracker under torch.distributed: a real 2-process torchrun (gloo) of a DDP-wrapped loop
writes one run, measured in shares, whose values equal one process's on the same weights."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from mlflow.tracking import MlflowClient

from grok_mlflow.tracker.schedule import log_schedule

from conftest import only_run, subprocess_env

SCRIPT = '''
import json, sys
import torch, torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from grok_mlflow import GrokTracker, RunOptions, TrackerSettings
from grok_mlflow.tracker.distributed import Shards
from grok_mlflow.tracker.step import measure_step

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)                                   # the same data and initial weights
x, y = torch.rand(400, 1, 8, 8), torch.randint(0, 10, (400,))
net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
model = DDP(net)
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
settings = TrackerSettings(steps=20, eval_points=5, lc_samples=41, lc_directions=5,
                           adv_samples=30, adv_points=2, adv_steps=2, partition_every=0)
with GrokTracker(model, (x, y), (x, y), settings,
                 run=RunOptions(name="ddp", log_model=False)) as tracker:
    for step in range(1, 21):
        idx = torch.arange(rank * 100, rank * 100 + 100)     # this rank's half of a batch
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(); loss.backward(); opt.step()
        tracker.step(step, loss)
alone = measure_step(net, tracker.probes, tracker.settings, shards=Shards())   # one process's
last = tracker.history[20]
out = {"rank": rank, "run_id": tracker.run_id, "shards": [tracker.shards.rank, tracker.shards.size],
       "same_lc": all(float(alone[k]) == last[k] for k in alone if k.startswith("lc/")),
       "loss_gap": max(abs(float(alone[k]) - last[k]) for k in alone if k.startswith(("loss/", "acc/"))),
       "keys": sorted(last)}
with open(sys.argv[1] + f".{rank}", "w") as f:
    json.dump(out, f)
dist.destroy_process_group()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_ddp_loop_on_two_processes_writes_one_run_with_single_process_values(tmp_path,
                                                                              tracking_uri):
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out.json"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
                           str(script), str(out)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=subprocess_env(MLFLOW_TRACKING_URI=tracking_uri,
                                                          OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"out.json.{r}").read_text()) for r in (0, 1)]
    assert [r["shards"] for r in ranks] == [[0, 2], [1, 2]]
    assert ranks[1]["run_id"] is None                  # rank 1 writes nothing
    run = only_run()                                   # one run, rank 0's
    assert run.info.run_id == ranks[0]["run_id"] and run.info.status == "FINISHED"
    client = MlflowClient()
    for key in ("lc/train", "acc/test", "loss/train"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert steps == log_schedule(20, 5)            # the schedule, nothing twice
    assert all(r["same_lc"] for r in ranks)             # LC: exactly one process's values
    assert max(r["loss_gap"] for r in ranks) < 1e-6      # accuracy, loss: up to float sums
    assert "adv/acc/eps_0.1" in ranks[0]["keys"] or "adv/acc/eps_0.1" in run.data.metrics


def test_a_rank_that_dies_ends_the_run_failed_with_every_measured_point(tmp_path, tracking_uri):
    """Rank 1 exits at step 12: rank 0's next collective fails, torchrun stops it with SIGTERM,
    and the run still ends as a single process's crash would: FAILED, the reason tagged, the
    points measured before written."""
    script = tmp_path / "crash.py"
    script.write_text(SCRIPT.replace("        tracker.step(step, loss)",
                                     "        tracker.step(step, loss)\n"
                                     "        if rank == 1 and step == 12:\n"
                                     "            import os; os._exit(1)"))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
                           str(script), str(tmp_path / "out.json")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env=subprocess_env(MLFLOW_TRACKING_URI=tracking_uri,
                                             OMP_NUM_THREADS="1"))
    assert done.returncode != 0
    run = only_run()
    assert run.info.status in ("FAILED", "KILLED"), done.stderr[-2000:]
    assert run.data.tags["grok_mlflow.failure"]
    steps = [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "lc/train")]
    assert steps == [s for s in log_schedule(20, 5) if s <= 12]
