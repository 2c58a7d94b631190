"""Deprecated path, kept for one reason: models logged by earlier versions were pickled naming
their classes ``grok_mlflow.models.<Class>``, and ``mlflow.pytorch.load_model`` looks them up
there. The classes live in ``grok_mlflow.runner.models``; import them from there."""

from __future__ import annotations

import warnings

from .runner.models import (
    Attention,
    Normalize,
    PreActBlock,
    PreActResNet18,
    TokenEmbedding,
    Transformer,
    TransformerBlock,
)

__all__ = ["Attention", "Normalize", "PreActBlock", "PreActResNet18", "TokenEmbedding",
           "Transformer", "TransformerBlock"]

warnings.warn("grok_mlflow.models is deprecated: the model classes live in "
              "grok_mlflow.runner.models (this path only loads models pickled by earlier "
              "versions)", FutureWarning, stacklevel=2)
