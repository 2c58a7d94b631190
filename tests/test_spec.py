"""Sweep specs: the shipped ones parse, the grid's trials and stacked groups, bad specs in one
line, ``stop: settled``."""

from __future__ import annotations

import pytest

from grok_mlflow.settings import SettingsError
from grok_mlflow.sweeps.spec import load_spec, trial_name

from conftest import REPO
from conftest import write_spec as write


def test_shipped_specs_are_valid():
    specs = sorted((REPO / "projects" / "sweeps").glob("*.yaml"))
    names = {p.stem for p in specs}
    assert {"width", "depth", "weight_decay", "train_size", "batch_norm", "random_labels"} <= names
    assert any(n.startswith("digits_") for n in names)
    for path in specs:
        assert load_spec(str(path)).trials()


def test_spec_grid_is_the_full_product_in_spec_order(tmp_path):
    spec = load_spec(write(tmp_path, "base: {steps: 10}\ngrid: {width: [8, 16], seed: [0, 1, 2]}\n"))
    assert len(spec.trials()) == 6 and spec.trials()[1] == {"width": 8, "seed": 1}
    assert spec.base.steps == 10 and spec.name == "spec"
    assert trial_name({"width": 200, "depth": 4}) == "width=200,depth=4"
    assert trial_name({"lr": 0.001, "batchnorm": True}) == "lr=0.001,batchnorm=true"


def test_trials_that_keep_every_shape_are_stacked_in_groups(tmp_path):
    """width changes shapes (two groups); seed and weight decay do not; max_members cuts a
    group; ensemble: off (YAML's bare off) runs every trial alone."""
    spec = load_spec(write(tmp_path, "base: {steps: 10}\ngrid: {width: [8, 16], seed: [0, 1, 2],"
                                     " weight_decay: [0.0, 0.1]}\nmax_members: 4\n"))
    groups = [[trial_name(t) for t in g] for g in spec.stack_groups()]
    assert [len(g) for g in groups] == [3, 3, 3, 3]               # 6 per width, at most 4: 3 + 3
    assert groups[0] == ["width=8,seed=0,weight_decay=0", "width=8,seed=0,weight_decay=0.1",
                         "width=8,seed=1,weight_decay=0"]
    assert all(t.startswith("width=16") for g in groups[2:] for t in g)
    # a machine that runs N trials at once gets at least N groups: the largest are cut again
    assert [len(g) for g in spec.stack_groups(slots=4)] == [3, 3, 3, 3]
    assert [len(g) for g in spec.stack_groups(slots=7)] == [2, 2, 1, 1, 2, 2, 2]
    assert [len(g) for g in spec.stack_groups(slots=20)] == [1] * 12
    assert sum(spec.stack_groups(slots=7), []) == spec.trials()   # every trial once, in order
    one_shape = load_spec(write(tmp_path, "grid: {seed: [0, 1, 2, 3, 4, 5, 6, 7]}\n", "one.yaml"))
    assert [len(g) for g in one_shape.stack_groups(slots=2)] == [4, 4]
    off = load_spec(write(tmp_path, "grid: {seed: [0, 1]}\nensemble: off\n", "off.yaml"))
    assert off.ensemble == "off" and [len(g) for g in off.stack_groups()] == [1, 1]
    # full batch: different training-set sizes are different shapes
    full = load_spec(write(tmp_path, "base: {batch_size: 0}\ngrid: {train_size: [500, 1000],"
                                     " seed: [0, 1]}\n", "full.yaml"))
    assert [len(g) for g in full.stack_groups()] == [2, 2]


@pytest.mark.parametrize("text, message", [
    ("base: {steps: 10}\n", "needs a 'grid:' mapping"),
    ("grid: {colour: [1]}\n", "unknown setting(s) colour"),
    ("grid: {width: [8, -1]}\n", "width: must be >= 1"),
    ("grid: {width: 8}\n", "grid.width: must be a non-empty list"),
    ("grid: {width: [8]}\nworkers: 3\n", "unknown key(s) workers"),
    ("grid: {width: [8]}\nresources: {tpu: 1}\n", "resources must be"),
    ("grid: {width: [8]}\nensemble: maybe\n", "ensemble must be auto or off, got 'maybe'"),
    ("grid: {width: [8]}\nmax_members: 0\n", "max_members must be an integer >= 1"),
])
def test_bad_specs_fail_with_one_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load_spec(path)
    assert message in str(info.value) and str(info.value).startswith(f"spec {path}")


def test_stop_settled_trains_every_trial_until_settled_and_bad_stops_are_one_line(tmp_path):
    spec = load_spec(write(tmp_path, "base: {steps: 1000}\ngrid: {seed: [0, 1]}\n"
                                     "stop: {rule: settled, min_steps: 500}\n"))
    assert (spec.base.until, spec.base.min_steps) == ("settled", 500)
    assert spec.stack_groups() == [[{"seed": 0}, {"seed": 1}]]   # stacked: members leave
    for stop, message in (("asha", "stop must be settled or {rule: settled, min_steps: N}; "
                                   "got 'asha'"),
                          ("{rule: settled, min_steps: 5000}",
                           "steps: must be >= min_steps (5000) with until: settled, got '1000'")):
        with pytest.raises(SettingsError) as info:
            load_spec(write(tmp_path, f"base: {{steps: 1000}}\ngrid: {{seed: [0]}}\n"
                                      f"stop: {stop}\n", "bad.yaml"))
        assert str(info.value) == f"spec {tmp_path / 'bad.yaml'}: {message}"
