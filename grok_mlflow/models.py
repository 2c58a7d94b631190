"""Model families behind one name -> builder table (timm style).

A builder takes ``(settings, input_shape, num_classes)`` and returns an ``nn.Module`` whose
nonlinearities are modules (so local complexity sees every one) and whose submodules have
readable names (``hidden3.act``): those names are the LC layer names.

Example:
    >>> net = build_model(Settings(depth=2, width=32), (1, 8, 8), 10)
    >>> [name for name, m in net.named_modules() if isinstance(m, nn.ReLU)]
    ['hidden1.act', 'hidden2.act']
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import math
import torch
from torch import nn

from .settings import Settings, SettingsError

__all__ = ["ACTIVATIONS", "MODELS", "build_model", "scale_parameters"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "leaky_relu": lambda: nn.LeakyReLU(negative_slope=0.01),
}


def activation(name: str) -> nn.Module:
    """A fresh activation module; an unknown name lists the valid ones."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise SettingsError(f"activation: unknown value {name!r}; valid: "
                            + ", ".join(ACTIVATIONS)) from None


def build_mlp(settings: Settings, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """MLP: flatten -> ``depth`` x (Linear(width) -> activation) -> Linear(num_classes).

    ``depth`` counts hidden layers, so the paper's "4-layer MLP of width 200" is depth=4, width=200
    (5 linear layers, 4 nonlinearities). PyTorch's default (Kaiming-uniform) initialisation.
    """
    layers: "OrderedDict[str, nn.Module]" = OrderedDict(flatten=nn.Flatten())
    fan_in = math.prod(input_shape)
    for i in range(1, settings.depth + 1):
        layers[f"hidden{i}"] = nn.Sequential(OrderedDict(
            linear=nn.Linear(fan_in, settings.width), act=activation(settings.activation)))
        fan_in = settings.width
    layers["head"] = nn.Linear(fan_in, num_classes)
    return nn.Sequential(layers)


def build_cnn(settings: Settings, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """CNN: ``depth`` 3x3 conv layers (padding 1) with ``width`` channels, then 2 linear layers.

    The paper's CIFAR CNN has 5 conv + 2 linear layers with width 32 (app. B, fig. 14, 21).
    Every second conv has stride 2 (32x32 -> 16 -> 8 for depth 5); no pooling, so every
    spatial reduction is learned. Then flatten -> Linear(4 * width) -> activation -> Linear(classes).
    """
    channels, height, width = input_shape
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    for i in range(1, settings.depth + 1):
        stride = 2 if i % 2 == 0 else 1
        layers[f"conv{i}"] = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(channels, settings.width, 3, stride=stride, padding=1),
            act=activation(settings.activation)))
        channels = settings.width
        height, width = (height - 1) // stride + 1, (width - 1) // stride + 1
    layers["flatten"] = nn.Flatten()
    layers["fc"] = nn.Sequential(OrderedDict(
        linear=nn.Linear(channels * height * width, 4 * settings.width),
        act=activation(settings.activation)))
    layers["head"] = nn.Linear(4 * settings.width, num_classes)
    return nn.Sequential(layers)


MODELS: dict[str, Callable[[Settings, tuple[int, ...], int], nn.Module]] = {
    "mlp": build_mlp,
    "cnn": build_cnn,
}


def scale_parameters(model: nn.Module, factor: float) -> nn.Module:
    """Multiply every parameter by ``factor`` in place (Omnigrok's / the paper's fig. 3 init x8)."""
    if factor != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(factor)
    return model


def build_model(settings: Settings, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build ``settings.model`` for inputs of ``input_shape`` (C, H, W), scaled by ``init_scale``.

    Initialisation draws from the global RNG: seed it first (``train`` does).
    """
    try:
        builder = MODELS[settings.model]
    except KeyError:
        raise SettingsError(f"model: unknown value {settings.model!r}; valid: "
                            + ", ".join(MODELS)) from None
    return scale_parameters(builder(settings, tuple(input_shape), num_classes), settings.init_scale)
