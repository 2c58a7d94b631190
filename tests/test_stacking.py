"""K models as one: StackedAdamW against torch's optimizers, member views, which runs may stack."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from grok_mlflow.measures.evaluation import loss_function
from grok_mlflow.runner.models import build_model
from grok_mlflow.runner.stacking import StackedAdamW, StackedModules, check_stackable
from grok_mlflow.settings import Settings, SettingsError

# small and fast, every measure on: LC, PGD, partition snapshots


def _member_grid(dtype: torch.dtype) -> tuple[list[Settings], list[nn.Module]]:
    grid = [Settings(width=16, depth=2, seed=0, lr=1e-3, weight_decay=0.01),
            Settings(width=16, depth=2, seed=1, lr=3e-3, weight_decay=0.1, optimizer="adam"),
            Settings(width=16, depth=2, seed=2, lr=1e-2, weight_decay=0.0, loss="mse",
                     adam_beta2=0.98, init_scale=2.0)]
    models = []
    for s in grid:
        torch.manual_seed(s.seed)
        models.append(build_model(s, (1, 8, 8), 10).to(dtype))
    return grid, models


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-13), (torch.float32, 1e-5)])
def test_stacked_adam_is_torchs_adamw_and_adam_member_by_member(dtype, tolerance):
    """Members differing in lr, betas, weight decay, optimizer (AdamW / Adam's L2), loss and
    init scale: 30 stacked steps == 30 steps of torch's own optimizers on each alone."""
    grid, singles = _member_grid(dtype)
    optimizers = [(torch.optim.AdamW if s.optimizer == "adamw" else torch.optim.Adam)(
        m.parameters(), lr=s.lr, betas=(s.adam_beta1, s.adam_beta2),
        weight_decay=s.weight_decay) for s, m in zip(grid, singles)]
    stack = StackedModules(_member_grid(dtype)[1]).train()
    optimizer = StackedAdamW(stack, [s.lr for s in grid], [s.adam_beta1 for s in grid],
                             [s.adam_beta2 for s in grid], [s.weight_decay for s in grid],
                             [s.optimizer == "adamw" for s in grid])
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        x = torch.rand(3, 20, 1, 8, 8, generator=gen, dtype=dtype)
        y = torch.randint(0, 10, (3, 20), generator=gen)
        for k, (model, opt, s) in enumerate(zip(singles, optimizers, grid)):
            loss = loss_function(s.loss)(model(x[k]), y[k])
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses = stack.losses(x, y, [s.loss for s in grid])
        optimizer.zero_grad()
        losses.sum().backward()
        optimizer.step()
    for single, member in zip(singles, stack.members):
        for (name, a), b in zip(member.named_parameters(), single.parameters()):
            assert ((a - b).abs().max() / b.abs().max()).item() < tolerance, name
    # a member's optimizer state is exactly what torch's optimizer saves for the run alone
    for k in range(3):
        mine = optimizer.member_state_dict(k, optimizer.member_optimizer(k))
        theirs = optimizers[k].state_dict()
        assert mine["param_groups"] == theirs["param_groups"]
        for i, state in theirs["state"].items():
            assert mine["state"][i]["step"] == state["step"]
            for key in ("exp_avg", "exp_avg_sq"):         # relative to the tensor's scale
                scale = state[key].abs().max().item()
                torch.testing.assert_close(mine["state"][i][key], state[key], rtol=0,
                                           atol=tolerance * scale)


def test_members_are_views_of_the_stacked_tensors_and_state_round_trips():
    _, models = _member_grid(torch.float64)
    stack = StackedModules(models)
    with torch.no_grad():
        stack.params["hidden1.linear.weight"][1].fill_(3.0)
    assert bool((stack.members[1].hidden1.linear.weight == 3.0).all())
    assert not bool((stack.members[0].hidden1.linear.weight == 3.0).any())
    optimizer = StackedAdamW(stack, [1e-3] * 3, [0.9] * 3, [0.999] * 3, [0.0] * 3, [True] * 3)
    stack.losses(torch.rand(3, 4, 1, 8, 8, dtype=torch.float64), torch.zeros(3, 4, dtype=torch.long),
                 ["cross_entropy"] * 3).sum().backward()
    optimizer.step()
    saved = optimizer.member_state_dict(2, optimizer.member_optimizer(2))
    other = StackedAdamW(stack, [1e-3] * 3, [0.9] * 3, [0.999] * 3, [0.0] * 3, [True] * 3)
    other.load_member_state_dict(2, other.member_optimizer(2), saved)
    assert other.steps == 1
    for name in optimizer.exp_avg:
        assert torch.equal(other.exp_avg[name][2], optimizer.exp_avg[name][2])
        assert not other.exp_avg[name][0].any()          # only member 2's slice was loaded
    with pytest.raises(ValueError, match="member 1 differs"):
        StackedModules([nn.Linear(3, 2), nn.Linear(3, 4)])


def test_check_stackable_names_the_setting_that_changes_a_shape():
    check_stackable([Settings(seed=0), Settings(seed=1, lr=0.01, train_size=500, loss="mse")])
    with pytest.raises(SettingsError, match="^width: stacked members must share it"):
        check_stackable([Settings(), Settings(width=50)])
    with pytest.raises(SettingsError, match="^train_size:"):    # full batch: the whole set
        check_stackable([Settings(batch_size=0), Settings(batch_size=0, train_size=500)])
    with pytest.raises(SettingsError, match="imagenette is streamed"):
        check_stackable([Settings(dataset="imagenette", batch_size=64)] * 2)
