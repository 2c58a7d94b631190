"""Losses and accuracy: the float64 loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from grok_mlflow.measures.evaluation import loss_function


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
