"""Model families behind one name -> builder table (timm style).

A builder takes ``(settings, input_shape, num_classes)`` and returns an ``nn.Module`` whose
nonlinearities are modules (so local complexity sees every one) and whose submodules have
readable names (``hidden3.act``): those names are the LC layer names.

Example:
    net = build_model(Settings(depth=2, width=32), (1, 8, 8), 10)
    [name for name, m in net.named_modules() if isinstance(m, nn.ReLU)]
    # -> ['hidden1.act', 'hidden2.act']
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable

import torch
from torch import nn

from ..settings import Settings, SettingsError

__all__ = ["ACTIVATIONS", "MODELS", "TRANSFORMER_INITS", "build_model", "init_transformer",
           "scale_parameters"]

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


class Normalize(nn.Module):
    """(x - mean) / std per channel, as the model's first module, so that attacks and LC work in
    [0, 1] pixel space. Affine, so LC's fast path sees through it."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _unit(layer: nn.Module, features: int, settings: Settings, norm: type[nn.Module]) -> nn.Module:
    """layer -> [batch norm] -> activation, with readable names (``linear``/``conv``, ``bn``,
    ``act``)."""
    parts: "OrderedDict[str, nn.Module]" = OrderedDict(
        [("linear" if isinstance(layer, nn.Linear) else "conv", layer)])
    if settings.batchnorm:
        parts["bn"] = norm(features)
    parts["act"] = activation(settings.activation)
    return nn.Sequential(parts)


def build_mlp(settings: Settings, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """MLP: flatten -> ``depth`` x (Linear(width) -> [BatchNorm1d] -> activation) -> Linear.

    ``depth`` counts hidden layers (nonlinearities). The paper's "4-layer MLP of width 200" is
    4 Linear layers in the authors' code (``train_mlp_mnist.py``: 3 hidden + the output), so the
    presets use depth=3, width=200. PyTorch's default (Kaiming-uniform) initialisation.
    """
    layers: "OrderedDict[str, nn.Module]" = OrderedDict(flatten=nn.Flatten())
    fan_in = math.prod(input_shape)
    for i in range(1, settings.depth + 1):
        layers[f"hidden{i}"] = _unit(nn.Linear(fan_in, settings.width), settings.width, settings,
                                     nn.BatchNorm1d)
        fan_in = settings.width
    layers["head"] = nn.Linear(fan_in, num_classes)
    return nn.Sequential(layers)


def build_cnn(settings: Settings, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """CNN: ``depth`` 3x3 conv layers (padding 1) with ``width`` channels, then 2 linear layers;
    each conv and the hidden linear layer followed by [batch norm and] the activation.

    The paper's CIFAR CNN has 5 conv + 2 linear layers with width 32 (app. B, fig. 14, 21).
    Every second conv has stride 2 (32x32 -> 16 -> 8 for depth 5); no pooling, so every
    spatial reduction is learned. Then flatten -> Linear(4 * width) -> activation -> Linear(classes).
    """
    channels, height, width = input_shape
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    for i in range(1, settings.depth + 1):
        stride = 2 if i % 2 == 0 else 1
        layers[f"conv{i}"] = _unit(nn.Conv2d(channels, settings.width, 3, stride=stride,
                                             padding=1), settings.width, settings, nn.BatchNorm2d)
        channels = settings.width
        height, width = (height - 1) // stride + 1, (width - 1) // stride + 1
    layers["flatten"] = nn.Flatten()
    layers["fc"] = _unit(nn.Linear(channels * height * width, 4 * settings.width),
                         4 * settings.width, settings, nn.BatchNorm1d)
    layers["head"] = nn.Linear(4 * settings.width, num_classes)
    return nn.Sequential(layers)


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016): [BN] -> act -> conv3x3 -> [BN] -> act ->
    conv3x3, plus the shortcut (identity, or a 1x1 conv of the pre-activated input when the
    shape changes). Two activation modules, so LC counts two layers per block."""

    def __init__(self, settings: Settings, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        norm = nn.BatchNorm2d if settings.batchnorm else (lambda c: nn.Identity())
        self.bn1, self.act1 = norm(in_ch), activation(settings.activation)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn2, self.act2 = norm(out_ch), activation(settings.activation)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.shortcut = (nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)
                         if stride != 1 or in_ch != out_ch else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.act2(self.bn2(out)))
        return out + skip


class PreActResNet18(nn.Module):
    """Pre-activation ResNet-18 for small images, base width ``width`` (the paper: 16, no batch
    norm, CIFAR). Stem conv3x3 -> 4 stages x 2 PreActBlocks (channels w, 2w, 4w, 8w; stride 2 from
    stage 2) -> [BN] -> act -> global average pool -> linear. 17 nonlinearities."""

    def __init__(self, settings: Settings, in_ch: int, num_classes: int):
        super().__init__()
        w = settings.width
        self.stem = nn.Conv2d(in_ch, w, 3, padding=1, bias=False)
        blocks, channels = [], w
        for stage, out_ch in enumerate((w, 2 * w, 4 * w, 8 * w)):
            for i in range(2):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(PreActBlock(settings, channels, out_ch, stride))
                channels = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(channels) if settings.batchnorm else nn.Identity()
        self.act = activation(settings.activation)
        self.pool, self.flatten = nn.AdaptiveAvgPool2d(1), nn.Flatten()
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn(self.blocks(self.stem(x))))
        return self.head(self.flatten(self.pool(out)))


def build_preact_resnet18(settings: Settings, input_shape: tuple[int, ...],
                          num_classes: int) -> nn.Module:
    """``PreActResNet18`` with base width ``settings.width`` (set 16 for the paper's runs)."""
    return PreActResNet18(settings, input_shape[0], num_classes)


def build_resnet18(settings: Settings, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """torchvision's standard ResNet-18 (the paper's Imagenette runs); ``batchnorm=false`` gives
    identity norms. Its ReLU module is reused within each block: LC counts 17 layers. ``width``
    is ignored (torchvision's widths 64..512)."""
    import torchvision  # noqa: PLC0415 - torchvision: image datasets and ResNet only (heavy)

    norm = nn.BatchNorm2d if settings.batchnorm else (lambda channels: nn.Identity())
    net = torchvision.models.resnet18(num_classes=num_classes, norm_layer=norm)
    if settings.activation != "relu":
        raise SettingsError("activation: resnet18 is torchvision's ReLU network; use relu")
    return net


class TokenEmbedding(nn.Module):
    """Token plus learned position embeddings: (B, T) int64 ids -> (B, T, width). Its output is
    where the transformer's input becomes continuous: LC's input space (``lc_input``).
    Both start at N(0, 1/width) (Nanda et al. 2023); ``init_transformer`` may redraw them."""

    def __init__(self, vocab: int, seq_len: int, width: int):
        super().__init__()
        self.token = nn.Embedding(vocab, width)
        nn.init.normal_(self.token.weight, std=1 / math.sqrt(width))
        self.position = nn.Parameter(torch.randn(seq_len, width) / math.sqrt(width))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.token(tokens) + self.position                       # (B, T, D)


class Attention(nn.Module):
    """Causal multi-head self-attention: ``heads`` heads of width // heads, no dropout, scores
    scaled by 1/sqrt(width // heads) (as Nanda et al.'s); ``bias``: Q/K/V and output biases."""

    def __init__(self, width: int, heads: int, bias: bool = True):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=bias)
        self.out = nn.Linear(width, width, bias=bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        q, k, v = self.qkv(h).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        mix = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, d/H)
        return self.out(mix.transpose(1, 2).reshape(b, t, d))


class TransformerBlock(nn.Module):
    """Pre-norm-free residual block: h + attn(h), then h + mlp(h); the MLP is Linear(width,
    4 width) -> activation -> Linear(4 width, width), the activation a module (``mlp.act``) so
    LC counts its 4 width x T neurons. ``biases``: ``TRANSFORMER_BIASES``."""

    def __init__(self, settings: Settings, heads: int = 4):
        super().__init__()
        w, biases = settings.width, settings.transformer_biases
        self.attn = Attention(w, heads, bias=biases == "all")
        self.mlp = nn.Sequential(OrderedDict(linear=nn.Linear(w, 4 * w, bias=biases != "none"),
                                             act=activation(settings.activation),
                                             proj=nn.Linear(4 * w, w, bias=biases != "none")))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(h)
        return h + self.mlp(h)


class Transformer(nn.Module):
    """A decoder-only transformer as in the grokking literature (Power et al. 2022; Nanda et al.
    2023): ``TokenEmbedding`` -> ``depth`` ``TransformerBlock`` s (4 causal heads, MLP 4x width,
    no LayerNorm) -> a linear read-out of the last position. (B, T) token ids -> (B, classes).
    Weights and biases as ``settings.transformer_init`` / ``transformer_biases`` say
    (``init_transformer``).

    ``lc_input = "embed"``: the tracker measures LC in embedding space, from this module's output.
    """

    lc_input = "embed"

    def __init__(self, settings: Settings, vocab: int, seq_len: int, num_classes: int):
        super().__init__()
        self.embed = TokenEmbedding(vocab, seq_len, settings.width)
        self.blocks = nn.Sequential(*(TransformerBlock(settings) for _ in range(settings.depth)))
        self.head = nn.Linear(settings.width, num_classes,
                              bias=settings.transformer_biases == "all")
        init_transformer(self, settings.transformer_init, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.embed(tokens))                             # (B, T, D)
        return self.head(h[:, -1])                                      # (B, classes)


def init_transformer(model: Transformer, scheme: str, vocab: int) -> None:
    """Redraw ``model``'s weights in place by ``scheme`` (``TRANSFORMER_INITS``), from the global
    RNG. Every bias starts at 0 except under ``pytorch`` (nn.Linear's own uniform biases).

    - ``nanda``: every weight N(0, 1/width), the read-out N(0, 1/vocab) (Nanda et al. 2023's
      ``transformers.py``: W_E, W_pos, W_Q/K/V/O, W_in, W_out by 1/sqrt(d_model), W_U by
      1/sqrt(d_vocab)). Sum of squared weights at width 128, p = 113: ~1,780.
    - ``transformerlens``: every weight, embeddings included, N(0, (0.8/sqrt(width))^2)
      (TransformerLens's ``init_weights`` for its grokking demo's config).
    - ``pytorch``: nn.Linear's default (Kaiming-uniform, std 1/sqrt(3 fan_in)); embeddings
      N(0, 1/width). This package's transformer before issue #26; ~540 at width 128.
    """
    try:
        std_of = TRANSFORMER_INITS[scheme]
    except KeyError:
        raise SettingsError(f"transformer_init: unknown value {scheme!r}; valid: "
                            + ", ".join(TRANSFORMER_INITS)) from None
    if std_of is None:
        return
    width = model.embed.token.embedding_dim
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0.0, std_of(width, vocab, name.startswith("head.")))


# name -> (width, vocab, is_read_out) -> std of every weight; None keeps PyTorch's defaults
TRANSFORMER_INITS: dict[str, Callable[[int, int, bool], float] | None] = {
    "nanda": lambda width, vocab, read_out: 1 / math.sqrt(vocab if read_out else width),
    "transformerlens": lambda width, vocab, read_out: 0.8 / math.sqrt(width),
    "pytorch": None,
}


def build_transformer(settings: Settings, input_shape: tuple[int, ...],
                      num_classes: int) -> nn.Module:
    """``Transformer`` for token sequences of ``input_shape`` (T,), vocabulary ``modulus`` + 1
    (the residues and ``=``); for modular addition (fig. 10) use activation gelu."""
    if len(input_shape) != 1:
        raise SettingsError("model: transformer needs token sequences (dataset "
                            f"modular_addition), not inputs of shape {tuple(input_shape)}")
    return Transformer(settings, settings.modulus + 1, input_shape[0], num_classes)


MODELS: dict[str, Callable[[Settings, tuple[int, ...], int], nn.Module]] = {
    "mlp": build_mlp,
    "cnn": build_cnn,
    "preact_resnet18": build_preact_resnet18,
    "resnet18": build_resnet18,
    "transformer": build_transformer,
}


def scale_parameters(model: nn.Module, factor: float) -> nn.Module:
    """Multiply every parameter by ``factor`` in place (Omnigrok's / the paper's fig. 3 init x8)."""
    if factor != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(factor)
    return model


def build_model(settings: Settings, input_shape: tuple[int, ...], num_classes: int,
                normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
                ) -> nn.Module:
    """Build ``settings.model`` for inputs of ``input_shape`` (C, H, W), scaled by ``init_scale``;
    with ``normalization`` (mean, std) a ``Normalize`` module comes first (named ``normalize``,
    the network itself ``net``).

    Initialisation draws from the global RNG: seed it first (``train`` does).
    """
    try:
        builder = MODELS[settings.model]
    except KeyError:
        raise SettingsError(f"model: unknown value {settings.model!r}; valid: "
                            + ", ".join(MODELS)) from None
    net = scale_parameters(builder(settings, tuple(input_shape), num_classes), settings.init_scale)
    if normalization is None:
        return net
    return nn.Sequential(OrderedDict(normalize=Normalize(*normalization), net=net))
