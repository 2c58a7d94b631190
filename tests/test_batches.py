"""Minibatches on the device: one run's and K stacked members' (streamed: test_data.py)."""

from __future__ import annotations

import torch

from grok_mlflow.runner.batches import StackedBatches, TensorBatches

# small and fast, every measure on: LC, PGD, partition snapshots


def test_stacked_batches_are_each_members_own_batches():
    """Members of 10, 13 and 4 samples (the last full-batch), batch size 4: every step's batch
    of every member equals its own TensorBatches', across their different epoch lengths."""
    sizes = (10, 13, 4)
    xs = [torch.rand(n, 3) for n in sizes]
    ys = [torch.arange(n) for n in sizes]
    singles = [TensorBatches(x, y, 4, seed=k) for k, (x, y) in enumerate(zip(xs, ys))]
    stacked = StackedBatches([TensorBatches(x, y, 4, seed=k)
                              for k, (x, y) in enumerate(zip(xs, ys))])
    for step in range(25):
        xb, yb = next(stacked)                                    # (3, 4, 3), (3, 4)
        for k, single in enumerate(singles):
            x, y = next(single)
            assert torch.equal(xb[k], x) and torch.equal(yb[k], y), (step, k)
    # a member's state is its TensorBatches' state: restoring it continues the same order
    restored = TensorBatches(xs[1], ys[1], 4, seed=1, done=25)
    restored.load_state_dict(stacked.member_state_dict(1))
    assert torch.equal(next(restored)[1], next(singles[1])[1])
