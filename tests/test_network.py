"""The machinery the measures share: the fx plan, one input set-up, the token path."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from grok_mlflow.measures.network import (
    FromModule,
    embedded,
    has_nonlinearity,
    plan_for,
    prepare_input,
    widest_activation,
)


class Tokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(7, 4)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 7))

    def forward(self, x):
        return self.body(self.embed(x))


def test_the_plan_splits_at_the_first_nonlinearity_when_the_head_is_affine():
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    plan = plan_for(net)
    x = torch.rand(5, 1, 4, 4, dtype=torch.float64)
    assert torch.equal(plan.head(x), net[1](net[0](x)))
    assert torch.equal(plan.body(plan.head(x)), net(x))
    assert plan_for(net) is plan                                       # cached
    assert plan_for(nn.Sequential(nn.ReLU(), nn.Linear(4, 2))).head is None   # nothing before
    assert widest_activation(net, x[:1]) == 16
    assert has_nonlinearity(net) and not has_nonlinearity(nn.Linear(3, 3))


def test_prepare_input_moves_to_the_models_dtype_and_refuses_bare_integers():
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU()).double()
    run, x = prepare_input(net, torch.rand(2, 4))
    assert run is net and x.dtype == torch.float64
    with pytest.raises(ValueError, match="points holds integers .* give input_module"):
        prepare_input(net, torch.ones(2, 4, dtype=torch.long), what="points")


def test_the_token_path_runs_the_model_from_its_embedding():
    torch.manual_seed(0)
    model = Tokens()
    tokens = torch.randint(0, 7, (5, 3))
    run, z = prepare_input(model, tokens, "embed")                    # (5, 3, 4) embedded
    assert isinstance(run, FromModule) and z.shape == (5, 3, 4)
    assert torch.allclose(run(z), model(tokens))
    assert torch.equal(z, model.embed(tokens))

    class Leaky(Tokens):             # the output also reads the tokens directly: refused
        def forward(self, x):
            return self.body(self.embed(x)) + x[:, :1].float()

    with pytest.raises(ValueError, match="depends on its input other than through 'embed'"):
        embedded(Leaky(), "embed", tokens)
