"""Every row of the settings table (docs/settings.md), given an invalid value, is refused up front.

For each setting at least one invalid value (wrong type, out of range, unknown name, unreadable
file, missing files, CUDA without a GPU): ``grok-mlflow train`` prints exactly one line naming the
setting on stderr, exits with status 2, and no MLflow run exists afterwards (none RUNNING).
"""

from __future__ import annotations

from dataclasses import fields

import pytest
import torch
from mlflow.tracking import MlflowClient

from grok_mlflow.cli import main
from grok_mlflow.settings import VALID, Settings


def assert_no_run(tmp_path):
    """No run in the test's store. The store is created lazily: when MLflow never wrote its
    SQLite file nothing can be in it (and opening it would cost ~1 s of migrations)."""
    if (tmp_path / "mlflow.db").exists():
        client = MlflowClient()
        assert [r for e in client.search_experiments()
                for r in client.search_runs([e.experiment_id])] == []


def _missing_preset(tmp_path):
    return ["--preset", str(tmp_path / "no_such_preset.yaml")]


def _broken_preset(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("width: [1, 2\n")                  # not YAML
    return ["--preset", str(path)]


def _preset_with_unknown_name(tmp_path):
    path = tmp_path / "unknown.yaml"
    path.write_text("widht: 10\n")
    return ["--preset", str(path)]


def _mnist_not_there(tmp_path):
    return ["--dataset", "mnist", "--data_root", str(tmp_path / "empty"), "--download", "false"]


# setting -> list of (CLI arguments, or a function of tmp_path giving them)
INVALID = {
    "preset": [_missing_preset, _broken_preset, _preset_with_unknown_name],
    "dataset": [["--dataset", "svhn"]],
    "data_root": [_mnist_not_there],
    "train_size": [["--train_size", "0"], ["--train_size", "1797"], ["--train_size", "1.5"]],
    "random_labels": [["--random_labels", "-1"], ["--random_labels", "5000"],
                      ["--random_labels", "many"]],
    "modulus": [["--modulus", "1"], ["--modulus", "7.5"]],
    "train_fraction": [["--train_fraction", "0"], ["--train_fraction", "1"],
                       ["--dataset", "modular_addition", "--model", "transformer", "--modulus",
                        "3", "--train_fraction", "0.99"]],
    "image_size": [["--image_size", "-1"], ["--image_size", "big"]],
    "download": [["--download", "maybe"]],
    "eval_size": [["--eval_size", "-1"], ["--eval_size", "all"]],
    "data_workers": [["--data_workers", "-2"], ["--data_workers", "many"]],
    "model": [["--model", "vit"], ["--model", "transformer"],
              ["--dataset", "modular_addition", "--model", "mlp"]],
    "depth": [["--depth", "0"], ["--depth", "two"]],
    "width": [["--width", "0"], ["--width", "2.5"], ["--model", "transformer", "--width", "30"]],
    "activation": [["--activation", "tanh"]],
    "init_scale": [["--init_scale", "0"], ["--init_scale", "nan"]],
    "batchnorm": [["--batchnorm", "2"], ["--model", "transformer", "--batchnorm", "true"]],
    "transformer_init": [["--dataset", "modular_addition", "--model", "transformer",
                          "--transformer_init", "xavier"], ["--transformer_init", "pytorch"]],
    "transformer_biases": [["--dataset", "modular_addition", "--model", "transformer",
                            "--transformer_biases", "some"], ["--transformer_biases", "all"]],
    "optimizer": [["--optimizer", "sgd"]],
    "lr": [["--lr", "-0.1"], ["--lr", "abc"], ["--lr", "inf"]],
    "weight_decay": [["--weight_decay", "-1"]],
    "warmup_steps": [["--warmup_steps", "-1"], ["--warmup_steps", "1.5"]],
    "adam_beta1": [["--adam_beta1", "1"]],
    "adam_beta2": [["--adam_beta2", "-0.1"]],
    "batch_size": [["--batch_size", "-1"], ["--batch_size", "2000"],
                   ["--dataset", "modular_addition", "--model", "transformer", "--modulus", "7",
                    "--batch_size", "40"]],
    "steps": [["--steps", "0"], ["--steps", "1e9x"]],
    "until": [["--until", "done"]],
    "min_steps": [["--min_steps", "0"], ["--until", "settled", "--min_steps", "50"]],
    "loss": [["--loss", "hinge"]],
    "loss_float64": [["--loss_float64", "yes please"]],
    "seed": [["--seed", "-1"]],
    "device": [["--device", "tpu"]] + ([] if torch.cuda.is_available() else [["--device", "cuda"]]),
    "dtype": [["--dtype", "float16"]],
    "eval_points": [["--eval_points", "1"]],
    "eval_every": [["--eval_every", "-5"]],
    "checkpoint_every_s": [["--checkpoint_every_s", "0"]],
    "tracking_retry_s": [["--tracking_retry_s", "-1"]],
    "log_model": [["--log_model", "maybe"]],
    "lc_radius": [["--lc_radius", "0"], ["--lc_radius", "0.1,-1"], ["--lc_radius", "a,b"]],
    "lc_directions": [["--lc_directions", "-1"], ["--lc_directions", "65"]],
    "lc_samples": [["--lc_samples", "0"]],
    "lc_input": [["--lc_input", "nope"]],
    "lc_boundary": [["--lc_boundary", "perhaps"]],
    "adv_eps": [["--adv_eps", "2"], ["--adv_eps", "-0.1"]],
    "adv_steps": [["--adv_steps", "0"]],
    "adv_samples": [["--adv_samples", "0"]],
    "adv_points": [["--adv_points", "-1"]],
    "deform_points": [["--deform_points", "-2"]],
    "partition_every": [["--partition_every", "-1"]],
    "partition_resolution": [["--partition_resolution", "8"], ["--partition_resolution", "5000"]],
}
CASES = [pytest.param(name, args, id=f"{name}-{k}")
         for name, variants in INVALID.items() for k, args in enumerate(variants)]


def test_every_setting_has_a_valid_range_and_invalid_cases():
    names = [f.name for f in fields(Settings)]
    assert list(VALID) == names          # the settings table's rows, in order
    assert list(INVALID) == names


@pytest.mark.parametrize("name, args", CASES)
def test_invalid_value_is_one_line_exit_2_and_no_run(name, args, tmp_path, capsys,
                                                     tracking_uri):
    argv = args(tmp_path) if callable(args) else args
    assert main(["train", "--steps", "5", "--no-progress", *argv]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grok-mlflow: error: "), err
    assert name in lines[0], lines[0]
    assert_no_run(tmp_path)


def test_unknown_setting_name_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--widht", "10"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --widht" in capsys.readouterr().err


@pytest.mark.parametrize("content", [None, "grid: [1, 2]\n", "grid:\n  widht: [1, 2]\n"])
def test_a_bad_sweep_spec_is_one_line_exit_2_and_no_run(content, tmp_path, capsys, tracking_uri):
    path = tmp_path / "spec.yaml"
    if content is not None:
        path.write_text(content)
    assert main(["sweep", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grok-mlflow: error: spec"), lines
    assert_no_run(tmp_path)
