"""A run's name, device, data and model from its settings."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from grok_mlflow.runner.build import check_settings
from grok_mlflow.settings import Settings, SettingsError

from conftest import REPO


def test_runs_of_different_presets_get_different_names():
    from grok_mlflow.runner.build import run_name_for
    from grok_mlflow.settings import load_preset

    presets = ["fig1_mnist_mlp", "fig3_mlp_init8", "fig25_gelu_mlp"]   # same dataset and MLP
    loaded = [load_preset(str(REPO / "projects" / f"{p}.yaml")) for p in presets]
    assert [run_name_for(s) for s in loaded] == presets
    changed = dataclasses.replace(loaded[0], steps=20000, seed=1, device="cpu",
                                  data_root="/elsewhere")
    assert run_name_for(changed) == "fig1_mnist_mlp:steps=20000,seed=1"   # where it ran: not
    assert run_name_for(Settings()) == "digits_mlp"
    assert run_name_for(Settings(width=16, lr=3e-4)) == "digits_mlp:width=16,lr=0.0003"


def test_train_size_larger_than_the_dataset_is_refused_before_loading():
    with pytest.raises(SettingsError, match="train_size: must be <= 1796 for digits, got 5000"):
        check_settings(Settings(train_size=5000, batch_size=100, device="cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(SettingsError, match="device: cuda requested but no CUDA GPU"):
        check_settings(Settings(device="cuda"))
