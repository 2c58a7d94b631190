"""Neighbourhood deformation (paper figs. 8, 11, 13): exact against plain shortest paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.sparse.csgraph import shortest_path
from torch import nn

from grok_mlflow.measures.complexity import sample_directions
from grok_mlflow.measures.deformation import deformation, graph_statistics, recommend_radius

from conftest import Scale


def _reference(vertices: np.ndarray) -> tuple[float, float]:
    """Average eccentricity and diameter by a plain all-pairs shortest path (Floyd-Warshall)."""
    n = len(vertices)
    p = n // 2
    dist = np.linalg.norm(vertices[:, None] - vertices[None], axis=-1)
    weights = dist.copy()
    for i in range(n):
        weights[i, (i + p) % n] = np.inf                       # antipodes are not joined
    np.fill_diagonal(weights, 0.0)
    sp = shortest_path(np.where(np.isinf(weights), 0, weights), method="FW", directed=False)
    ecc = sp.max(axis=1)
    return ecc.mean(), ecc.max()


def test_graph_statistics_equal_a_plain_all_pairs_shortest_path():
    gen = torch.Generator().manual_seed(0)
    for p, d in ((2, 3), (3, 5), (6, 4), (10, 30)):
        vertices = torch.randn(4, 2 * p, d, generator=gen, dtype=torch.float64) ** 3  # irregular
        ecc, diam = graph_statistics(vertices)
        for b in range(4):
            ref_ecc, ref_diam = _reference(vertices[b].numpy())
            assert ecc[b].item() == pytest.approx(ref_ecc, rel=1e-12)
            assert diam[b].item() == pytest.approx(ref_diam, rel=1e-12)


def test_in_the_input_space_both_are_two_sqrt_two_r():
    x = torch.rand(5, 12, dtype=torch.float64)
    net = nn.Sequential(nn.Linear(12, 7), nn.ReLU(), nn.Linear(7, 2)).double()
    d = deformation(net, x, radius=0.3, n_directions=4)
    assert torch.allclose(d.eccentricity[:, 0], torch.full((5,), 2 * math.sqrt(2) * 0.3,
                                                           dtype=torch.float64))
    assert torch.allclose(d.diameter[:, 0], d.eccentricity[:, 0])
    assert d.layer_names == ["1"] and d.eccentricity.shape == (5, 2)


def test_a_linear_network_scales_the_neighbourhood_by_its_gain(monkeypatch):
    """Layers c_l * Q_l (Q orthogonal): an affine image of the cross-polytope with every distance
    multiplied by c_1 ... c_l, so relative eccentricity and diameter are exactly that product,
    at every radius (no bending)."""
    import grok_mlflow.measures.network as network
    monkeypatch.setattr(network, "NONLINEARITIES", network.NONLINEARITIES + (Scale,))
    torch.manual_seed(0)
    gains = [2.0, 0.5, 3.0]
    layers = []
    for g in gains:
        lin = nn.Linear(8, 8).double()
        q, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))
        lin.weight.data = g * q
        layers += [lin, Scale()]
    net = nn.Sequential(*layers)
    x = torch.randn(6, 8, dtype=torch.float64)
    by_r = deformation(net, x, radius=[0.01, 1.0, 10.0], n_directions=5)
    for d in by_r.values():
        for stat in ("eccentricity", "diameter"):
            expected = torch.tensor([1.0, 2.0, 1.0, 3.0], dtype=torch.float64)
            assert torch.allclose(d.relative(stat), expected.expand(6, 4), rtol=1e-10)
    assert recommend_radius(by_r) == 10.0       # only scaled: every radius passes


def test_a_relu_network_bends_large_neighbourhoods_and_the_recommendation_sees_it():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                        nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    x = torch.randn(50, 10)
    radii = [1e-4, 1e-3, 1e-2, 1.0, 10.0]
    by_r = deformation(net, x, radius=radii, n_directions=8)
    ref = by_r[1e-4].summary()[0]
    assert torch.allclose(by_r[1e-3].summary()[0], ref, rtol=0.05)   # locally affine
    assert not torch.allclose(by_r[10.0].summary()[0], ref, rtol=0.1)  # bent
    best = recommend_radius(by_r, tolerance=0.1)
    assert best is not None and 1e-3 <= best < 10.0


def test_same_vertices_as_lc_and_bad_arguments():
    x = torch.rand(3, 6)
    net = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    v = sample_directions(6, 3, seed=7)
    a = deformation(net, x, radius=0.1, n_directions=3, seed=7)
    b = deformation(net, x, radius=0.1, directions=v)
    assert torch.equal(a.eccentricity, b.eccentricity)
    with pytest.raises(ValueError, match="n_directions must be in \\[2, input dimension 6\\]"):
        deformation(net, x, radius=0.1, n_directions=1)
    with pytest.raises(ValueError, match="radius must be a finite number > 0"):
        deformation(net, x, radius=-1.0)


def test_the_tracker_logs_deformation_on_its_own_cadence(tracking_uri):
    from mlflow.tracking import MlflowClient

    from grok_mlflow import GrokTracker, RunOptions, TrackerSettings

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(),
                        nn.Linear(12, 3))
    x, y = torch.rand(40, 1, 4, 4), torch.randint(0, 3, (40,))
    s = TrackerSettings(steps=20, eval_points=6, deform_points=2, lc_samples=10,
                        lc_directions=4, adv_points=0, partition_every=0)
    with GrokTracker(net, (x, y), (x, y), s, run=RunOptions(progress=False)) as tracker:
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
        for step in range(1, 21):
            loss = nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tracker.step(step)
    client = MlflowClient()
    history = client.get_metric_history(tracker.run_id, "deform/eccentricity/layer_2")
    assert [m.step for m in history] == sorted(tracker.schedule.deform_steps)
    assert tracker.schedule.deform_steps < set(tracker.schedule.eval_steps)   # a subset of the eval steps
    direct = deformation(net, tracker.probes.lc["train"], radius=s.lc_radius[0],
                         n_directions=4, seed=s.seed)
    assert history[-1].value == pytest.approx(direct.summary()[0][2].item(), rel=1e-6)
    assert "deform/diameter/layer_1/ci_high" in client.get_run(tracker.run_id).data.metrics
