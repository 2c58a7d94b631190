"""The model registry: every model builds, runs and exposes its nonlinearities; shapes follow the
paper."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from grok_mlflow.measures.complexity import local_complexity
from grok_mlflow.runner.models import ACTIVATIONS, MODELS, build_model
from grok_mlflow.settings import Settings

# LC layers of each family (depth=3 for mlp/cnn): every nonlinearity, each call one layer
EXPECTED_LAYERS = {
    "mlp": [f"hidden{i}.act" for i in range(1, 4)],
    "cnn": [f"conv{i}.act" for i in range(1, 4)] + ["fc.act"],
    "preact_resnet18": [f"blocks.{b}.act{k}" for b in range(8) for k in (1, 2)] + ["act"],
    "resnet18": ["relu"] + [f"layer{s}.{b}.relu{suffix}" for s in range(1, 5) for b in range(2)
                            for suffix in ("", "#2")],
}


@pytest.mark.parametrize("name", sorted(set(MODELS) - {"transformer"}))   # tokens: test_tokens
@pytest.mark.parametrize("batchnorm", [False, True])
def test_every_model_builds_runs_and_exposes_its_nonlinearities(name, batchnorm):
    s = Settings(model=name, depth=3, width=8, batchnorm=batchnorm)
    torch.manual_seed(0)
    net = build_model(s, (3, 16, 16), 10)
    assert net(torch.rand(5, 3, 16, 16)).shape == (5, 10)
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert has_bn == batchnorm
    lc = local_complexity(net, torch.rand(2, 3, 16, 16), radius=0.01, n_directions=3)
    assert lc.layer_names == EXPECTED_LAYERS[name]
    assert lc.per_layer.shape == (2, len(EXPECTED_LAYERS[name]))


@pytest.mark.parametrize("activation", ["relu", "gelu", "leaky_relu"])
def test_activation_setting_is_used(activation):
    net = build_model(Settings(depth=2, width=8, activation=activation), (1, 8, 8), 10)
    kinds = {type(m) for m in net.modules() if type(m).__module__.startswith("torch.nn.modules.activation")}
    assert kinds == {type(ACTIVATIONS[activation]())}


def test_normalization_is_the_first_module_and_affine_for_lc():
    norm = ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    net = build_model(Settings(model="cnn", depth=2, width=4), (3, 8, 8), 10, norm)
    assert list(dict(net.named_children())) == ["normalize", "net"]
    x = torch.rand(3, 3, 8, 8)
    expected = net.net((x - torch.tensor(norm[0]).view(1, 3, 1, 1)) / torch.tensor(norm[1]).view(1, 3, 1, 1))
    assert torch.allclose(net(x), expected)
    from grok_mlflow.measures.network import plan_for as _plan_for
    assert _plan_for(net).head is not None   # LC's fast path sees through the normalisation


def test_mlp_shape_follows_the_paper():
    net = build_model(Settings(depth=4, width=200), (1, 28, 28), 10)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 200), (200, 200), (200, 200), (200, 200), (200, 10)]


def test_cnn_shape_follows_the_paper():
    net = build_model(Settings(model="cnn", depth=5, width=32), (3, 32, 32), 10)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(convs) == 5 and len(linears) == 2
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1]
    assert linears[0].in_features == 32 * 8 * 8
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_init_scale_multiplies_every_parameter():
    torch.manual_seed(3)
    base = build_model(Settings(depth=2, width=8), (1, 8, 8), 10)
    torch.manual_seed(3)
    scaled = build_model(Settings(depth=2, width=8, init_scale=8.0), (1, 8, 8), 10)
    for a, b in zip(base.parameters(), scaled.parameters()):
        assert torch.allclose(b, 8 * a)
