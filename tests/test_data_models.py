"""Datasets and model registries."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from grok_mlflow.complexity import local_complexity
from grok_mlflow.data import DATASETS, load_dataset
from grok_mlflow.models import MODELS, build_model
from grok_mlflow.settings import Settings, SettingsError
from grok_mlflow.training import check_settings

CPU = torch.device("cpu")


def test_digits_is_real_scaled_and_split_by_seed():
    data = load_dataset(Settings(train_size=1000, seed=0), CPU)
    assert data.x_train.shape == (1000, 1, 8, 8) and data.x_test.shape == (797, 1, 8, 8)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert data.x_train.min() == 0 and data.x_train.max() == 1
    # 16 grey levels, as sklearn ships them
    assert torch.equal(torch.unique(data.x_train * 16), torch.arange(17, dtype=torch.float32))
    assert set(data.y_train.tolist()) == set(range(10)) and data.num_classes == 10
    again = load_dataset(Settings(train_size=1000, seed=0), CPU)
    other = load_dataset(Settings(train_size=1000, seed=1), CPU)
    assert torch.equal(again.x_train, data.x_train)
    assert not torch.equal(other.x_train, data.x_train)
    # train and test are disjoint: no test image equals a training image row-for-row
    everything = torch.cat([data.x_train, data.x_test]).flatten(1)
    assert len(everything) == 1797


def test_train_size_larger_than_the_dataset_is_refused_before_loading():
    with pytest.raises(SettingsError, match="train_size: must be <= 1796 for digits, got 5000"):
        check_settings(Settings(train_size=5000, batch_size=100, device="cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(SettingsError, match="device: cuda requested but no CUDA GPU"):
        check_settings(Settings(device="cuda"))


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("activation", ["relu", "gelu", "leaky_relu"])
def test_every_model_builds_runs_and_exposes_its_nonlinearities(name, activation):
    s = Settings(model=name, depth=3, width=16, activation=activation)
    net = build_model(s, (1, 8, 8), 10)
    assert net(torch.rand(5, 1, 8, 8)).shape == (5, 10)
    lc = local_complexity(net, torch.rand(4, 1, 8, 8), radius=0.1, n_directions=5)
    expected = {"mlp": [f"hidden{i}.act" for i in range(1, 4)],
                "cnn": [f"conv{i}.act" for i in range(1, 4)] + ["fc.act"]}[name]
    assert lc.layer_names == expected


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


def test_dataset_registry_entries_are_documented():
    for spec in DATASETS.values():
        assert spec.description and spec.default_adv_eps
