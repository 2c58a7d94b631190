"""Any model, any task (issue #27): users' own models and loops that are not ours - low-dimensional
inputs, one-logit classifiers, regression, dict outputs - each ending with the metrics its task
should have and none that it should not; bad choices refused before any run exists."""

from __future__ import annotations

import json

import mlflow
import mlflow.pytorch
import pytest
import torch
import torch.nn.functional as F
from mlflow.tracking import MlflowClient
from torch import nn

from grok_mlflow import GrokTracker, RunOptions, TrackerSettings
from grok_mlflow.measures.tasks import TensorOutput, TwoLogits, infer_task, select_output

SMALL = TrackerSettings(steps=30, eval_points=3, lc_samples=20, adv_samples=20, adv_points=2,
                        partition_every=1, partition_resolution=16)


def runs():
    client = MlflowClient()
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def fit(model, x, y, loss_fn, settings=SMALL, log_model=False, **tracker):
    """The README's loop: full-batch AdamW, the tracker stepped every step."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with GrokTracker(model, train=(x, y), test=(x, y), settings=settings, **tracker,
                     run=RunOptions(progress=False, log_model=log_model)) as t:
        for step in range(1, settings.steps + 1):
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            t.step(step, loss=loss)
    run = MlflowClient().get_run(t.run_id)
    config = json.loads(mlflow.artifacts.load_text(f"runs:/{t.run_id}/config.json"))
    return t, run, config


def top_keys(run):
    """Metric keys without per-layer / CI / per-radius detail."""
    return {k for k in run.data.metrics if k.count("/") <= 1 or k.startswith("adv/")}


def mlp(inputs, outputs, width=16):
    return nn.Sequential(nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, outputs))


def test_the_fig6_toy_network_with_two_inputs_runs_with_default_settings():
    """2 inputs: P defaults to min(25, 2) = 2 (recorded), the rest as for any classifier."""
    x = torch.rand(200, 2)
    y = (x[:, 0] > x[:, 1]).long()
    t, run, config = fit(mlp(2, 2), x, y, F.cross_entropy)
    assert run.info.status == "FINISHED"
    assert config["tracker_settings"]["lc_directions"] == 2 and config["task"] == "multiclass"
    assert {"acc/train", "acc/test", "loss/train", "lc/train", "lc/random",
            "partition/regions_near_boundary", "adv/acc/eps_0.1"} <= top_keys(run)


class ResidualMLP(nn.Module):
    def __init__(self, dim=20, classes=3):
        super().__init__()
        self.inp, self.block = nn.Linear(dim, 32), nn.Sequential(nn.Linear(32, 32), nn.ReLU())
        self.out = nn.Linear(32, classes)

    def forward(self, x):
        h = self.inp(x)
        return self.out(h + self.block(h))


def test_a_20_input_residual_mlp_gets_p_20_and_an_explicit_p_above_is_refused_with_no_run():
    x, y = torch.rand(100, 20), torch.randint(0, 3, (100,))
    _, run, config = fit(ResidualMLP(), x, y, F.cross_entropy)
    assert config["tracker_settings"]["lc_directions"] == 20
    with pytest.raises(ValueError, match=r"^lc_directions: must be <= the input dimension 20 "):
        fit(ResidualMLP(), x, y, F.cross_entropy,
            settings=TrackerSettings(steps=5, lc_directions=25))
    assert len(runs()) == 1                      # the first run only: the refused one never began


def test_a_binary_classifier_with_one_logit_and_bce():
    x = torch.rand(200, 4)
    y = (x.sum(1) > 2).float()                                    # 0. / 1. float labels
    bce = lambda out, target: F.binary_cross_entropy_with_logits(out.squeeze(1), target)  # noqa
    model = mlp(4, 1)
    t, run, config = fit(model, x, y, bce)
    assert config["task"] == "binary"
    assert {"acc/train", "acc/test", "loss/train", "adv/acc/eps_0.1",
            "partition/regions_near_boundary"} <= top_keys(run)
    # the tracker's accuracy and loss are the binary ones of the final model
    with torch.no_grad():
        z = model(x).squeeze(1)
    assert run.data.metrics["acc/train"] == pytest.approx(float(((z > 0) == (y > 0.5)).double()
                                                                .mean()))
    assert run.data.metrics["loss/train"] == pytest.approx(float(bce(z[:, None], y)), rel=1e-5)


def test_a_regression_mlp_logs_losses_and_lc_but_no_accuracy():
    x = torch.rand(200, 3)
    y = (x ** 2).sum(1, keepdim=True)                             # (N, 1) float targets
    t, run, config = fit(mlp(3, 1), x, y, F.mse_loss)
    keys = top_keys(run)
    assert config["task"] == "regression"
    assert {"loss/train", "loss/test", "lc/train", "lc/test", "lc/random", "partition/regions",
            "adv/loss/eps_0.05", "adv/loss/eps_0.1", "adv/loss/eps_0.2"} <= keys
    assert not [k for k in keys if k.startswith(("acc/", "adv/acc/"))]
    assert "partition/regions_near_boundary" not in keys
    assert "grok/interpolation_step" not in keys
    # PGD on the loss finds inputs at least as bad as the clean ones
    last = t.history[max(t.history)]
    assert last["adv/loss/eps_0.2"] >= last["loss/test"] - 1e-6
    report = mlflow.artifacts.load_text(f"runs:/{t.run_id}/report.md")
    assert "| generalization (test loss) |" in report and "| interpolation |" not in report


class DictOutput(nn.Module):
    """Returns what Hugging Face models return: a mapping with logits (and more)."""

    def __init__(self):
        super().__init__()
        self.body = mlp(4, 3)

    def forward(self, x):
        logits = self.body(x)
        return {"loss_hint": logits.sum(), "logits": logits, "hidden": x}


def test_a_model_returning_a_dict_is_measured_on_its_logits(capsys):
    x, y = torch.rand(100, 4), torch.randint(0, 3, (100,))
    t, run, config = fit(DictOutput(), x, y, lambda out, y: F.cross_entropy(out["logits"], y),
                         log_model=True)
    assert run.info.status == "FINISHED" and config["task"] == "multiclass"
    logged = mlflow.pytorch.load_model(f"runs:/{t.run_id}/model")     # pickled: a dict output
    assert set(logged(x[:2])) == {"loss_hint", "logits", "hidden"}
    assert "measuring its 'logits'" in capsys.readouterr().err
    assert config["lc_layers"] == {"layer_1": "body.1", "layer_2": "body.3"}   # its own names
    assert {"acc/train", "lc/train", "adv/acc/eps_0.1"} <= top_keys(run)


@pytest.mark.parametrize("kwargs, message", [
    (dict(output="scores"), "output: 'scores' is not in the model's dict output; it has: "
                            "'loss_hint', 'logits', 'hidden'"),
    (dict(output=2.5), "output: must be a key (str), an index (int) or a callable, got float"),
    (dict(task="ranking"), "task: unknown value 'ranking'; valid: multiclass, binary, "
                           "multilabel, regression (or None: inferred from the outputs and "
                           "labels)"),
    (dict(task="binary"), "task: binary needs one logit per sample; the output is (8, 3)"),
])
def test_a_bad_output_or_task_is_one_line_and_no_run(kwargs, message):
    x, y = torch.rand(50, 4), torch.randint(0, 3, (50,))
    with pytest.raises(ValueError) as info:
        fit(DictOutput(), x, y, lambda out, y: F.cross_entropy(out["logits"], y), **kwargs)
    assert str(info.value) == message
    assert runs() == []


class Breaks(nn.Module):
    """A model that works until its user flips ``broken`` (a bug in their own forward)."""

    def __init__(self):
        super().__init__()
        self.net, self.broken = mlp(4, 3), False

    def forward(self, x):
        if self.broken:
            raise RuntimeError("shape mismatch in my layer\nsecond line of detail")
        return self.net(x)


def test_a_failure_after_the_start_leaves_a_failed_run_that_says_why():
    x, y = torch.rand(50, 4), torch.randint(0, 3, (50,))
    model = Breaks()
    settings = TrackerSettings(steps=20, eval_points=2, eval_every=10, lc_samples=10,
                               adv_points=0, partition_every=0)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        with GrokTracker(model, (x, y), (x, y), settings,
                         run=RunOptions(log_model=False, progress=False)) as t:
            for step in range(1, 21):
                model.broken = step >= 10        # measured at step 10: the measure fails
                t.step(step)
    (run,) = runs()
    assert run.info.status == "FAILED"
    assert run.data.tags["grok_mlflow.failure"] == "RuntimeError: shape mismatch in my layer"
    assert run.data.tags["grok_mlflow.failure_step"] == "10"


def test_output_selection_and_task_inference_rules():
    logits = torch.randn(4, 3)
    assert select_output({"logits": logits, "x": 1}) is logits
    assert select_output((torch.ones(1), logits), 1) is logits
    assert select_output({"a": logits}, lambda out: out["a"] * 2).equal(logits * 2)
    assert infer_task(logits, torch.tensor([0, 2, 1, 0])) == "multiclass"
    assert infer_task(torch.randn(4, 1), torch.tensor([0.0, 1.0, 1.0, 0.0])) == "binary"
    assert infer_task(torch.randn(4), torch.tensor([0, 1, 1, 0])) == "binary"
    assert infer_task(torch.randn(4, 2), torch.randn(4, 2)) == "regression"
    # the wrappers keep the model's own names and compute exactly what they say
    net = mlp(4, 1)
    two = TwoLogits(TensorOutput(net))
    assert [n for n, _ in two.named_modules()][1:] == [n for n, _ in net.named_modules()][1:]
    x, y = torch.rand(8, 4), torch.tensor([0, 1] * 4)
    z = net(x).squeeze(1)
    assert torch.allclose(F.cross_entropy(two(x), y),
                          F.binary_cross_entropy_with_logits(z, y.float()))


def test_multi_label_outputs_and_labels_are_inferred_as_multilabel():
    from grok_mlflow.measures.tasks import infer_task

    out = torch.randn(8, 5)
    assert infer_task(out, (torch.rand(8, 5) > 0.5).float()) == "multilabel"
    assert infer_task(out, (torch.rand(8, 5) > 0.5).long()) == "multilabel"
    assert infer_task(out, torch.rand(8, 5)) == "regression"          # not 0/1: regression
