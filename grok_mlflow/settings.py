"""Settings of a training run: one frozen dataclass, mapped 1:1 onto the MLproject's parameters.

Every field carries its documentation in ``metadata["help"]``, its choices in
``metadata["choices"]`` and its valid range in ``metadata["valid"]`` (a ``Valid``: written once,
enforced by ``__post_init__``, stated by the CLI's help, the settings table (docs/settings.md) and every
error); the CLI, the MLproject file and the settings table are all derived from the fields, and a
test checks that the committed ``MLproject`` matches ``render_mlproject()``. A bad value raises
``SettingsError`` with one line naming the field. Rules that relate two settings (batch size and
train size, the transformer's own settings) are the few lines of ``__post_init__``; what only the
data can tell (a dataset's size, the input dimension) is checked where the data is.

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
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

__all__ = ["Settings", "SettingsError", "TrackerSettings", "render_mlproject", "settings_table"]


class SettingsError(ValueError):
    """A setting has an invalid value; the message is one line that names the setting."""


@dataclass(frozen=True)
class Valid:
    """A setting's valid values, written once: ``check`` enforces them (before any work starts),
    ``text`` says them (the error, the CLI's help, docs/settings.md) and ``note`` adds what is
    checked where the data or the model is known (shown in the table only).

    Example:
        >>> at_least(1).text, at_least(1).check(0)
        ('>= 1', False)
    """

    text: str = ""
    check: Callable[[Any], bool] | None = None
    note: str = ""

    def noted(self, note: str) -> "Valid":
        return dataclasses.replace(self, note=note)


def at_least(low: float) -> Valid:
    return Valid(f">= {low:g}", lambda v: v >= low)


def above(low: float) -> Valid:
    return Valid(f"> {low:g}", lambda v: v > low)


def within(low: float, high: float, closed_high: bool = True, closed_low: bool = True) -> Valid:
    """A number in [low, high] (``closed_*`` False: that end excluded)."""
    text = f"in {'[' if closed_low else '('}{low:g}, {high:g}{']' if closed_high else ')'}"
    return Valid(text, lambda v: (v >= low if closed_low else v > low)
                 and (v <= high if closed_high else v < high))


def each(valid: Valid, at_least_one: bool) -> Valid:
    """For a list of numbers: every one ``valid`` (``at_least_one``: and not empty)."""
    text = ("one or more, each " if at_least_one else "empty, or each ") + valid.text
    check = valid.check
    assert check is not None, "each() needs a Valid that checks"
    return Valid(text, lambda v: (len(v) >= 1 or not at_least_one)
                 and all(check(x) for x in v))


def setting(default: Any, help: str, choices: tuple[str, ...] | None = None,
            valid: Valid | None = None) -> Any:
    """A settings field: its default, help, choices and valid range (``Valid``), one source
    for the check, the CLI's help, the MLproject file and docs/settings.md."""
    return field(default=default, metadata={"help": help, "choices": choices,
                                            "valid": valid or Valid()})


def tracker_setting(name: str, help: str | None = None, note: str | None = None) -> Any:
    """A ``Settings`` field that is also a ``TrackerSettings`` one: the same default, choices and
    range (one source), its help from there unless the project says more."""
    f = TrackerSettings.__dataclass_fields__[name]
    valid = f.metadata["valid"] if note is None else f.metadata["valid"].noted(note)
    return setting(f.default, help or f.metadata["help"], f.metadata["choices"], valid)


# Valid names live here (not in the registries) so that validation needs no heavy import;
# tests check that they equal the keys of the registries in data/models/training.
DATASET_NAMES = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "imagenette",
                 "imagenet", "modular_addition")
MODEL_NAMES = ("mlp", "cnn", "preact_resnet18", "resnet18", "transformer")
ACTIVATION_NAMES = ("relu", "gelu", "leaky_relu")
LOSS_NAMES = ("cross_entropy", "mse")
OPTIMIZER_NAMES = ("adamw", "adam")
DTYPE_NAMES = ("float32", "float64")
DEVICE_NAMES = ("auto", "cpu", "cuda")
TRANSFORMER_INIT_NAMES = ("nanda", "transformerlens", "pytorch")
TRANSFORMER_BIAS_NAMES = ("mlp", "none", "all")
UNTIL_NAMES = ("", "settled")


@dataclass(frozen=True)
class TrackerSettings:
    """What ``GrokTracker`` needs: when to measure, LC, PGD, partition, writing. Nothing in it
    names a dataset or a model; ``Settings.tracker_settings()`` gives the project's own.

    Example:
        TrackerSettings(steps=5000, lc_radius=(0.01, 0.05), adv_eps=(8 / 255,))
    """

    # --- when to measure ---
    steps: int = setting(20000, "last optimisation step of the schedule", valid=at_least(1))
    eval_points: int = setting(60, "log-spaced steps with accuracy, loss and LC", valid=at_least(2))
    eval_every: int = setting(0, "also measure every N steps (0 = off)", valid=at_least(0))
    until: str = setting("", "'' trains to steps; settled stops once the run's phases are settled "
                         "(grok_mlflow.findings.phases.settled: after the second descent, or after "
                         "test accuracy grokked where LC showed no ascent after interpolation; train "
                         "LC, test and adversarial accuracy flat within their noise over the last tenth of "
                         "the log-step axis), with steps as the cap", UNTIL_NAMES,
                         Valid(note="settled: steps >= min_steps"))
    min_steps: int = setting(100, "until: settled never stops before this step", valid=at_least(1))
    # --- what to measure on ---
    eval_size: int = setting(0, "samples per split that accuracy and loss are measured on, a fixed "
                             "seeded subset (0 = the whole split, or 2,000 of a Dataset)",
                             valid=at_least(0))
    loss: str = setting("cross_entropy", "loss reported as loss/*: cross_entropy or mse on one-hot "
                        "targets", LOSS_NAMES)
    seed: int = setting(0, "seed of the probe sets, LC directions and PGD starts", valid=at_least(0))
    # --- local complexity ---
    lc_radius: tuple[float, ...] = setting((0.05,), "cross-polytope radius r in input units; "
                                           "comma-separated for several", valid=each(above(0), True))
    lc_directions: int = setting(0, "cross-polytope dimension P (0 = min(25, input dim), the paper's "
                                 "25 wherever the input has that many dimensions)",
                                 valid=at_least(0).noted(
                                     "at most the input dimension: digits 64, mnist 784, cifar "
                                     "3072; tokens: the embedded input's, 3 x width for the "
                                     "transformer"))
    lc_samples: int = setting(500, "points per LC set: train, test, random", valid=at_least(1))
    lc_input: str = setting("", "module whose output is LC's input space, for models of tokens (the "
                            "embedding, e.g. embed); empty = the model's input, or the model's own "
                            "lc_input attribute (the transformer's is embed)",
                            valid=Valid(note="empty, or a module name of the model (its output must "
                                             "be a float tensor)"))
    lc_boundary: bool = setting(True, "also LC around points on the decision boundary (lc/boundary: "
                                "bisected between pairs of test points of different predicted "
                                "classes; boundary/margin, boundary/pairs); classification only")
    # --- adversarial robustness ---
    adv_eps: tuple[float, ...] = setting((), "l-inf PGD budgets for inputs in [0, 1]; empty = 0.05, "
                                         "0.1, 0.2 x the input range",
                                         valid=each(within(0, 1), False))
    adv_steps: int = setting(10, "PGD steps per attack", valid=at_least(1))
    adv_samples: int = setting(1000, "fixed test subset for PGD", valid=at_least(1))
    adv_points: int = setting(20, "log-spaced steps with PGD, a subset of the eval steps (0 = off)",
                              valid=at_least(0))
    # --- neighbourhood deformation ---
    deform_points: int = setting(0, "log-spaced steps with the deformation of LC's neighbourhoods "
                                 "(deform/*), a subset of the eval steps (0 = off)", valid=at_least(0))
    # --- partition slice ---
    partition_every: int = setting(10, "partition snapshot (PNG, GIF frame, partition/* metrics) at "
                                       "every N-th eval step and the last (0 = off)", valid=at_least(0))
    partition_resolution: int = setting(0, "pixels per side of the partition slice (0 = sized "
                                        "to the model: at most 512, a snapshot's forward passes "
                                        "~4 s as measured at the start)",
                                        valid=Valid("0 or in [16, 4096]",
                                                    lambda v: v == 0 or 16 <= v <= 4096))
    # --- writing ---
    checkpoint_every_s: float = setting(30.0, "write buffered metrics and a checkpoint at the first "
                                        "measured step after this many seconds", valid=above(0))
    tracking_retry_s: float = setting(300.0, "at the end, how long to retry an unreachable tracking "
                                      "store (seconds) before saving the metrics to a file",
                                      valid=at_least(0))

    def __post_init__(self) -> None:
        _check_types(self)
        _check_ranges(self)
        if self.until == "settled":
            _require(self, "steps", self.steps >= self.min_steps,
                     f">= min_steps ({self.min_steps}) with until: settled")


@dataclass(frozen=True)
class Settings:
    """Everything that defines a run. Field order is the MLproject's parameter order."""

    preset: str = setting("", "YAML file of settings (projects/*.yaml); a setting left at its default "
                              "takes the preset's value, any other value overrides it",
                          valid=Valid(note="empty, or a readable YAML mapping of setting: value (no "
                                           "nested preset)"))
    # --- data ---
    dataset: str = setting("digits", "dataset name; digits is embedded (sklearn, 8x8, offline)",
                           DATASET_NAMES)
    data_root: str = setting("data", "directory where downloadable datasets are read/stored",
                             valid=Valid(note="a directory holding the dataset in torchvision's "
                                              "layout (or download=true)"))
    train_size: int = setting(1000, "training samples, a seeded subset (modular_addition uses "
                              "train_fraction)", valid=at_least(1).noted(
                                  "at most the dataset's: digits 1796, mnist 60000, cifar 50000, "
                                  "imagenette 9469, imagenet 1281167"))
    random_labels: float = setting(0.0, "training labels replaced by seeded random ones: a "
                                   "fraction of train_size (1: every label) or a count (> 1)",
                                   valid=at_least(0).noted("a count at most train_size"))
    modulus: int = setting(113, "modular_addition: the modulus p; inputs a, b, = with a, b < p, "
                           "label (a + b) mod p", valid=at_least(2))
    train_fraction: float = setting(0.3, "modular_addition: fraction of the p^2 pairs trained on, a "
                                    "seeded split; the rest is the test set",
                                    valid=within(0, 1, closed_high=False, closed_low=False))
    image_size: int = setting(0, "side in pixels that images are resized to (imagenette 0 = 160, "
                              "imagenet 0 = 224)",
                              valid=at_least(0))
    download: bool = setting(True, "download a missing dataset (needs internet) into data_root")
    eval_size: int = tracker_setting("eval_size", "images per split that accuracy and loss are measured on, "
                                     "a fixed seeded subset (0 = the whole split; imagenette decodes this "
                                     "many once, 0 = 2000)")
    data_workers: int = setting(-1, "DataLoader processes decoding a streamed dataset (imagenette) "
                                "(-1 = one per CPU core, at most 8; 0 = decode in the training process)",
                                valid=at_least(-1))
    # --- model ---
    model: str = setting("mlp", "architecture name", MODEL_NAMES)
    depth: int = setting(4, "hidden layers of the mlp, conv layers of the cnn, blocks of the "
                         "transformer", valid=at_least(1))
    width: int = setting(200, "units per hidden layer (mlp), channels per conv layer (cnn), model "
                         "dimension of the transformer",
                         valid=at_least(1).noted("transformer: a multiple of 4, its heads"))
    activation: str = setting("relu", "nonlinearity", ACTIVATION_NAMES)
    init_scale: float = setting(1.0, "multiplies every initial parameter (8 = paper fig. 3)",
                                valid=above(0))
    batchnorm: bool = setting(False, "batch norm before every nonlinearity (paper fig. 14)",
                              valid=Valid(note="not for the transformer"))
    transformer_init: str = setting("nanda", "transformer weights: nanda = N(0, 1/width) for every "
                                    "weight and N(0, 1/vocab) for the read-out (Nanda et al. 2023); "
                                    "transformerlens = N(0, (0.8/sqrt(width))^2) for all; pytorch = "
                                    "nn.Linear's default (uniform, std 1/sqrt(3 fan_in))",
                                    TRANSFORMER_INIT_NAMES, Valid(note="transformer only"))
    transformer_biases: str = setting("mlp", "which transformer layers have biases (zero at init, "
                                      "except pytorch init): mlp (Nanda et al.), none, or all (also "
                                      "Q/K/V, attention output and read-out)", TRANSFORMER_BIAS_NAMES,
                                      Valid(note="transformer only"))
    # --- optimisation ---
    optimizer: str = setting("adamw", "adamw (decoupled weight decay: the authors' code for the paper) "
                             "or adam (L2 added to the gradient; not the paper's)", OPTIMIZER_NAMES)
    lr: float = setting(1e-3, "learning rate", valid=above(0))
    weight_decay: float = setting(0.01, "weight decay", valid=at_least(0))
    warmup_steps: int = setting(0, "linear learning-rate warm-up: lr x min(step / N, 1) (0 = off; "
                                "Nanda et al.: 10)", valid=at_least(0))
    adam_beta1: float = setting(0.9, "Adam(W)'s beta1", valid=within(0, 1, closed_high=False))
    adam_beta2: float = setting(0.999, "Adam(W)'s beta2 (the grokking recipe: 0.98)",
                                valid=within(0, 1, closed_high=False))
    batch_size: int = setting(200, "minibatch size (0 = full batch: the whole training set every "
                              "step)", valid=at_least(0).noted("at most train_size"))
    steps: int = tracker_setting("steps", "optimisation steps")
    until: str = tracker_setting("until")
    min_steps: int = tracker_setting("min_steps")
    loss: str = tracker_setting("loss", "cross_entropy, or mse on one-hot targets (Omnigrok)")
    loss_float64: bool = setting(False, "the training loss computed in float64 from the logits (as "
                                 "the grokking literature's log-softmax: no float32 round-off of "
                                 "losses near 0)")
    seed: int = tracker_setting("seed", "seed of data split, init, batches and measures")
    device: str = setting("auto", "auto (cuda if available), cpu or cuda", DEVICE_NAMES,
                          Valid(note="cuda needs a visible CUDA GPU"))
    dtype: str = setting("float32", "floating-point type of the model, the data and every measure "
                         "(float64: as the authors' MNIST MLP)", DTYPE_NAMES)
    # --- measurement schedule ---
    eval_points: int = tracker_setting("eval_points")
    eval_every: int = tracker_setting("eval_every")
    checkpoint_every_s: float = tracker_setting("checkpoint_every_s")
    tracking_retry_s: float = tracker_setting("tracking_retry_s")
    log_model: bool = setting(True, "log the trained model with mlflow.pytorch at the end "
                              "(pickled; the model's size per run; false for large sweeps)")
    # --- local complexity ---
    lc_radius: tuple[float, ...] = tracker_setting("lc_radius")
    lc_directions: int = tracker_setting("lc_directions")
    lc_samples: int = tracker_setting("lc_samples", "points per LC set: train, test, random (paper: 1000 "
                                      "for MNIST)", note="at most the set")
    lc_input: str = tracker_setting("lc_input")
    lc_boundary: bool = tracker_setting("lc_boundary")
    # --- adversarial robustness ---
    adv_eps: tuple[float, ...] = tracker_setting("adv_eps", "l-inf PGD budgets in pixel units [0, 1], "
                                                 "comma-separated; empty = dataset default")
    adv_steps: int = tracker_setting("adv_steps")
    adv_samples: int = tracker_setting("adv_samples", note="at most the test set")
    adv_points: int = tracker_setting("adv_points")
    deform_points: int = tracker_setting("deform_points")
    # --- input-space partition on a plane through three training points (paper figs. 1, 3)
    partition_every: int = tracker_setting("partition_every")
    partition_resolution: int = tracker_setting("partition_resolution")

    def __post_init__(self) -> None:
        _check_types(self)
        _check_ranges(self)
        # the rules that relate two settings
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
            if not isinstance(value, (tuple, list)) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                raise SettingsError(f"{f.name}: expected a list of numbers, e.g. (0.05,), "
                                    f"got {value!r}")
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
            raise SettingsError(f"{f.name}: unknown value {value!r}; valid: "
                                + ", ".join(c or "'' (empty)" for c in choices))


def read_yaml(path: str, what: str) -> Any:
    """The parsed YAML file at ``path``; unreadable or invalid gives ``SettingsError`` (``what``:
    the setting or option the file was given for)."""
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
    typed: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else _parse(known[k], v)
                             if isinstance(v, str) else v for k, v in values.items()}
    return dataclasses.replace(base, **typed)


# the project's checkout (projects/, projects/sweeps/): presets are found there from any cwd
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def find_preset(path: str) -> str:
    """Where the preset ``path`` is: as given (relative to the working directory), else
    relative to the project's checkout (``projects/fig1_mnist_mlp.yaml`` from anywhere), else a
    bare name in its ``projects/`` (``fig1_mnist_mlp``); as given when none exists (its read
    then says it cannot)."""
    given = Path(path)
    candidates = [given] + ([] if given.is_absolute() else
                            [PROJECT_ROOT / given, PROJECT_ROOT / "projects" / f"{path}.yaml"])
    return str(next((c for c in candidates if c.is_file()), given))


def load_preset(path: str, base: Settings | None = None) -> Settings:
    """Settings from a preset YAML file (a mapping of setting -> value) over ``base``; ``path``
    as ``find_preset`` finds it.

    Raises ``SettingsError`` naming the file for an unreadable file, unknown names or bad values.
    """
    found = find_preset(path)
    if not Path(found).is_file() and not (PROJECT_ROOT / "projects").is_dir():
        raise SettingsError(f"preset: cannot read {path!r}: no such file, and this install has "
                            "no projects/ folder (the presets and sweep specs ship with the "
                            "repository: install from a clone, pip install -e .)")
    data = read_yaml(found, "preset")
    if not isinstance(data, dict):
        raise SettingsError(f"preset: {path!r} must be a mapping of setting: value")
    if "preset" in data:
        raise SettingsError(f"preset {path}: a preset cannot name another preset")
    try:
        return dataclasses.replace(apply_values(base or Settings(), data), preset=path)
    except SettingsError as err:
        raise SettingsError(f"preset {path}: {err}") from None


def _check_ranges(obj: Any) -> None:
    """Every field's ``Valid`` range (its metadata), in field order."""
    for f in fields(obj):
        valid = f.metadata["valid"]
        if valid.check is not None:
            _require(obj, f.name, valid.check(getattr(obj, f.name)), valid.text)


def _require(s: Any, name: str, ok: bool, rule: str) -> None:
    if not ok:
        raise SettingsError(f"{name}: must be {rule}, got {format_value(getattr(s, name))!r}")


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)     # resolving the annotations: ~1 ms, once per class


def _base_type(f: dataclasses.Field, cls: type | None = None) -> type:
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
    # not a setting: continue that run from its checkpoint, in that run (docs/datasets.md,
    # "Crashes and resume")
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
        "      resume: {type: string, default: \"\"}   # latest: continue an interrupted sweep",
        "    command: \"python -m grok_mlflow sweep {spec} --ray-address {ray_address} "
        "--resume={resume}\"",
    ]
    return "\n".join(lines) + "\n"


def valid_text(f: dataclasses.Field, cls: type | None = None) -> str:
    """A field's valid values in words, from its type, choices and ``Valid`` (docs/settings.md's
    table and the CLI's help)."""
    kind, valid = _base_type(f, cls), f.metadata["valid"]
    if f.metadata["choices"]:
        words = " \\| ".join(c or "'' (empty)" for c in f.metadata["choices"])
    elif kind is bool:
        words = "true \\| false"
    elif kind is str:
        words = ""                       # what a string may be: its note says
    else:
        words = {int: "integer", float: "number", tuple: "numbers, comma-separated:"}[kind]
    text = f"{words} {valid.text}".strip()
    if valid.note:
        text = f"{text} ({valid.note})" if text else valid.note
    return text


# The valid values of every setting as docs/settings.md states them (derived: one source).
# Each is enforced before any work starts (``Settings.__post_init__``, ``check_settings``, and,
# for what needs the data, ``train`` before its run starts); tests/test_bad_input.py tests an
# invalid value of every row.
VALID = {f.name: valid_text(f) for f in fields(Settings)}


def settings_table() -> str:
    """A Markdown table of every setting: default, valid values, meaning (docs/settings.md)."""
    rows = ["| setting | default | valid values | meaning |", "|---|---|---|---|"]
    defaults = Settings()
    for f in fields(Settings):
        rows.append(f"| `{f.name}` | `{format_value(getattr(defaults, f.name))}` | {VALID[f.name]} | "
                    f"{f.metadata['help']} |")
    return "\n".join(rows) + "\n"
