"""The training loop's options (issue #26): the float64 loss and the learning-rate warm-up, in
``train`` and in ``train_stacked``."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from grok_mlflow.evaluation import loss_function
from grok_mlflow.settings import Settings
from grok_mlflow.training import train, train_stacked, warmup_factor


@pytest.mark.parametrize("name", ["cross_entropy", "mse"])
def test_float64_loss_equals_a_float64_reference_and_its_gradient_reaches_float32(name):
    torch.manual_seed(0)
    logits = (5 * torch.randn(32, 10)).requires_grad_()
    labels = torch.randint(0, 10, (32,))
    loss = loss_function(name, float64=True)(logits, labels)
    assert loss.dtype == torch.float64
    reference = logits.detach().double().requires_grad_()
    expected = (F.cross_entropy(reference, labels) if name == "cross_entropy" else
                F.mse_loss(reference, F.one_hot(labels, 10).double()))
    assert torch.equal(loss.detach(), expected.detach())
    loss.backward()
    expected.backward()
    assert logits.grad.dtype == torch.float32
    assert torch.equal(logits.grad, reference.grad.float())


def test_float64_cross_entropy_keeps_the_digits_of_a_near_zero_loss():
    """A margin of 20 on 113 classes: loss = log(1 + 112 e^-20) = 2.31e-7 exactly enough in
    float64; float32's log-softmax rounds it (here to 2.38e-7, 3% off)."""
    logits = torch.zeros(1, 113)
    logits[0, 0] = 20.0
    labels = torch.tensor([0])
    exact = math.log1p(112 * math.exp(-20))
    high = loss_function("cross_entropy", float64=True)(logits, labels).item()
    low = loss_function("cross_entropy")(logits, labels).item()
    assert high == pytest.approx(exact, rel=1e-12)
    assert abs(low - exact) / exact > 1e-3


def test_warmup_factor_is_linear_then_one():
    s = Settings(warmup_steps=4)
    assert [warmup_factor(s, k) for k in range(1, 7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(Settings(), 1) == 1.0


TINY = Settings(steps=12, width=16, depth=2, batch_size=100, train_size=400, dtype="float64",
                lr=1e-2, weight_decay=0.1)


def test_warmup_and_float64_loss_train_the_same_alone_and_stacked():
    """A stacked member with warm-up and the float64 loss equals the same run alone (float64,
    to rounding), and the warm-up changes the weights (it is really applied)."""
    settings = dataclasses.replace(TINY, warmup_steps=5, loss_float64=True)
    alone = train(settings, progress=False, track=False).model
    stacked = train_stacked([settings, dataclasses.replace(settings, seed=1)],
                            progress=False, track=False)[0].model
    no_warmup = train(TINY, progress=False, track=False).model
    for (name, a), b, c in zip(alone.state_dict().items(), stacked.state_dict().values(),
                               no_warmup.state_dict().values()):
        assert torch.allclose(a, b, rtol=0, atol=1e-12), name
    assert not torch.allclose(alone.state_dict()["hidden1.linear.weight"],
                              no_warmup.state_dict()["hidden1.linear.weight"], atol=1e-6)
