"""Local complexity against cases with exact answers."""

from __future__ import annotations

import math
import sys

import pytest
import torch
import torchvision
from torch import nn

from grok_mlflow.measures.complexity import local_complexity, sample_directions
from grok_mlflow.measures.network import plan_for as _plan_for
from grok_mlflow.measures.network import register_nonlinearity


def mlp(dims, act=nn.ReLU, bias=True, dtype=torch.float64):
    layers = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(dims) - 2:
            layers.append(act())
    return nn.Sequential(*layers).to(dtype)


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it, so LC takes the plain path."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        if x.sum() > float("-inf"):
            return self.inner(x)
        return x


def first_layer_closed_form(linear: nn.Linear, x, directions, radius):
    """|w.x + b| <= r * max_p |w.v_p|: the hyperplane meets the cross-polytope."""
    centre = x.flatten(1) @ linear.weight.T + linear.bias           # (N, H)
    reach = radius * (directions @ linear.weight.T).abs().amax(0)   # (H,)
    return (centre.abs() <= reach).sum(1)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("radius", [0.01, 0.1, 1.0])
def test_first_layer_equals_closed_form(seed, radius):
    torch.manual_seed(seed)
    net = mlp([30, 64, 32, 5])
    x = torch.rand(200, 30, dtype=torch.float64)
    lc = local_complexity(net, x, radius=radius, n_directions=7, seed=seed)
    directions = sample_directions(30, 7, seed=seed, dtype=torch.float64)
    expected = first_layer_closed_form(net[1], x, directions, radius)
    assert torch.equal(lc.per_layer[:, 0], expected)
    assert 0 < expected.sum() < 200 * 64 or radius == 1.0  # a non-trivial case


def test_first_layer_closed_form_on_the_plain_path_too():
    torch.manual_seed(1)
    net = mlp([30, 64, 5])
    x = torch.rand(100, 30, dtype=torch.float64)
    wrapped = Untraceable(net)
    assert _plan_for(wrapped).head is None and _plan_for(net).head is not None
    lc = local_complexity(wrapped, x, radius=0.1, n_directions=5)
    expected = first_layer_closed_form(net[1], x, sample_directions(30, 5, dtype=torch.float64), 0.1)
    assert torch.equal(lc.per_layer[:, 0], expected)


@pytest.mark.parametrize("n_directions", [1, 2, 25])
def test_linear_net_with_zero_biases_counts_every_neuron_at_the_origin(n_directions):
    # LeakyReLU(1) is the identity: a linear net whose every hyperplane passes through the origin.
    net = mlp([40, 50, 30, 20, 10], act=lambda: nn.LeakyReLU(1.0), bias=False)
    lc = local_complexity(net, torch.zeros(3, 40, dtype=torch.float64), radius=1e-3,
                          n_directions=n_directions)
    assert lc.per_layer.tolist() == [[50, 30, 20]] * 3


def test_zero_bias_relu_net_counts_every_first_layer_neuron_at_the_origin():
    net = mlp([20, 64, 64, 10], bias=False)
    lc = local_complexity(net, torch.zeros(4, 20, dtype=torch.float64), radius=0.5, n_directions=5)
    assert lc.per_layer[:, 0].tolist() == [64] * 4


def test_radius_to_zero_gives_zero():
    torch.manual_seed(0)
    net = mlp([30, 64, 64, 5])
    x = torch.rand(100, 30, dtype=torch.float64)
    counts = [local_complexity(net, x, radius=r).total.sum().item() for r in (1.0, 1e-3, 1e-12)]
    assert counts[0] > counts[1] > counts[2] == 0


def test_nested_direction_sets_never_decrease_lc():
    torch.manual_seed(0)
    net = mlp([30, 64, 64, 5])
    x = torch.rand(100, 30, dtype=torch.float64)
    all_dirs = sample_directions(30, 20, seed=3, dtype=torch.float64)
    previous = None
    for p in (1, 2, 5, 10, 20):
        lc = local_complexity(net, x, radius=0.05, directions=all_dirs[:p]).per_layer
        if previous is not None:
            assert (lc >= previous).all()
        previous = lc
    assert previous.sum() > 0


def test_chunking_and_batch_order_give_identical_counts():
    torch.manual_seed(0)
    net = mlp([30, 64, 64, 5])
    x = torch.rand(50, 30, dtype=torch.float64)
    whole = local_complexity(net, x, radius=0.1).per_layer
    for max_vertices in (1, 50, 170, 10_000):
        assert torch.equal(local_complexity(net, x, radius=0.1,
                                            max_batch_vertices=max_vertices).per_layer, whole)
    order = torch.randperm(50)
    assert torch.equal(local_complexity(net, x[order], radius=0.1).per_layer, whole[order])


def test_fast_path_equals_materialised_vertices():
    torch.manual_seed(0)
    net = mlp([64, 100, 100, 100, 10])
    x = torch.rand(80, 1, 8, 8, dtype=torch.float64)
    fast = local_complexity(net, x, radius=[0.02, 0.2])
    plain = local_complexity(Untraceable(net), x, radius=[0.02, 0.2])
    for r in (0.02, 0.2):
        assert torch.equal(fast[r].per_layer, plain[r].per_layer)
        assert fast[r].per_layer.sum() > 0


def test_several_radii_equal_separate_calls_with_the_same_directions():
    torch.manual_seed(0)
    net = mlp([30, 64, 64, 5])
    x = torch.rand(40, 30, dtype=torch.float64)
    both = local_complexity(net, x, radius=[0.05, 0.5], seed=7)
    for r in (0.05, 0.5):
        assert torch.equal(both[r].per_layer, local_complexity(net, x, radius=r, seed=7).per_layer)


def test_directions_are_orthonormal_and_seeded():
    v = sample_directions(64, 25, seed=4)
    assert torch.allclose(v @ v.T, torch.eye(25), atol=1e-5)
    assert torch.equal(v, sample_directions(64, 25, seed=4))
    assert not torch.equal(v, sample_directions(64, 25, seed=5))


def test_per_point_directions_are_deterministic_and_chunk_independent():
    torch.manual_seed(0)
    net = mlp([30, 64, 64, 5])
    x = torch.rand(20, 30, dtype=torch.float64)
    a = local_complexity(net, x, radius=0.1, per_point=True, n_directions=4).per_layer
    b = local_complexity(net, x, radius=0.1, per_point=True, n_directions=4,
                         max_batch_vertices=24).per_layer
    assert torch.equal(a, b)
    # explicit per-point directions give the same counts as the equivalent shared ones
    shared = sample_directions(30, 4, seed=2, dtype=torch.float64)
    per_point = shared.expand(20, 4, 30)
    assert torch.equal(local_complexity(net, x, radius=0.1, directions=per_point).per_layer,
                       local_complexity(net, x, radius=0.1, directions=shared).per_layer)


class SmallCNN(nn.Module):
    def __init__(self, act=nn.ReLU):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), act(), nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1), act(), nn.AvgPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 2 * 2, 16), act(), nn.Linear(16, 10))

    def forward(self, x):
        return self.head(self.features(x))


def test_conv_first_layer_counts_every_channel_and_pixel():
    # A conv with zero bias at the origin: every (channel, y, x) neuron's hyperplane passes
    # through the centre, so every one is cut.
    net = SmallCNN().double()
    with torch.no_grad():
        net.features[0].bias.zero_()
    lc = local_complexity(net, torch.zeros(2, 3, 8, 8, dtype=torch.float64), radius=0.1,
                          n_directions=3)
    assert lc.per_layer[:, 0].tolist() == [8 * 8 * 8] * 2
    assert lc.per_layer.shape == (2, 3)


@pytest.mark.parametrize("act", [nn.ReLU, nn.GELU, nn.LeakyReLU])
def test_cnn_fast_path_equals_plain_path(act):
    torch.manual_seed(0)
    net = SmallCNN(act).double()
    x = torch.rand(6, 3, 8, 8, dtype=torch.float64)
    assert _plan_for(net).head is not None
    fast = local_complexity(net, x, radius=0.05, n_directions=6)
    assert _plan_for(net).channels_last is True
    per_point = local_complexity(net, x, radius=0.05, n_directions=6, per_point=True)
    per_point_plain = local_complexity(Untraceable(net), x, radius=0.05, n_directions=6,
                                       per_point=True)
    assert torch.equal(per_point.per_layer, per_point_plain.per_layer)
    plain = local_complexity(Untraceable(net), x, radius=0.05, n_directions=6)
    assert torch.equal(fast.per_layer, plain.per_layer) and fast.per_layer.sum() > 0
    assert fast.layer_names == ["features.1", "features.4", "head.2"]


def test_cnn_whose_code_needs_nchw_strides_still_works():
    class ViewCNN(nn.Module):  # .view() refuses channels-last tensors
        def __init__(self):
            super().__init__()
            self.conv, self.act, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Linear(256, 2)

        def forward(self, x):
            h = self.act(self.conv(x))
            return self.fc(h.view(h.size(0), -1))

    torch.manual_seed(0)
    net = ViewCNN().double()
    x = torch.rand(5, 3, 8, 8, dtype=torch.float64)
    fast = local_complexity(net, x, radius=0.05, n_directions=4)
    assert _plan_for(net).channels_last is False
    plain = local_complexity(Untraceable(net), x, radius=0.05, n_directions=4)
    assert torch.equal(fast.per_layer, plain.per_layer) and fast.per_layer.sum() > 0


def test_resnet_counts_a_reused_relu_as_two_layers():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).double()
    lc = local_complexity(net, torch.rand(2, 3, 32, 32, dtype=torch.float64), radius=0.005,
                          n_directions=3)
    # stem relu + 8 basic blocks x 2 calls of the block's one relu
    assert len(lc.layer_names) == 17
    assert lc.layer_names[:3] == ["relu", "layer1.0.relu", "layer1.0.relu#2"]
    plain = local_complexity(Untraceable(net), torch.rand(2, 3, 32, 32, dtype=torch.float64),
                             radius=0.005, n_directions=3)
    assert plain.layer_names == ["inner." + name for name in lc.layer_names]


def test_a_users_own_module_and_a_registered_activation():
    class Abs(nn.Module):
        def forward(self, x):
            return x.abs()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.act, self.b = nn.Linear(10, 16, bias=False), Abs(), nn.Linear(16, 2)

        def forward(self, x):
            return self.b(self.act(self.a(x)) * 2.0)

    net = Net().double()
    import grok_mlflow.measures.network as network
    before = network.NONLINEARITIES          # as now: other modules may have registered theirs
    with pytest.raises(ValueError, match="no recognised nonlinearity"):
        local_complexity(net, torch.zeros(2, 10, dtype=torch.float64), radius=0.1,
                         n_directions=3)
    register_nonlinearity(Abs)
    try:
        lc = local_complexity(net, torch.zeros(2, 10, dtype=torch.float64), radius=0.1,
                         n_directions=3)
        assert lc.per_layer.tolist() == [[16], [16]]
    finally:
        network.NONLINEARITIES = before
        network._PLANS.clear()


def test_model_state_gradients_and_global_rng_are_left_alone():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 20), nn.BatchNorm1d(20), nn.ReLU(), nn.Dropout(0.5),
                        nn.Linear(20, 3))
    net.train()
    net[1].eval()  # a mixed-mode model
    loss = net(torch.rand(8, 10)).sum()
    loss.backward()
    grads = [p.grad.clone() for p in net.parameters()]
    x = torch.rand(5, 10)
    state = torch.get_rng_state()
    local_complexity(net, x, radius=0.1, n_directions=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert net.training and not net[1].training and net[3].training
    assert all(torch.equal(p.grad, g) for p, g in zip(net.parameters(), grads))
    assert all(p.requires_grad for p in net.parameters())


def test_mean_and_confidence_interval():
    torch.manual_seed(0)
    net = mlp([30, 64, 64, 5])
    lc = local_complexity(net, torch.rand(300, 30, dtype=torch.float64), radius=0.2)
    total = lc.total.double()
    low, high = lc.confidence_interval(0.99)
    half = 2.5758293035489 * total.std() / math.sqrt(300)
    assert torch.isclose(lc.mean(), total.mean())
    assert torch.isclose(high - lc.mean(), half) and torch.isclose(lc.mean() - low, half)
    assert lc.layer_mean().shape == (2,) and torch.isclose(lc.layer_mean().sum(), lc.mean())


@pytest.mark.parametrize("kwargs, message", [
    (dict(radius=0.0), "radius must be a finite number > 0"),
    (dict(radius=-1.0), "radius must be a finite number > 0"),
    (dict(radius=float("nan")), "radius must be a finite number > 0"),
    (dict(radius=0.1, n_directions=31), r"n_directions must be in \[1, input dimension 30\]"),
    (dict(radius=0.1, directions=torch.zeros(3, 29)), r"directions must be \(P, 30\)"),
])
def test_bad_arguments_raise_value_error(kwargs, message):
    net = mlp([30, 8, 2], dtype=torch.float32)
    with pytest.raises(ValueError, match=message):
        local_complexity(net, torch.rand(4, 30), **kwargs)


def test_input_the_model_rejects_is_a_clear_value_error():
    net = mlp([30, 8, 2], dtype=torch.float32)
    with pytest.raises(ValueError, match=r"rejected input of shape \(20,\)"):
        local_complexity(net, torch.rand(4, 20), radius=0.1, n_directions=3)


def test_model_without_nonlinearity_is_a_clear_value_error():
    with pytest.raises(ValueError, match="no recognised nonlinearity"):
        local_complexity(nn.Linear(5, 2), torch.rand(4, 5), radius=0.1, n_directions=2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("per_point", [False, True])
def test_cuda_counts_equal_cpu_counts(per_point):
    torch.manual_seed(0)
    for net, x in ((mlp([64, 100, 100, 10]), torch.rand(64, 1, 8, 8, dtype=torch.float64)),
                   (SmallCNN().double(), torch.rand(16, 3, 8, 8, dtype=torch.float64))):
        cpu = local_complexity(net, x, radius=0.05, n_directions=6, per_point=per_point)
        gpu = local_complexity(net.cuda(), x, radius=0.05, n_directions=6, per_point=per_point)
        assert gpu.per_layer.device.type == "cuda"
        assert torch.equal(cpu.per_layer, gpu.per_layer.cpu())
        net.cpu()


def test_tf32_and_autocast_are_off_inside_and_the_users_flags_come_back():
    net = mlp([30, 8, 2], dtype=torch.float32)
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    seen = []
    hook = net[1].register_forward_hook(lambda *_: seen.append(
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.is_autocast_enabled("cpu"))))
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        x = torch.rand(4, 30)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lc = local_complexity(net, x, radius=0.1, n_directions=3)
        assert seen and set(seen) == {(False, False, False)}
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)
        plain = local_complexity(net, x, radius=0.1, n_directions=3)
        assert torch.equal(lc.per_layer, plain.per_layer)
    finally:
        hook.remove()
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_float32_cnn_counts_on_cuda_match_float64_despite_default_tf32():
    # cuDNN convolutions use TF32 by default on an H100; LC must not.
    from grok_mlflow.runner.models import build_model
    from grok_mlflow.settings import Settings

    torch.manual_seed(0)
    net = build_model(Settings(model="cnn", depth=5, width=32), (3, 32, 32), 10)
    x = torch.rand(128, 3, 32, 32)
    exact = local_complexity(net.double(), x.double(), radius=0.005, n_directions=25).per_layer
    assert torch.backends.cudnn.allow_tf32   # PyTorch's default, left alone
    gpu = local_complexity(net.float().cuda(), x.cuda(), radius=0.005, n_directions=25).per_layer
    differ = (gpu.cpu() != exact).sum().item()
    assert differ <= 0.005 * exact.numel(), f"{differ} of {exact.numel()} counts differ"


def test_float32_and_float64_counts_agree_on_the_papers_mlp():
    import copy

    from grok_mlflow.runner.models import build_model
    from grok_mlflow.settings import Settings

    torch.manual_seed(0)
    net = build_model(Settings(depth=3), (1, 28, 28), 10)           # the fig. 1 MLP, float32
    x = torch.rand(300, 1, 28, 28)
    single = local_complexity(net, x, radius=0.05, n_directions=25).per_layer
    double = local_complexity(copy.deepcopy(net).double(), x.double(), radius=0.05,
                              n_directions=25).per_layer
    assert single.sum() > 0 and torch.equal(single, double)


def test_lc_by_channel_finds_a_channel_at_its_kink_on_the_background(monkeypatch):
    """benchmarks/lc_by_channel.py: a CNN whose second layer's channel 0 sits 2^-12 below zero
    on a zero background (every position whose 3x3 window misses the bright 2x2 patch) is cut
    there at r = 0.01, and only there: 48 of 64 positions of an 8x8 image; channel 1 (far from
    its kink everywhere) never. The per-channel counts add up to local_complexity's layer LC."""
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location(
        "lc_by_channel", REPO / "benchmarks" / "lc_by_channel.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "lc_by_channel", module)   # its dataclass looks itself up
    spec.loader.exec_module(module)

    first, second = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 1)
    model = nn.Sequential(first, nn.ReLU(), second, nn.ReLU(), nn.Flatten(), nn.Linear(128, 3))
    with torch.no_grad():
        first.weight.fill_(0.5)
        first.bias.fill_(1.0)                               # layer 1: 1 on the background
        second.weight.fill_(1.0)
        second.bias.copy_(torch.tensor([-2.0 - 2.0 ** -12, 5.0]))
    x = torch.zeros(4, 1, 8, 8)
    x[:, :, 3:5, 3:5] = torch.tensor([0.6, 0.7, 0.8, 0.9]).view(4, 1, 1, 1)
    found = module.channel_cuts(model, x, radius=0.01)
    assert found.layer == "3"
    assert found.per_channel.tolist() == [48.0, 0.0]
    assert found.layer_lc == 48.0 and found.background_share == 1.0
    assert torch.all(found.background == -(2.0 ** -12))
