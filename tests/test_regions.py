"""Exact local region counts and the rank correlation (paper fig. 26)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn


def test_rank_correlation_by_hand():
    """Spearman's rho: 1 - 6 sum d^2 / (n (n^2 - 1)) without ties; average ranks with them."""
    from grok_mlflow.measures.regions import rank_correlation

    assert rank_correlation(torch.tensor([1.0, 2, 3, 4]), torch.tensor([1.0, 3, 2, 4])) == \
        pytest.approx(0.8)                                  # d = 0, 1, 1, 0
    assert rank_correlation(torch.tensor([1.0, 1, 2]), torch.tensor([1.0, 2, 3])) == \
        pytest.approx(math.sqrt(3) / 2)                     # ranks 1.5, 1.5, 3 against 1, 2, 3
    a = torch.tensor([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    assert rank_correlation(a, 2 * a + 1) == pytest.approx(1.0)
    assert math.isnan(rank_correlation(a, torch.ones(8)))
    with pytest.raises(ValueError):
        rank_correlation(a, a[:3])


def test_local_region_count_of_lines_through_the_point_is_twice_their_number():
    """k ReLU hyperplanes through x in 2-D cut the square around x into exactly 2k sectors."""
    from grok_mlflow.measures.regions import local_region_count

    x = torch.tensor([[0.3, -0.2], [1.0, 2.0]], dtype=torch.float64)
    for k in (1, 3, 5):
        angles = torch.arange(k, dtype=torch.float64) * math.pi / k + 0.1
        w = torch.stack([angles.cos(), angles.sin()], dim=1)               # (k, 2)
        counts = []
        for point in x:
            net = nn.Sequential(nn.Linear(2, k), nn.ReLU(), nn.Linear(k, 2)).double()
            net[0].weight.data, net[0].bias.data = w, -(w @ point)
            counts.append(local_region_count(net, point[None], radius=0.1, resolution=96)[0])
        assert counts == [2 * k, 2 * k]
    linear = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2)).double()
    linear[0].bias.data = torch.full((3,), 100.0, dtype=torch.float64)      # no kink nearby
    assert local_region_count(linear, x, radius=0.1).tolist() == [1, 1]


def test_regions_near_and_away_count_the_kinks_that_hug_a_known_boundary():
    """A 2-D network whose decision boundary is x0 = 0 (the logit gap is 2 x0) and whose four
    ReLU kinks are the lines x0 = c, |c| < r/2, beside it: every square of half-side r centred
    on the boundary is cut by all four (5 regions, whatever its rotation); squares centred on
    the points farthest from it (x0 = +-5) by none (1 region)."""
    from grok_mlflow.measures.regions import regions_near_and_away

    r = 0.2
    c = torch.tensor([-0.3, -0.1, 0.1, 0.3], dtype=torch.float64) * r
    net = nn.Sequential(nn.Linear(2, 5), nn.ReLU(), nn.Linear(5, 2)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0]] * 5, dtype=torch.float64))
        net[0].bias.copy_(torch.cat([-c, torch.tensor([10.0], dtype=torch.float64)]))
        # unit 4 is x0 + 10 (linear on the whole domain); the kinks add the same to both logits
        net[2].weight.copy_(torch.tensor([[0.5] * 4 + [1.0], [0.5] * 4 + [-1.0]],
                                         dtype=torch.float64))
        net[2].bias.copy_(torch.tensor([-10.0, 10.0], dtype=torch.float64))
    gen = torch.Generator().manual_seed(0)
    a = torch.cat([-torch.ones(6, 1), torch.rand(6, 1, generator=gen) * 4 - 2], 1).double()
    b = torch.cat([torch.ones(6, 1), torch.rand(6, 1, generator=gen) * 4 - 2], 1).double()
    candidates = torch.cat([torch.linspace(-5, 5, 21)[:, None], torch.zeros(21, 1)], 1).double()
    found = regions_near_and_away(net, a, b, candidates, radius=r, points=4, resolution=128)
    assert found.near.tolist() == [5, 5, 5, 5] and found.away.tolist() == [1, 1, 1, 1]
    assert found.near_gap.max() < 1e-6
    assert sorted(found.away_gap.tolist()) == pytest.approx([9.0, 9.0, 10.0, 10.0])   # x0 = +-5, +-4.5
