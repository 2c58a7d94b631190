"""PGD robustness: exact cases, agreement with torchattacks, bad input."""

from __future__ import annotations

import pytest
import torch
import torchattacks
from torch import nn

from grok_mlflow.measures.evaluation import accuracy_and_loss
from grok_mlflow.measures.robustness import pgd_attack, robust_accuracy


@pytest.fixture(scope="module")
def trained():
    """A small MLP trained on sklearn digits to ~95% test accuracy (a few seconds on CPU)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(300):
        idx = torch.randint(0, 1200, (128,))
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net, x[1200:1500], y[1200:1500]


def test_eps_zero_is_exactly_clean_accuracy(trained):
    net, x, y = trained
    clean, _ = accuracy_and_loss(net, x, y)
    assert clean > 0.9
    assert robust_accuracy(net, x, y, eps=0.0)[0.0] == clean


def test_perturbations_stay_in_the_ball_and_the_pixel_box(trained):
    net, x, y = trained
    for eps in (0.01, 0.1, 0.3):
        adv = pgd_attack(net, x, y, eps=eps, steps=5)
        assert (adv - x).abs().max() <= eps + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1
        assert (adv - x).abs().max() > eps / 2   # it does move


def test_without_random_start_equals_torchattacks_pgd(trained):
    net, x, y = trained
    eps, steps = 0.1, 7
    attack = torchattacks.PGD(net, eps=eps, alpha=2.5 * eps / steps, steps=steps,
                              random_start=False)
    net.eval()
    adv = attack(x, y)
    with torch.no_grad():
        expected = (net(adv).argmax(1) == y).double().mean()
    got = robust_accuracy(net, x, y, eps=eps, steps=steps, random_start=False)[eps]
    assert got == expected


def test_accuracy_does_not_increase_with_eps(trained):
    net, x, y = trained
    eps = [0.0, 0.02, 0.05, 0.1, 0.2]
    acc = robust_accuracy(net, x, y, eps=eps)
    values = [float(acc[e]) for e in eps]
    assert values == sorted(values, reverse=True)
    assert values[0] > values[-1]


def test_deterministic_batched_and_side_effect_free(trained):
    net, x, y = trained
    net.train()
    grads = [p.grad.clone() for p in net.parameters()]
    state = torch.get_rng_state()
    a = robust_accuracy(net, x, y, eps=[0.05, 0.1], seed=3)
    b = robust_accuracy(net, x, y, eps=[0.05, 0.1], seed=3, batch_size=7)
    assert torch.equal(torch.get_rng_state(), state)
    assert net.training
    assert all(torch.equal(p.grad, g) for p, g in zip(net.parameters(), grads))
    assert a == b


@pytest.mark.parametrize("kwargs, message", [
    (dict(eps=-0.1), r"eps must be in \[0, 1\]"),
    (dict(eps=1.5), r"eps must be in \[0, 1\]"),
    (dict(eps=[0.1, 2.0]), r"eps must be in \[0, 1\]"),
    (dict(eps=0.1, steps=0), "steps must be an integer >= 1"),
])
def test_bad_input_raises_value_error(trained, kwargs, message):
    net, x, y = trained
    with pytest.raises(ValueError, match=message):
        robust_accuracy(net, x, y, **kwargs)


def test_works_inside_a_no_grad_block(trained):
    net, x, y = trained
    with torch.no_grad():
        inside = robust_accuracy(net, x, y, eps=0.1)
    assert inside == robust_accuracy(net, x, y, eps=0.1)
    assert inside[0.1] < accuracy_and_loss(net, x, y)[0]


def test_empty_subset_raises_value_error(trained):
    net, x, y = trained
    with pytest.raises(ValueError, match="at least one sample"):
        robust_accuracy(net, x[:0], y[:0], eps=0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_the_models_cuda_device_and_keeps_the_cuda_rng(trained):
    net, x, y = trained
    net.cuda()
    try:
        state = torch.cuda.get_rng_state()
        acc = robust_accuracy(net, x, y, eps=[0.0, 0.1])
        assert torch.equal(torch.cuda.get_rng_state(), state)
        assert acc[0.0].device.type == "cuda"
        assert acc[0.0].item() == accuracy_and_loss(net, x.cuda(), y.cuda())[0].item()
    finally:
        net.cpu()


def _standardized_mlp():
    """Issue 37's case: standardized features (torch.randn, far outside [0, 1]) and an MLP
    trained on them to a clean accuracy well above chance."""
    torch.manual_seed(0)
    x = torch.randn(300, 3)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, x, y


def test_inputs_outside_the_box_are_refused_not_clamped_and_their_own_box_works():
    model, x, y = _standardized_mlp()
    clean = float((model(x).argmax(1) == y).double().mean())
    assert clean > 0.9
    with pytest.raises(ValueError) as info:
        robust_accuracy(model, x, y, eps=[1e-6])                 # default box: [0, 1]
    assert str(info.value).startswith("x lie outside domain (0, 1): min ")
    box = (float(x.min()), float(x.max()))
    tiny = robust_accuracy(model, x, y, eps=[1e-6], domain=box)[1e-6]
    assert float(tiny) == pytest.approx(clean, abs=1 / 300)      # not the clamped data's 0.4
    big = robust_accuracy(model, x, y, eps=[0.5], domain=box)[0.5]
    assert float(big) < clean                                    # the attack does work
    with pytest.raises(ValueError, match=r"eps must be in \[0, "):
        robust_accuracy(model, x, y, eps=[100.0], domain=box)


def test_in_a_box_pgd_stays_in_the_box_and_the_ball():
    model, x, y = _standardized_mlp()
    low, high = float(x.min()), float(x.max())
    torch.manual_seed(0)
    from grok_mlflow.measures.robustness import _InBox

    u = (x - low) / (high - low)
    adv_u = pgd_attack(_InBox(model, low, high), u, y, eps=0.3 / (high - low), steps=5)
    adv = low + (high - low) * adv_u
    assert float((adv - x).abs().max()) <= 0.3 + 1e-5
    assert float(adv.min()) >= low - 1e-5 and float(adv.max()) <= high + 1e-5
