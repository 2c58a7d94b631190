"""Run a model in eval mode and put every submodule's train/eval flag back afterwards."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` inside the block; each submodule's own ``training`` flag restored after.

    Restoring per submodule (not ``model.train(was_training)``) keeps a user's mixed modes, e.g. a
    frozen batch-norm layer in eval mode inside a model that is training.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
