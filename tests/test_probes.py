"""The probe sets: the same seeded points whatever form the data comes in."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from grok_mlflow.settings import TrackerSettings
from grok_mlflow.tracker.probes import as_tensors, draw_probes

SETTINGS = TrackerSettings(lc_samples=30, adv_samples=20, eval_size=0, seed=3)


def data(n: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 4, 4, generator=gen), torch.arange(n) % 5    # (n, 1, 4, 4), (n,)


def test_tensors_a_dataset_and_a_dataloader_give_the_same_probes():
    train, test = data(100, 0), data(60, 1)
    probes = [draw_probes(t, v, SETTINGS, torch.device("cpu"))
              for t, v in [(train, test),
                           (TensorDataset(*train), TensorDataset(*test)),
                           (DataLoader(TensorDataset(*train), batch_size=7),
                            DataLoader(TensorDataset(*test), batch_size=7))]]
    for p in probes[1:]:
        for name in ("train", "test", "random"):
            assert torch.equal(p.lc[name], probes[0].lc[name])
        assert torch.equal(p.adv[0], probes[0].adv[0]) and torch.equal(p.adv[1], probes[0].adv[1])
        assert p.partition_index == probes[0].partition_index


def test_sizes_seeds_and_the_partition_points_of_distinct_classes():
    train, test = data(100, 0), data(60, 1)
    p = draw_probes(train, test, SETTINGS, torch.device("cpu"))
    assert {k: v.shape for k, v in p.lc.items()} == {k: (30, 1, 4, 4)
                                                    for k in ("train", "test", "random")}
    assert len(p.adv[0]) == 20 and len(p.accuracy["train"][0]) == 100      # eval_size 0: all
    assert len(set(p.partition_labels)) == 3
    assert torch.equal(p.partition_x, train[0][p.partition_index])
    # rows of the training set: each LC train point is one of them
    assert all((train[0] == row).flatten(1).all(1).any() for row in p.lc["train"])
    again = draw_probes(train, test, SETTINGS, torch.device("cpu"))
    assert torch.equal(again.lc["random"], p.lc["random"])
    other = draw_probes(train, test, TrackerSettings(lc_samples=30, adv_samples=20, seed=4),
                        torch.device("cpu"))
    assert not torch.equal(other.lc["train"], p.lc["train"])


def test_eval_size_picks_a_fixed_subset_without_moving_the_lc_points():
    train, test = data(100, 0), data(60, 1)
    full = draw_probes(train, test, SETTINGS, torch.device("cpu"))
    some = draw_probes(train, test, TrackerSettings(lc_samples=30, adv_samples=20, seed=3,
                                                    eval_size=25), torch.device("cpu"))
    assert len(some.accuracy["test"][0]) == 25
    assert torch.equal(some.lc["train"], full.lc["train"])


def test_a_large_dataset_is_read_as_a_seeded_subset_and_bad_items_are_named():
    x, y = data(50, 0)
    sub_x, sub_y = as_tensors(TensorDataset(x, y), limit=10, seed=0)
    assert sub_x.shape == (10, 1, 4, 4)
    assert torch.equal(sub_x, x[torch.randperm(50, generator=torch.Generator().manual_seed(0))
                                [:10].sort().values])
    with pytest.raises(TypeError, match="must be an \\(input, label\\) pair"):
        as_tensors(TensorDataset(x))                   # items of one tensor, no label
    with pytest.raises(ValueError, match="differ in length"):
        as_tensors((x, y[:10]))
