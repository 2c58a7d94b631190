"""The Hugging Face Trainer callback: a real Trainer on a tiny BERT writes LC and accuracy into the
run that transformers' own MLflowCallback opened, next to transformers' metrics."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from mlflow.tracking import MlflowClient
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from grok_mlflow.huggingface import GrokTrainerCallback
from grok_mlflow.settings import TrackerSettings
from grok_mlflow.tracker.schedule import log_schedule

from conftest import only_run

SETTINGS = TrackerSettings(eval_points=4, lc_samples=16, lc_directions=5, adv_points=0,
                           partition_every=0, lc_input="bert.embeddings.word_embeddings")


class Rows(torch.utils.data.Dataset):
    """Token rows as a tokenized Hugging Face dataset gives them: {"input_ids", "labels"}."""

    def __init__(self, n: int, seed: int):
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randint(0, 12, (n, 6), generator=gen)             # (n, 6) token ids
        self.y = (self.x[:, 0] > 5).long()                               # (n,) first token > 5

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.x[i], "labels": self.y[i]}


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=12, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=8, num_labels=2))


def fit(tmp_path, report_to: str, steps: int = 12, settings=SETTINGS) -> GrokTrainerCallback:
    train, test = Rows(64, 0), Rows(32, 1)
    callback = GrokTrainerCallback(train, test, settings)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=steps,
                             per_device_train_batch_size=16, learning_rate=1e-3,
                             report_to=report_to, logging_steps=4, save_strategy="no",
                             use_cpu=True, disable_tqdm=True, run_name="tiny-bert")
    Trainer(model=tiny_bert(), args=args, train_dataset=train, callbacks=[callback]).train()
    return callback


def test_the_trainer_writes_lc_into_transformers_own_mlflow_run(tmp_path, tracking_uri):
    import dataclasses

    callback = fit(tmp_path, "mlflow",
                   settings=dataclasses.replace(SETTINGS, partition_every=2,
                                                partition_resolution=16))
    run = only_run()                                     # transformers' run, no second one
    assert run.info.run_id == callback.tracker.run_id and run.info.status == "FINISHED"
    assert run.data.tags["mlflow.runName"] == "tiny-bert"
    assert "loss" in run.data.metrics                    # transformers' own metrics
    assert {"acc/test", "lc/train", "lc/random"} <= set(run.data.metrics)
    steps = [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "lc/train")]
    assert steps == log_schedule(12, 4)                  # the tracker's schedule over max_steps
    assert run.data.params["grok.lc_samples"] == "16"
    assert callback.tracker.history[0]["lc/train"] > 0      # GELUActivation counted as a layer
    # analysed after the fact (issue 42): from the logged model, snapshots and recorded points
    from grok_mlflow.cli import main

    run_id = run.info.run_id
    assert main(["partition", run_id]) == 0
    assert main(["radius", run_id, "--points", "8", "--radii", "0.01,0.1",
                 "--directions", "2"]) == 0
    artifacts = {a.path for d in ("partition", "radius")
                 for a in MlflowClient().list_artifacts(run_id, d)}
    assert "radius/radius.png" in artifacts
    assert any(p.startswith("partition/redrawn_step_") for p in artifacts)
    assert main(["compare-regions", run_id]) == 2        # regions of token inputs: one line


def test_without_transformers_mlflow_callback_the_run_is_the_callbacks_own(tmp_path, tracking_uri):
    callback = fit(tmp_path, "none", steps=6)
    run = only_run()
    assert run.info.run_id == callback.tracker.run_id and run.info.status == "FINISHED"
    assert "loss" not in run.data.metrics and "lc/test" in run.data.metrics
    assert run.data.params["lc_samples"] == "16"


DDP_SCRIPT = """import sys, json
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
from grok_mlflow import TrackerSettings
from grok_mlflow.huggingface import GrokTrainerCallback


class Rows(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randint(0, 12, (n, 6), generator=gen)
        self.y = (self.x[:, 0] > 5).long()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"input_ids": self.x[i], "labels": self.y[i]}


torch.manual_seed(0)
model = BertForSequenceClassification(BertConfig(vocab_size=12, hidden_size=16, num_hidden_layers=1,
    num_attention_heads=2, intermediate_size=32, max_position_embeddings=8, num_labels=2))
train, test = Rows(64, 0), Rows(32, 1)
callback = GrokTrainerCallback(train, test, TrackerSettings(eval_points=4, lc_samples=17,
    lc_directions=5, adv_points=0, partition_every=0, lc_input="bert.embeddings.word_embeddings"))
args = TrainingArguments(output_dir="out", max_steps=12, per_device_train_batch_size=8,
                         learning_rate=1e-3, report_to="mlflow", logging_steps=4,
                         save_strategy="no", use_cpu=True, disable_tqdm=True, run_name="ddp-bert")
Trainer(model=model, args=args, train_dataset=train, callbacks=[callback]).train()
t = callback.tracker
with open(sys.argv[1] + f".{t.shards.rank}", "w") as f:
    json.dump({"rank": t.shards.rank, "size": t.shards.size, "run": t.run_id,
               "lc": t.history[12]["lc/train"]}, f)
"""


def test_a_torchrun_of_the_trainer_on_two_processes_writes_one_run(tmp_path, tracking_uri):
    """The Trainer under torchrun (DDP, gloo): every rank measures its share, the main process
    writes into transformers' run; both ranks hold the same values."""
    import json
    import socket
    import subprocess
    import sys

    from conftest import subprocess_env

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "hf_ddp.py").write_text(DDP_SCRIPT)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_addr", "127.0.0.1", "--master_port", str(port), "hf_ddp.py",
                           "out.json"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=subprocess_env(MLFLOW_TRACKING_URI=tracking_uri,
                                             OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"out.json.{r}").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["size"]) for r in ranks] == [(0, 2), (1, 2)]
    assert ranks[1]["run"] is None and ranks[0]["lc"] == ranks[1]["lc"]
    run = only_run()
    assert run.info.run_id == ranks[0]["run"] and run.info.status == "FINISHED"
    assert run.data.tags["mlflow.runName"] == "ddp-bert" and "loss" in run.data.metrics
    steps = [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "lc/train")]
    assert steps == log_schedule(12, 4)


def test_resume_from_checkpoint_continues_the_same_run(tmp_path, tracking_uri):
    """A run of the callback's own (no MLflowCallback) that crashes at step 6 after the
    Trainer's checkpoint at step 4; ``train(resume_from_checkpoint=...)`` continues that run from
    the checkpoint's history: one run, FINISHED, every scheduled step measured once."""
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 6:
                raise RuntimeError("the machine went away")

    settings = TrackerSettings(eval_points=6, lc_samples=16, lc_directions=5, adv_points=0,
                               partition_every=0, lc_input="bert.embeddings.word_embeddings")
    train, test = Rows(64, 0), Rows(32, 1)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=10,
                             per_device_train_batch_size=16, learning_rate=1e-3,
                             report_to="none", save_strategy="steps", save_steps=4,
                             use_cpu=True, disable_tqdm=True, run_name="tiny-bert")
    first = GrokTrainerCallback(train, test, settings)
    with pytest.raises(RuntimeError, match="went away"):
        Trainer(model=tiny_bert(), args=args, train_dataset=train,
                callbacks=[first, Crash()]).train()
    assert (tmp_path / "out" / "checkpoint-4" / "grok_tracker.pt").exists()
    again = GrokTrainerCallback(train, test, settings)
    Trainer(model=tiny_bert(), args=args, train_dataset=train, callbacks=[again]).train(
        resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-4"))
    run = only_run()
    assert again.tracker.run_id == first.tracker.run_id == run.info.run_id
    assert run.info.status == "FINISHED"
    steps = [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "lc/test")]
    assert sorted(steps) == log_schedule(10, 6)
    assert sorted(again.tracker.history) == log_schedule(10, 6)
