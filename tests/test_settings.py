"""Settings <-> MLproject <-> CLI <-> conda.yaml stay one thing."""

from __future__ import annotations

import dataclasses
import tomllib

import pytest
import yaml

from grok_mlflow import settings as settings_module
from grok_mlflow.measures import evaluation
from grok_mlflow.runner import data, models, training
from grok_mlflow.settings import Settings, SettingsError, render_mlproject

from conftest import REPO


def test_mlproject_is_generated_from_settings():
    assert (REPO / "MLproject").read_text() == render_mlproject()


def test_mlproject_parameters_match_dataclass_fields_names_types_defaults():
    spec = yaml.safe_load((REPO / "MLproject").read_text())
    params = spec["entry_points"]["main"]["parameters"]
    fields = dataclasses.fields(Settings)
    assert list(params) == [f.name for f in fields] + ["resume"]   # resume: not a setting
    assert params["resume"] == {"type": "string", "default": ""}
    kinds = {"string": (str, tuple, bool), "int": int, "float": float}
    for f in fields:
        declared = params[f.name]
        default = getattr(Settings(), f.name)
        # the MLproject default, read back through the settings parser, is the dataclass default
        parsed = Settings.from_strings({f.name: declared["default"]})
        assert getattr(parsed, f.name) == default, f.name
        assert isinstance(default, kinds[declared["type"]]), f.name
        assert not (declared["type"] == "int" and isinstance(default, bool)), f.name
    command = spec["entry_points"]["main"]["command"]
    for f in fields:
        assert f"--{f.name} {{{f.name}}}" in command
    assert command.endswith("--resume {resume}")


def test_every_field_is_documented():
    for f in dataclasses.fields(Settings):
        assert len(f.metadata["help"]) > 10, f.name


def test_name_lists_equal_the_registries():
    assert set(settings_module.DATASET_NAMES) == set(data.DATASETS)
    assert set(settings_module.MODEL_NAMES) == set(models.MODELS)
    assert set(settings_module.ACTIVATION_NAMES) == set(models.ACTIVATIONS)
    assert set(settings_module.LOSS_NAMES) == set(evaluation.LOSSES)
    assert set(settings_module.OPTIMIZER_NAMES) == set(training.OPTIMIZERS)


def test_conda_yaml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    conda = yaml.safe_load((REPO / "conda.yaml").read_text())
    pip_deps = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert pip_deps == project["dependencies"]


def test_params_round_trip():
    s = Settings(lc_radius=(0.01, 0.05), adv_eps=(2 / 255, 8 / 255), lr=3e-4, steps=123)
    assert Settings.from_strings(s.to_params()) == s


@pytest.mark.parametrize("values, message", [
    ({"model": "vit"}, "model: unknown value 'vit'; valid: mlp"),
    ({"activation": "tanh"}, "activation: unknown value 'tanh'; valid: relu, gelu, leaky_relu"),
    ({"loss": "hinge"}, "loss: unknown value 'hinge'; valid: cross_entropy, mse"),
    ({"device": "tpu"}, "device: unknown value 'tpu'; valid: auto, cpu, cuda"),
    ({"width": "0"}, "width: must be >= 1, got '0'"),
    ({"depth": "-2"}, "depth: must be >= 1, got '-2'"),
    ({"steps": "0"}, "steps: must be >= 1, got '0'"),
    ({"steps": "ten"}, "steps: cannot read 'ten' as an integer"),
    ({"width": "2.5"}, "width: cannot read '2.5' as an integer"),
    ({"lr": "0"}, "lr: must be > 0, got '0'"),
    ({"batchnorm": "maybe"}, "batchnorm: cannot read 'maybe' as true or false"),
    ({"random_labels": "-1"}, "random_labels: must be >= 0"),
    ({"preset": "no/such.yaml"}, "preset: cannot read 'no/such.yaml': No such file or directory"),
    ({"lc_radius": "0.1,-1"}, "lc_radius: must be one or more, each > 0"),
    ({"adv_eps": "1.5"}, "adv_eps: must be empty, or each in [0, 1]"),
    ({"batch_size": "2000"}, "batch_size: must be <= train_size (1000)"),
    ({"colour": "red"}, "unknown setting(s) colour; valid: preset, dataset,"),
])
def test_bad_values_raise_one_line_naming_the_setting(values, message):
    with pytest.raises(SettingsError) as info:
        Settings.from_strings(values)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_lists_of_numbers_are_taken_as_tuples():
    # Settings written back from config.json (or by hand) carry JSON lists
    s = Settings(lc_radius=[0.005, 0.05], adv_eps=[0.1])
    assert s.lc_radius == (0.005, 0.05) and s.adv_eps == (0.1,)
    assert Settings.from_strings(s.to_params()) == s
    with pytest.raises(SettingsError, match=r"lc_radius: expected a list of numbers, e\.g\. "):
        Settings(lc_radius=0.05)


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().width = 3


def test_the_docs_settings_table_is_current():
    assert settings_module.settings_table() in (REPO / "docs" / "settings.md").read_text()


def test_readme_commands_are_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    test_command = "pip install -e '.[test]' && pytest"
    assert test_command in readme.split("\n## ")[0] and test_command in ci
    assert "pip install -e . && mlflow run . --env-manager local" in readme.split("\n## ")[0]
