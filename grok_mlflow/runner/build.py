"""What a run is made of, built from its ``Settings``: its name, its device, its data and its
model at initialisation. The training loops build runs with it, and ``grok_mlflow.runner.recorded`` rebuilds
recorded ones the same way (one way to build a run).

Example:
    >>> settings = Settings(train_size=500)
    >>> device = check_settings(settings)           # SettingsError before any work
    >>> data, model = data_and_model(settings, device)
    >>> run_name_for(settings)
    'digits_mlp:train_size=500'
"""

from __future__ import annotations

import math
import os

import torch

from ..measures.network import find_module
from ..settings import Settings, SettingsError, load_preset
from .data import check_dataset, dataset_spec, load_dataset, torch_dtype
from .models import build_model

__all__ = ["check_settings", "data_and_model", "resolve_device", "run_name_for"]


# settings that say where or how a run ran, not what it is: never part of its name
_NOT_IN_NAMES = {"preset", "data_root", "download", "data_workers", "device",
                 "checkpoint_every_s", "tracking_retry_s", "log_model"}


def run_name_for(settings: Settings) -> str:
    """A run name that tells runs apart: the preset's file name (else ``dataset_model``), then
    every setting that differs from the preset (else from the defaults), e.g. ``digits_mlp``,
    ``digits_mlp:depth=2,width=16``, ``fig1_mnist_mlp:steps=20000,seed=1``."""
    base, reference = f"{settings.dataset}_{settings.model}", Settings()
    if settings.preset:
        base = os.path.splitext(os.path.basename(settings.preset))[0]
        try:
            reference = load_preset(settings.preset)
        except SettingsError:      # the file is gone (a run rebuilt elsewhere): the defaults
            pass
    mine, theirs = settings.to_params(), reference.to_params()
    changed = [f"{k}={v}" for k, v in mine.items()
               if k not in _NOT_IN_NAMES and v != theirs[k]]
    name = base + (":" + ",".join(changed) if changed else "")
    return name if len(name) <= 250 else name[:249] + "…"   # MLflow's run-name limit


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU raises SettingsError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SettingsError("device: cuda requested but no CUDA GPU is available here "
                            "(use device=auto or device=cpu)")
    return torch.device(name)


def check_settings(settings: Settings) -> torch.device:
    """Every check that needs the environment (device, dataset size), before any work starts."""
    device = resolve_device(settings.device)
    check_dataset(settings)
    return device


def data_and_model(settings: Settings, device: torch.device,
                   data_device: torch.device | None = None):
    """The run's data (on ``data_device``, default ``device``) and its model on ``device``,
    initialised from ``settings.seed``; the checks that need them loaded (model fits data,
    P <= input dimension, lc_input exists)."""
    data = load_dataset(settings, device if data_device is None else data_device)
    input_dim = math.prod(data.input_shape)
    if data.tokens != (settings.model == "transformer"):
        raise SettingsError(f"model: {settings.model} does not fit {settings.dataset} (token "
                            "data needs the transformer, and the transformer token data)")
    if not data.tokens and settings.lc_directions > input_dim:   # known once the data is loaded
        raise SettingsError(f"lc_directions: must be <= the input dimension of "
                            f"{settings.dataset} ({input_dim}), got {settings.lc_directions}")
    torch.manual_seed(settings.seed)                   # initialisation
    model = build_model(settings, data.input_shape, data.num_classes,
                        dataset_spec(settings.dataset).normalization).to(
                            device, torch_dtype(settings.dtype))
    if settings.lc_input:
        try:
            find_module(model, settings.lc_input)
        except ValueError as err:
            raise SettingsError(str(err)) from None
    return data, model
