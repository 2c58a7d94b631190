"""Settings of a training run: one frozen dataclass, mapped 1:1 onto the MLproject's parameters.

Every field carries its documentation (unit, range) in ``metadata["help"]``; the CLI, the MLproject
file and the README's settings table are all derived from the fields, and a test checks that the
committed ``MLproject`` matches ``render_mlproject()``. Validation lives in ``Settings.__post_init__``
and raises ``SettingsError`` with one line naming the field.

Example:
    >>> s = Settings(steps=500, width=64)
    >>> dataclasses.replace(s, lr=3e-4).lr
    0.0003
    >>> Settings.from_strings({"steps": "100", "adv_eps": "0.1,0.2"}).adv_eps
    (0.1, 0.2)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

__all__ = ["Settings", "SettingsError", "TrackerSettings", "render_mlproject", "settings_table"]


class SettingsError(ValueError):
    """A setting has an invalid value; the message is one line that names the setting."""


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


def _t(name: str, help: str | None = None) -> Any:
    """A ``Settings`` field that is also a ``TrackerSettings`` one: the same default and choices
    (one source), its help from there unless the project says more."""
    f = TrackerSettings.__dataclass_fields__[name]
    return _f(f.default, help or f.metadata["help"], f.metadata["choices"])


# Valid names live here (not in the registries) so that validation needs no heavy import;
# tests check that they equal the keys of the registries in data/models/training.
DATASET_NAMES = ("digits", "mnist", "cifar10", "cifar100", "imagenette", "modular_addition")
MODEL_NAMES = ("mlp", "cnn", "preact_resnet18", "resnet18", "transformer")
ACTIVATION_NAMES = ("relu", "gelu", "leaky_relu")
LOSS_NAMES = ("cross_entropy", "mse")
OPTIMIZER_NAMES = ("adamw", "adam")
DTYPE_NAMES = ("float32", "float64")
DEVICE_NAMES = ("auto", "cpu", "cuda")
TRANSFORMER_INIT_NAMES = ("nanda", "transformerlens", "pytorch")
TRANSFORMER_BIAS_NAMES = ("mlp", "none", "all")


@dataclass(frozen=True)
class TrackerSettings:
    """What ``GrokTracker`` needs: when to measure, LC, PGD, partition, writing. Nothing in it
    names a dataset or a model; ``Settings.tracker_settings()`` gives the project's own.

    Example:
        >>> TrackerSettings(steps=5000, lc_radius=(0.01, 0.05), adv_eps=(8 / 255,))
    """

    # --- when to measure ---
    steps: int = _f(20000, "last optimisation step of the schedule (>= 1)")
    eval_points: int = _f(60, "log-spaced steps with accuracy, loss and LC (>= 2)")
    eval_every: int = _f(0, "also measure every N steps (0 = off)")
    # --- what to measure on ---
    eval_size: int = _f(0, "samples per split that accuracy and loss are measured on, a fixed "
                        "seeded subset (>= 0; 0 = the whole split, or 2,000 of a Dataset)")
    loss: str = _f("cross_entropy", "loss reported as loss/*: cross_entropy or mse on one-hot "
                   "targets", LOSS_NAMES)
    seed: int = _f(0, "seed of the probe sets, LC directions and PGD starts (>= 0)")
    # --- local complexity ---
    lc_radius: tuple[float, ...] = _f((0.05,), "cross-polytope radius r in input units; "
                                      "comma-separated for several (> 0)")
    lc_directions: int = _f(0, "cross-polytope dimension P (1..input dim; 0 = min(25, input "
                            "dim), the paper's 25 wherever the input has that many dimensions)")
    lc_samples: int = _f(500, "points per LC set: train, test, random (>= 1)")
    lc_input: str = _f("", "module whose output is LC's input space, for models of tokens (the "
                       "embedding, e.g. embed); empty = the model's input, or the model's own "
                       "lc_input attribute (the transformer's is embed)")
    # --- adversarial robustness ---
    adv_eps: tuple[float, ...] = _f((), "l-inf PGD budgets for inputs in [0, 1]; empty = 0.05, "
                                    "0.1, 0.2 x the input range")
    adv_steps: int = _f(10, "PGD steps (>= 1)")
    adv_samples: int = _f(1000, "fixed test subset for PGD (>= 1)")
    adv_points: int = _f(20, "log-spaced steps with PGD, a subset of the eval steps (0 = off)")
    # --- neighbourhood deformation ---
    deform_points: int = _f(0, "log-spaced steps with the deformation of LC's neighbourhoods "
                            "(deform/*), a subset of the eval steps (0 = off)")
    # --- partition slice ---
    partition_every: int = _f(10, "partition snapshot (PNG, GIF frame, partition/* metrics) at "
                                  "every N-th eval step and the last (0 = off)")
    partition_resolution: int = _f(512, "pixels per side of the partition slice (16..4096)")
    # --- writing ---
    checkpoint_every_s: float = _f(30.0, "write buffered metrics and a checkpoint at the first "
                                   "measured step after this many seconds (> 0)")
    tracking_retry_s: float = _f(300.0, "at the end, how long to retry an unreachable tracking "
                                 "store before saving the metrics to a file (>= 0)")

    def __post_init__(self) -> None:
        _check_types(self)
        for name in ("steps", "lc_samples", "adv_steps", "adv_samples"):
            _require(self, name, getattr(self, name) >= 1, ">= 1")
        for name in ("seed", "eval_every", "adv_points", "partition_every", "eval_size",
                     "deform_points", "lc_directions"):
            _require(self, name, getattr(self, name) >= 0, ">= 0")
        _require(self, "eval_points", self.eval_points >= 2, ">= 2")
        _require(self, "partition_resolution", 16 <= self.partition_resolution <= 4096,
                 "in [16, 4096]")
        _require(self, "checkpoint_every_s", self.checkpoint_every_s > 0, "> 0")
        _require(self, "tracking_retry_s", self.tracking_retry_s >= 0, ">= 0")
        _require(self, "lc_radius", len(self.lc_radius) >= 1 and min(self.lc_radius) > 0,
                 "one or more radii, each > 0")
        _require(self, "adv_eps", all(0 <= e <= 1 for e in self.adv_eps), "each in [0, 1]")


@dataclass(frozen=True)
class Settings:
    """Everything that defines a run. Field order is the MLproject's parameter order."""

    preset: str = _f("", "YAML file of settings (projects/*.yaml); a setting left at its default "
                         "takes the preset's value, any other value overrides it")
    # --- data ---
    dataset: str = _f("digits", "dataset name; digits is embedded (sklearn, 8x8, offline)",
                      DATASET_NAMES)
    data_root: str = _f("data", "directory where downloadable datasets are read/stored")
    train_size: int = _f(1000, "training samples, a seeded subset (>= 1, <= the dataset's; "
                         "modular_addition uses train_fraction)")
    random_labels: float = _f(0.0, "training labels replaced by seeded random ones: a count "
                              "(>= 1) or a fraction (< 1) of train_size (>= 0)")
    modulus: int = _f(113, "modular_addition: the modulus p; inputs a, b, = with a, b < p, "
                      "label (a + b) mod p (>= 2)")
    train_fraction: float = _f(0.3, "modular_addition: fraction of the p^2 pairs trained on, a "
                               "seeded split; the rest is the test set (0 < f < 1)")
    image_size: int = _f(0, "side in pixels that images are resized to (imagenette; 0 = 160)")
    download: bool = _f(True, "download a missing dataset (needs internet) into data_root")
    eval_size: int = _t("eval_size", "images per split that accuracy and loss are measured on, "
                        "a fixed seeded subset (>= 0; 0 = the whole split; imagenette decodes this "
                        "many once, 0 = 2000)")
    data_workers: int = _f(-1, "DataLoader processes decoding a streamed dataset (imagenette) "
                           "(-1 = one per CPU core, at most 8; 0 = decode in the training process)")
    # --- model ---
    model: str = _f("mlp", "architecture name", MODEL_NAMES)
    depth: int = _f(4, "hidden layers of the mlp, conv layers of the cnn, blocks of the "
                    "transformer (>= 1)")
    width: int = _f(200, "units per hidden layer (mlp), channels per conv layer (cnn), model "
                    "dimension of the transformer (>= 1; transformer: a multiple of 4 heads)")
    activation: str = _f("relu", "nonlinearity", ACTIVATION_NAMES)
    init_scale: float = _f(1.0, "multiplies every initial parameter (> 0; 8 = paper fig. 3)")
    batchnorm: bool = _f(False, "batch norm before every nonlinearity (paper fig. 14)")
    transformer_init: str = _f("nanda", "transformer weights: nanda = N(0, 1/width) for every "
                               "weight and N(0, 1/vocab) for the read-out (Nanda et al. 2023); "
                               "transformerlens = N(0, (0.8/sqrt(width))^2) for all; pytorch = "
                               "nn.Linear's default (uniform, std 1/sqrt(3 fan_in))",
                               TRANSFORMER_INIT_NAMES)
    transformer_biases: str = _f("mlp", "which transformer layers have biases (zero at init, "
                                 "except pytorch init): mlp (Nanda et al.), none, or all (also "
                                 "Q/K/V, attention output and read-out)", TRANSFORMER_BIAS_NAMES)
    # --- optimisation ---
    optimizer: str = _f("adamw", "adamw (decoupled weight decay: the authors' code for the paper) "
                        "or adam (L2 added to the gradient; not the paper's)", OPTIMIZER_NAMES)
    lr: float = _f(1e-3, "learning rate (> 0)")
    weight_decay: float = _f(0.01, "weight decay (>= 0)")
    warmup_steps: int = _f(0, "linear learning-rate warm-up: lr x min(step / N, 1) (>= 0; 0 = "
                           "off; Nanda et al.: 10)")
    adam_beta1: float = _f(0.9, "Adam(W)'s beta1 (0 <= b < 1)")
    adam_beta2: float = _f(0.999, "Adam(W)'s beta2 (0 <= b < 1; the grokking recipe: 0.98)")
    batch_size: int = _f(200, "minibatch size (<= train_size; 0 = full batch: the whole "
                         "training set every step)")
    steps: int = _t("steps", "optimisation steps (>= 1)")
    loss: str = _t("loss", "cross_entropy, or mse on one-hot targets (Omnigrok)")
    loss_float64: bool = _f(False, "the training loss computed in float64 from the logits (as "
                            "the grokking literature's log-softmax: no float32 round-off of "
                            "losses near 0)")
    seed: int = _t("seed", "seed of data split, init, batches and measures (>= 0)")
    device: str = _f("auto", "auto (cuda if available), cpu or cuda", DEVICE_NAMES)
    dtype: str = _f("float32", "floating-point type of the model, the data and every measure "
                    "(float64: as the authors' MNIST MLP)", DTYPE_NAMES)
    # --- measurement schedule ---
    eval_points: int = _t("eval_points")
    eval_every: int = _t("eval_every")
    checkpoint_every_s: float = _t("checkpoint_every_s")
    tracking_retry_s: float = _t("tracking_retry_s")
    log_model: bool = _f(True, "log the trained model with mlflow.pytorch at the end (pt2, "
                         "~5 s and the model's size per run; false for large sweeps)")
    # --- local complexity ---
    lc_radius: tuple[float, ...] = _t("lc_radius")
    lc_directions: int = _t("lc_directions")
    lc_samples: int = _t("lc_samples", "points per LC set: train, test, random (>= 1; at most "
                         "the set; paper: 1000 for MNIST)")
    lc_input: str = _t("lc_input")
    # --- adversarial robustness ---
    adv_eps: tuple[float, ...] = _t("adv_eps", "l-inf PGD budgets in pixel units [0, 1], "
                                    "comma-separated; empty = dataset default")
    adv_steps: int = _t("adv_steps")
    adv_samples: int = _t("adv_samples", "fixed test subset for PGD (>= 1; at most the test set)")
    adv_points: int = _t("adv_points")
    deform_points: int = _t("deform_points")
    # --- input-space partition on a plane through three training points (paper figs. 1, 3)
    partition_every: int = _t("partition_every")
    partition_resolution: int = _t("partition_resolution")

    def __post_init__(self) -> None:
        _check_types(self)
        for name in ("train_size", "depth", "width"):
            _require(self, name, getattr(self, name) >= 1, ">= 1")
        _require(self, "batch_size", self.batch_size >= 0, ">= 0 (0 = full batch)")
        _require(self, "modulus", self.modulus >= 2, ">= 2")
        _require(self, "train_fraction", 0 < self.train_fraction < 1, "in (0, 1)")
        for name in ("adam_beta1", "adam_beta2"):
            _require(self, name, 0 <= getattr(self, name) < 1, "in [0, 1)")
        if self.model == "transformer":
            _require(self, "width", self.width % 4 == 0, "a multiple of 4 (the transformer's "
                     "heads)")
            _require(self, "batchnorm", not self.batchnorm, "false for the transformer (no "
                     "normalisation layers)")
        else:
            for name in ("transformer_init", "transformer_biases"):
                default = Settings.__dataclass_fields__[name].default
                _require(self, name, getattr(self, name) == default,
                         f"left at {default!r}: it is a transformer setting")
        _require(self, "warmup_steps", self.warmup_steps >= 0, ">= 0")
        for name in ("image_size", "random_labels"):
            _require(self, name, getattr(self, name) >= 0, ">= 0")
        _require(self, "data_workers", self.data_workers >= -1, ">= -1")
        for name in ("lr", "init_scale"):
            _require(self, name, getattr(self, name) > 0, "> 0")
        _require(self, "weight_decay", self.weight_decay >= 0, ">= 0")
        if self.dataset != "modular_addition":   # its training set: train_fraction x p^2
            _require(self, "batch_size", self.batch_size <= self.train_size,
                     f"<= train_size ({self.train_size})")
        self.tracker_settings()   # the measurement settings' own checks

    def tracker_settings(self, default_adv_eps: tuple[float, ...] = ()) -> "TrackerSettings":
        """What the tracker needs of these settings (``adv_eps`` empty: ``default_adv_eps``)."""
        values = {f.name: getattr(self, f.name) for f in fields(TrackerSettings)}
        values["adv_eps"] = self.adv_eps or tuple(default_adv_eps)
        return TrackerSettings(**values)

    @classmethod
    def from_strings(cls, values: Mapping[str, str], base: "Settings | None" = None) -> "Settings":
        """Settings from string values (CLI, MLproject ``-P``), over ``base`` (default: defaults).

        Unknown names raise ``SettingsError`` listing the valid ones.
        """
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise SettingsError(f"unknown setting(s) {', '.join(unknown)}; valid: "
                                + ", ".join(known))
        parsed = {name: _parse(known[name], text) for name, text in values.items()}
        base = base or cls()
        preset = parsed.get("preset") or base.preset
        if not preset:
            return dataclasses.replace(base, **parsed)
        # A preset: values left at the dataclass default (as `mlflow run` passes every
        # parameter) do not override it; everything else does.
        defaults = cls()
        explicit = {k: v for k, v in parsed.items() if v != getattr(defaults, k)}
        return dataclasses.replace(load_preset(preset, base), **explicit)

    def to_params(self) -> dict[str, str]:
        """Every setting as a string, the way MLflow stores params (and ``from_strings`` reads)."""
        return {f.name: format_value(getattr(self, f.name)) for f in fields(self)}


def _check_types(obj: Any) -> None:
    """Each field of a settings dataclass has its annotated type (numbers coerced to float and
    lists of numbers to tuples of floats) and, where it lists them, one of its choices."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        kind = _base_type(f, type(obj))
        if kind is tuple:
            if not isinstance(value, tuple) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                raise SettingsError(f"{f.name}: expected a list of numbers, got {value!r}")
            object.__setattr__(obj, f.name, tuple(float(v) for v in value))
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SettingsError(f"{f.name}: expected a number, got {value!r}")
            if not math.isfinite(value):
                raise SettingsError(f"{f.name}: expected a finite number, got {value!r}")
            object.__setattr__(obj, f.name, float(value))
        elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise SettingsError(f"{f.name}: expected an integer, got {value!r}")
        elif kind is bool and not isinstance(value, bool):
            raise SettingsError(f"{f.name}: expected true or false, got {value!r}")
        elif kind is str and not isinstance(value, str):
            raise SettingsError(f"{f.name}: expected a string, got {value!r}")
        choices = f.metadata["choices"]
        if choices and value not in choices:
            raise SettingsError(f"{f.name}: unknown value {value!r}; valid: " + ", ".join(choices))


def read_yaml(path: str, what: str) -> Any:
    """The parsed YAML file at ``path``; unreadable or invalid gives ``SettingsError`` (``what``:
    the setting or option the file was given for)."""
    import yaml

    try:
        with open(path) as handle:
            return yaml.safe_load(handle)
    except OSError as err:
        raise SettingsError(f"{what}: cannot read {path!r}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SettingsError(f"{what}: {path!r} is not valid YAML{where}: {problem}") from None


def apply_values(base: Settings, values: Mapping[str, Any]) -> Settings:
    """``base`` with values from YAML: typed values as they are (lists become tuples), strings
    parsed like command-line values. Unknown names or bad values raise ``SettingsError``."""
    known = {f.name: f for f in fields(Settings)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(unknown)}; valid: "
                            + ", ".join(known))
    typed = {k: tuple(v) if isinstance(v, list) else _parse(known[k], v) if isinstance(v, str)
             else v for k, v in values.items()}
    return dataclasses.replace(base, **typed)


def load_preset(path: str, base: Settings | None = None) -> Settings:
    """Settings from a preset YAML file (a mapping of setting -> value) over ``base``.

    Raises ``SettingsError`` naming the file for an unreadable file, unknown names or bad values.
    """
    data = read_yaml(path, "preset")
    if not isinstance(data, dict):
        raise SettingsError(f"preset: {path!r} must be a mapping of setting: value")
    if "preset" in data:
        raise SettingsError(f"preset {path}: a preset cannot name another preset")
    try:
        return dataclasses.replace(apply_values(base or Settings(), data), preset=path)
    except SettingsError as err:
        raise SettingsError(f"preset {path}: {err}") from None


def _require(s: Any, name: str, ok: bool, rule: str) -> None:
    if not ok:
        raise SettingsError(f"{name}: must be {rule}, got {format_value(getattr(s, name))!r}")


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)     # resolving the annotations: ~1 ms, once per class


def _base_type(f: dataclasses.Field, cls: type = None) -> type:
    hint = _type_hints(cls or Settings)[f.name]
    return typing.get_origin(hint) or hint


def _parse(f: dataclasses.Field, text: str) -> Any:
    kind = _base_type(f)
    if not isinstance(text, str):
        return text  # already typed (e.g. from a YAML file); __post_init__ checks it
    try:
        if kind is tuple:
            return tuple(float(t) for t in text.replace(" ", "").split(",") if t)
        if kind is bool:
            lowered = text.strip().lower()
            if lowered not in _BOOLEANS:
                raise ValueError
            return _BOOLEANS[lowered]
        if kind is int:
            number = float(text)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if kind is float:
            return float(text)
    except ValueError:
        raise SettingsError(f"{f.name}: cannot read {text!r} as "
                            f"{_KIND_NAMES.get(kind, kind.__name__)}") from None
    return text


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, float):
        return repr(value) if value != int(value) or abs(value) >= 1e16 else f"{value:g}"
    return str(value)


_MLPROJECT_TYPES = {str: "string", int: "int", float: "float", tuple: "string", bool: "string"}
_KIND_NAMES = {tuple: "a list of numbers", bool: "true or false", int: "an integer",
               float: "a number"}


def mlproject_parameters() -> dict[str, dict[str, Any]]:
    """The ``main`` entry point's parameters: {name: {type, default}}, in field order."""
    defaults = Settings()
    return {f.name: {"type": _MLPROJECT_TYPES[_base_type(f)],
                     "default": format_value(getattr(defaults, f.name))} for f in fields(Settings)}


def render_mlproject() -> str:
    """The text of the project's ``MLproject`` file, generated from ``Settings``."""
    lines = [
        "# Generated from grok_mlflow/settings.py by `grok-mlflow mlproject > MLproject`: edit the",
        "# Settings dataclass, not this file (tests/test_settings.py checks they match).",
        "name: grok_mlflow",
        "conda_env: conda.yaml",
        "entry_points:",
        "  main:",
        "    parameters:",
    ]
    for name, spec in mlproject_parameters().items():
        default = spec["default"]
        lines.append(f"      {name}: {{type: {spec['type']}, default: \"{default}\"}}")
    # not a setting: continue that run from its checkpoint, in that run (see README "Crashes")
    lines.append('      resume: {type: string, default: ""}')
    args = " ".join(f"--{name} {{{name}}}" for name in [*mlproject_parameters(), "resume"])
    lines.append(f"    command: \"python -m grok_mlflow train {args}\"")
    lines += [
        "  # A preset with exact params in MLflow: `main` makes MLflow log every parameter at its",
        "  # default before training starts; here MLflow logs only what you pass (-P steps=...",
        "  # is appended as --steps ...), and the run logs the resolved settings itself.",
        "  preset:",
        "    parameters:",
        "      preset: {type: string}",
        "    command: \"python -m grok_mlflow train --preset {preset}\"",
        "  # A Ray Tune sweep: a parent run with one child run per trial (projects/sweeps/).",
        "  sweep:",
        "    parameters:",
        "      spec: {type: string}",
        "      ray_address: {type: string, default: \"\"}",
        "    command: \"python -m grok_mlflow sweep {spec} --ray-address {ray_address}\"",
    ]
    return "\n".join(lines) + "\n"


# The valid range of every setting, as the README's table states it. Each is enforced before any
# work starts (``Settings.__post_init__``, ``check_settings``, and, for what needs the data,
# ``train`` before its run starts); tests/test_bad_input.py tests an invalid value of every row.
VALID = {
    "preset": "empty, or a readable YAML mapping of setting: value (no nested preset)",
    "dataset": " \\| ".join(DATASET_NAMES),
    "data_root": "a directory holding the dataset in torchvision's layout (or download=true)",
    "train_size": "integer, 1 .. the dataset's maximum (digits 1796, mnist 60000, cifar 50000, imagenette 9469)",
    "random_labels": "number >= 0: a count (>= 1, <= train_size) or a fraction (< 1)",
    "modulus": "integer >= 2",
    "train_fraction": "number, 0 < f < 1",
    "image_size": "integer >= 0 (0 = dataset default)",
    "download": "true \\| false",
    "eval_size": "integer >= 0",
    "data_workers": "integer >= -1",
    "model": " \\| ".join(MODEL_NAMES),
    "depth": "integer >= 1",
    "width": "integer >= 1 (transformer: a multiple of 4)",
    "activation": " \\| ".join(ACTIVATION_NAMES),
    "init_scale": "number > 0",
    "batchnorm": "true \\| false (not for the transformer)",
    "transformer_init": " \\| ".join(TRANSFORMER_INIT_NAMES) + " (transformer only)",
    "transformer_biases": " \\| ".join(TRANSFORMER_BIAS_NAMES) + " (transformer only)",
    "optimizer": " \\| ".join(OPTIMIZER_NAMES),
    "lr": "number > 0",
    "weight_decay": "number >= 0",
    "warmup_steps": "integer >= 0",
    "adam_beta1": "number, 0 <= b < 1",
    "adam_beta2": "number, 0 <= b < 1",
    "batch_size": "integer, 0 .. train_size (0 = full batch)",
    "steps": "integer >= 1",
    "loss": " \\| ".join(LOSS_NAMES),
    "loss_float64": "true \\| false",
    "seed": "integer >= 0",
    "device": " \\| ".join(DEVICE_NAMES) + " (cuda needs a visible CUDA GPU)",
    "dtype": " \\| ".join(DTYPE_NAMES),
    "eval_points": "integer >= 2",
    "eval_every": "integer >= 0",
    "checkpoint_every_s": "number > 0 (seconds)",
    "tracking_retry_s": "number >= 0 (seconds)",
    "log_model": "true \\| false",
    "lc_radius": "one or more numbers > 0, comma-separated",
    "lc_directions": "integer, 0 .. input dimension (0 = min(25, input dimension); digits 64, mnist 784, cifar 3072; tokens: the embedded input's, 3 x width for the transformer)",
    "lc_samples": "integer >= 1",
    "lc_input": "empty, or a module name of the model (its output must be a float tensor)",
    "adv_eps": "empty, or numbers in [0, 1], comma-separated",
    "adv_steps": "integer >= 1",
    "adv_samples": "integer >= 1",
    "adv_points": "integer >= 0",
    "deform_points": "integer >= 0",
    "partition_every": "integer >= 0",
    "partition_resolution": "integer, 16 .. 4096",
}


def settings_table() -> str:
    """A Markdown table of every setting: default, valid values, meaning (for the README)."""
    rows = ["| setting | default | valid values | meaning |", "|---|---|---|---|"]
    defaults = Settings()
    for f in fields(Settings):
        rows.append(f"| `{f.name}` | `{format_value(getattr(defaults, f.name))}` | {VALID[f.name]} | "
                    f"{f.metadata['help']} |")
    return "\n".join(rows) + "\n"
