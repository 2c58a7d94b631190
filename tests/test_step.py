"""One measured step: every metric equals the measure it comes from, computed directly."""

from __future__ import annotations

import torch
from torch import nn

from grok_mlflow.measures.complexity import local_complexity
from grok_mlflow.measures.evaluation import accuracy_and_loss
from grok_mlflow.measures.robustness import robust_accuracy
from grok_mlflow.settings import TrackerSettings
from grok_mlflow.tracker.probes import draw_probes
from grok_mlflow.tracker.step import adv_budgets, lc_prefix, measure_step


def setup(radii=(0.05,)):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3)).double()
    x = torch.rand(40, 1, 4, 4, dtype=torch.float64)
    y = torch.arange(40) % 3
    s = TrackerSettings(lc_samples=10, lc_directions=4, adv_samples=8, adv_steps=2,
                        lc_radius=radii, seed=1)
    return net, draw_probes((x, y), (x, y), s, torch.device("cpu")), s


def test_every_metric_is_its_measure_on_the_probes():
    net, probes, s = setup()
    metrics = measure_step(net, probes, s, adversarial=True)
    acc, loss = accuracy_and_loss(net, *probes.accuracy["test"], "cross_entropy")
    assert metrics["acc/test"] == acc and metrics["loss/test"] == loss
    lc = local_complexity(net, probes.lc["random"], radius=0.05, n_directions=4, seed=1)
    assert metrics["lc/random"] == lc.mean()
    assert metrics["lc/random/layer_1"] == lc.layer_mean()[0]
    low, high = lc.confidence_interval(0.99)
    assert (metrics["lc/random/ci_low"], metrics["lc/random/ci_high"]) == (low, high)
    robust = robust_accuracy(net, *probes.adv, eps=[0.05, 0.1, 0.2], steps=2, seed=1)
    assert metrics["adv/acc/eps_0.1"] == robust[0.1]
    assert all(v.dim() == 0 for v in metrics.values())


def test_keys_follow_the_radii_and_pgd_only_when_asked():
    net, probes, s = setup(radii=(0.01, 0.1))
    metrics = measure_step(net, probes, s)
    assert {"lc_r0.01/train", "lc_r0.1/test"} <= set(metrics)
    assert not any(k.startswith("adv/") for k in metrics)
    assert lc_prefix(0.05, (0.05,)) == "lc" and lc_prefix(0.1, (0.01, 0.1)) == "lc_r0.1"
    assert adv_budgets(s, (0.0, 1.0)) == (0.05, 0.1, 0.2)
    assert adv_budgets(s, (-1.0, 1.0)) == (0.1, 0.2, 0.4)


def test_a_regression_task_has_losses_and_no_accuracy():
    net, probes, s = setup()
    probes = probes.with_labels(lambda y: torch.rand(len(y), 3, dtype=torch.float64))
    metrics = measure_step(net, probes, s, adversarial=True, task="regression")
    assert "loss/train" in metrics and not any(k.startswith("acc/") for k in metrics)
    assert {"adv/loss/eps_0.05", "adv/loss/eps_0.2"} <= set(metrics)
