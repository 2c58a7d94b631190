"""Choosing LC's radius: LC and deformation over radii, and the recommendation."""

from __future__ import annotations

import torch
from torch import nn

from conftest import Scale


def test_radius_study_on_a_network_that_only_scales_and_one_that_bends(monkeypatch):
    import grok_mlflow.measures.network as network
    from grok_mlflow.measures.radius import radius_study

    monkeypatch.setattr(network, "NONLINEARITIES", network.NONLINEARITIES + (Scale,))
    torch.manual_seed(0)
    similarity = nn.Sequential(nn.Linear(8, 8), Scale(), nn.Linear(8, 8), Scale()).double()
    for lin in (similarity[0], similarity[2]):
        q, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))
        lin.weight.data = 1.5 * q
    study = radius_study(similarity, torch.randn(20, 8, dtype=torch.float64),
                         radii=[0.01, 0.1, 1.0, 10.0], directions=(2, 4))
    assert study.recommended == 10.0 and study.lc.shape == (2, 4)
    bent = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                         nn.Linear(64, 3))
    study = radius_study(bent, torch.randn(40, 10), radii=[1e-4, 1e-3, 1e-2, 10.0],
                         directions=(4, 8))
    assert 1e-3 <= study.recommended < 10.0
    assert (study.lc[:, 1:] >= study.lc[:, :-1]).all()     # LC grows with the radius here
    assert "| recommended |" in study.table()
