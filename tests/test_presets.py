"""Presets in projects/: valid, documented, and overridable by explicit settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from grok_mlflow.runner.data import DATASETS
from grok_mlflow.settings import Settings, SettingsError, load_preset

from conftest import REPO

PRESETS = sorted((REPO / "projects").glob("*.yaml"))


def test_the_paper_figures_have_presets():
    names = {p.stem for p in PRESETS}
    assert {"fig1_mnist_mlp", "fig2_cnn_cifar10", "fig2_cnn_cifar100", "fig2_resnet18_imagenette",
            "fig3_mlp_init8", "fig12_resnet18_imagenet", "fig14_cnn_batchnorm",
            "fig25_gelu_mlp"} <= names
    assert sum(n.startswith("digits_") for n in names) >= 4


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_preset_is_valid_and_documented(path: Path):
    settings = load_preset(str(path))
    assert settings.dataset in DATASETS and settings.preset == str(path)
    header = path.read_text().split("\n")
    assert header[0].startswith("# ") and any("Expected runtime" in line for line in header)
    assert any(f"-P preset=projects/{path.name}" in line for line in header)


def test_a_preset_name_without_the_repositorys_projects_says_where_presets_come_from(
        tmp_path, monkeypatch):
    """An install without ``projects/`` (a built wheel): a preset by name is refused in one line
    that says the presets ship with the repository."""
    import grok_mlflow.settings as settings_module

    monkeypatch.setattr(settings_module, "PROJECT_ROOT", tmp_path)
    with pytest.raises(SettingsError) as info:
        load_preset("fig1_mnist_mlp")
    assert str(info.value) == (
        "preset: cannot read 'fig1_mnist_mlp': no such file, and this install has no projects/ "
        "folder (the presets and sweep specs ship with the repository: install from a clone, "
        "pip install -e .)")


def test_explicit_settings_override_the_preset_and_defaults_do_not():
    path = str(REPO / "projects" / "fig1_mnist_mlp.yaml")
    s = Settings.from_strings({"preset": path, "steps": "500", "width": "64",
                               "depth": str(Settings().depth), "lr": "0.001"})
    assert s.steps == 500 and s.width == 64                  # explicit: override
    assert s.dataset == "mnist" and s.lc_radius == (0.005, 0.05)   # from the preset
    assert s.depth == 3                                      # default-valued: the preset's


@pytest.mark.parametrize("content, message", [
    ("steps: -3\n", "preset {p}: steps: must be >= 1"),
    ("colour: red\n", "preset {p}: unknown setting(s) colour; valid: preset, dataset"),
    ("- a list\n", "preset: '{p}' must be a mapping of setting: value"),
    ("steps: [unclosed\n", "preset: '{p}' is not valid YAML at line 2, column 1: expected ','"),
])
def test_bad_presets_fail_with_one_line(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(SettingsError) as info:
        Settings.from_strings({"preset": str(path)})
    assert message.format(p=path) in str(info.value)
