"""Token inputs (paper fig. 10): modular addition, the transformer, LC in embedding space."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from grok_mlflow import GrokTracker, RunOptions, TrackerSettings
from grok_mlflow.measures.complexity import local_complexity, sample_directions
from grok_mlflow.measures.partition import partition_slice
from grok_mlflow.runner.batches import training_batches
from grok_mlflow.runner.data import load_dataset
from grok_mlflow.runner.models import build_model
from grok_mlflow.settings import Settings, load_preset

from conftest import REPO, subprocess_env

TINY = dict(dataset="modular_addition", model="transformer", modulus=7, train_fraction=0.5,
            depth=1, width=16, activation="gelu", batch_size=0, weight_decay=1.0,
            adam_beta2=0.98)


def test_modular_addition_is_every_pair_split_by_a_seeded_fraction():
    settings = Settings(**TINY)
    data = load_dataset(settings, torch.device("cpu"))
    x = torch.cat([data.x_train, data.x_test])                       # (49, 3)
    assert data.tokens and x.dtype == torch.int64 and len(data.x_train) == round(0.5 * 49)
    assert sorted((a * 7 + b) for a, b, _ in x.tolist()) == list(range(49))   # each pair once
    assert (x[:, 2] == 7).all() and data.domain == (0.0, 7.0) and data.num_classes == 7
    y = torch.cat([data.y_train, data.y_test])
    assert torch.equal(y, (x[:, 0] + x[:, 1]) % 7)
    again = load_dataset(settings, torch.device("cpu"))
    assert torch.equal(again.x_train, data.x_train)
    other = load_dataset(Settings(**{**TINY, "seed": 1}), torch.device("cpu"))
    assert not torch.equal(other.x_train, data.x_train)
    # batch_size 0: the whole training set every step, the tensors themselves
    xb, yb = next(training_batches(data, settings))
    assert xb is data.x_train and yb is data.y_train


def _transformer(dtype=torch.float64, seed=0, **options):
    torch.manual_seed(seed)
    return build_model(Settings(**{**TINY, **options}), (3,), 7).to(dtype)


def _bias(linear):
    """A linear layer's bias in float64, zeros where it has none (transformer_biases)."""
    if linear.bias is None:
        return torch.zeros(linear.out_features, dtype=torch.float64)
    return linear.bias.double()


def _independent_count(model, tokens, radius, directions):
    """LC of the MLP neurons by hand, in float64: embed, add the cross-polytope, run attention
    and the MLP's first linear layer written out, count pre-activations of both signs."""
    block = model.blocks[0]
    w = model.embed.token.weight.double()
    e = w[tokens] + model.embed.position.double()                       # (N, 3, D)
    n, t, d = e.shape
    offsets = radius * torch.cat([directions, -directions]).double()    # (2P, 3D)
    h = (e.reshape(n, 1, t * d) + offsets).reshape(-1, t, d)            # (N*2P, 3, D)
    qkv = h @ block.attn.qkv.weight.double().T + _bias(block.attn.qkv)
    q, k, v = qkv.split(d, dim=-1)
    heads = 4

    def split(a):
        return a.reshape(len(h), t, heads, d // heads).transpose(1, 2)   # (B, H, T, d/H)

    scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(d // heads)
    scores = scores.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), -math.inf)
    mix = (scores.softmax(-1) @ split(v)).transpose(1, 2).reshape(len(h), t, d)
    h = h + mix @ block.attn.out.weight.double().T + _bias(block.attn.out)
    pre = h @ block.mlp.linear.weight.double().T + _bias(block.mlp.linear)  # (B, 3, 4D)
    pre = pre.reshape(n, len(offsets), -1)
    cut = (pre.amin(1) <= 0) & (pre.amax(1) >= 0)
    return cut.sum(1)                                                    # (N,)


# the literature's transformer (zero MLP biases), and every bias present and non-zero
@pytest.mark.parametrize("options", [{}, dict(transformer_init="pytorch",
                                               transformer_biases="all")])
def test_transformer_lc_equals_an_independent_float64_count(options):
    model = _transformer(**options)
    tokens = load_dataset(Settings(**TINY), torch.device("cpu")).x_train[:10]
    directions = sample_directions(3 * 16, 6, seed=3, dtype=torch.float64)
    for radius in (0.01, 0.1, 1.0):
        lc = local_complexity(model, tokens, radius=radius, directions=directions,
                              input_module="embed")
        assert lc.layer_names == ["blocks.0.mlp.act"]
        expected = _independent_count(model, tokens, radius, directions)
        assert torch.equal(lc.per_layer[:, 0], expected), radius
        assert 0 < expected.sum() < 10 * 3 * 64          # some cut, not all: a real test
    # float32 counts the same neurons here (signs compared, nothing accumulated)
    lc32 = local_complexity(_transformer(torch.float32, **options), tokens, radius=0.1,
                            directions=directions.float(), input_module="embed")
    assert torch.equal(lc32.per_layer[:, 0], _independent_count(model, tokens, 0.1, directions))


# std of each weight at width 128, p = 113 (vocab 114): Nanda's 1/sqrt(d_model) everywhere and
# 1/sqrt(d_vocab) for the read-out; TransformerLens's 0.8/sqrt(d_model); nn.Linear's
# 1/sqrt(3 fan_in) (fan_in 512 for the MLP's output projection)
EXPECTED_STD = {
    "nanda": {"qkv": 128 ** -0.5, "proj": 128 ** -0.5, "head": 114 ** -0.5},
    "transformerlens": {"qkv": 0.8 * 128 ** -0.5, "proj": 0.8 * 128 ** -0.5,
                        "head": 0.8 * 128 ** -0.5},
    "pytorch": {"qkv": (3 * 128) ** -0.5, "proj": (3 * 512) ** -0.5, "head": (3 * 128) ** -0.5},
}


@pytest.mark.parametrize("init", sorted(EXPECTED_STD))
def test_transformer_init_has_the_literatures_scale_measured_on_a_built_model(init):
    torch.manual_seed(0)
    model = build_model(Settings(dataset="modular_addition", model="transformer", width=128,
                                 depth=1, transformer_init=init, transformer_biases="all"),
                        (3,), 113)
    block = model.blocks[0]
    weights = {"qkv": block.attn.qkv.weight, "proj": block.mlp.proj.weight,
               "head": model.head.weight}
    for name, w in weights.items():
        assert float(w.std()) == pytest.approx(EXPECTED_STD[init][name], rel=0.03), name
    biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
    assert len(biases) == 5
    zero = [bool((b == 0).all()) for b in biases]
    assert zero == [init != "pytorch"] * 5          # zero at init, except nn.Linear's own


@pytest.mark.parametrize("biases, expected", [
    ("mlp", ["blocks.0.mlp.linear.bias", "blocks.0.mlp.proj.bias"]),
    ("none", []),
    ("all", ["blocks.0.attn.qkv.bias", "blocks.0.attn.out.bias", "blocks.0.mlp.linear.bias",
             "blocks.0.mlp.proj.bias", "head.bias"])])
def test_transformer_biases_exist_where_the_setting_says(biases, expected):
    model = _transformer(transformer_biases=biases)
    assert [n for n, _ in model.named_parameters() if "bias" in n] == expected
    assert model(torch.tensor([[1, 2, 7]])).shape == (1, 7)


class BagOfTokens(nn.Module):
    """A model that is not ours: an embedding, flattened, then an MLP."""

    def __init__(self, vocab=11, length=4, dim=5):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(length * dim, 12), nn.ReLU(),
                                 nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, tokens):
        return self.mlp(self.emb(tokens))


def test_a_users_token_model_measured_from_its_embedding():
    torch.manual_seed(0)
    model = BagOfTokens()
    tokens = torch.randint(0, 11, (20, 4))
    lc = local_complexity(model, tokens, radius=0.3, n_directions=7, seed=2, input_module="emb")
    # the same as LC of the rest of the network at the embedded points
    direct = local_complexity(model.mlp, model.emb(tokens).detach(), radius=0.3, n_directions=7,
                              seed=2)
    assert torch.equal(lc.per_layer, direct.per_layer) and lc.per_layer.sum() > 0
    assert lc.layer_names == ["mlp.2", "mlp.4"]
    part = partition_slice(model, tokens[:3], resolution=32, input_module="emb")
    assert part.regions >= 1 and part.layer_names == ["mlp.2", "mlp.4"]


def test_token_inputs_without_an_input_module_or_with_a_wrong_one_are_clear_errors():
    model = BagOfTokens()
    tokens = torch.randint(0, 11, (5, 4))
    with pytest.raises(ValueError, match="x holds integers .* give input_module"):
        local_complexity(model, tokens, radius=0.1, n_directions=3)
    with pytest.raises(ValueError, match="has no module 'embed'; modules: emb, mlp"):
        local_complexity(model, tokens, radius=0.1, n_directions=3, input_module="embed")

    class Skip(BagOfTokens):       # uses its tokens again after the embedding
        def forward(self, tokens):
            return self.mlp(self.emb(tokens)) + tokens[:, :1].float()

    with pytest.raises(ValueError, match="depends on its input other than through 'emb'"):
        local_complexity(Skip(), tokens, radius=0.1, n_directions=3, input_module="emb")


def test_the_tracker_on_a_users_token_model(tracking_uri, capsys):
    torch.manual_seed(0)
    model = BagOfTokens()
    x = torch.randint(0, 11, (64, 4))
    y = x.sum(1) % 3
    settings = TrackerSettings(steps=10, eval_points=3, lc_samples=16, lc_directions=5,
                               partition_every=1, partition_resolution=16)
    with pytest.raises(ValueError, match="token ids.*set lc_input"):
        with GrokTracker(model, (x, y), (x, y), settings, run=RunOptions(progress=False)):
            pass
    settings = TrackerSettings(**{**settings.__dict__, "lc_input": "emb"})
    with GrokTracker(model, (x, y), (x, y), settings, run=RunOptions(progress=False)) as tracker:
        for step in range(1, 11):
            tracker.step(step)
    assert "PGD off: the inputs are token ids" in capsys.readouterr().err
    run = MlflowClient().get_run(tracker.run_id)
    keys = set(run.data.metrics)
    assert {"lc/train", "lc/random", "lc/test/layer_2", "partition/regions"} <= keys
    assert not any(k.startswith("adv/") for k in keys)


def test_a_short_mlflow_run_of_the_fig10_preset(tmp_path, tracking_uri):
    """The fig. 10 preset through `mlflow run`, shortened (p = 13, 60 steps): a real run."""
    settings = load_preset(str(REPO / "projects" / "fig10_modular_addition.yaml"))
    assert (settings.batch_size, settings.weight_decay, settings.adam_beta2) == (0, 1.0, 0.98)
    args = [sys.executable, "-m", "mlflow", "run", str(REPO), "--env-manager", "local",
            "-e", "preset"]
    for p in ("preset=projects/fig10_modular_addition.yaml", "modulus=13", "steps=60",
              "eval_points=4", "eval_every=0", "lc_samples=20", "partition_resolution=32",
              "min_steps=20"):                     # the preset trains until: settled
        args += ["-P", p]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=subprocess_env(MLFLOW_TRACKING_URI=tracking_uri))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "PGD off: the inputs are token ids" in done.stderr
    runs = [r for e in MlflowClient().search_experiments()
            for r in MlflowClient().search_runs([e.experiment_id])]
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run = runs[0]
    assert run.data.params["model"] == "transformer" and run.data.params["modulus"] == "13"
    assert {k: run.data.params[k] for k in ("transformer_init", "transformer_biases",
                                            "warmup_steps", "loss_float64", "activation")} == {
        "transformer_init": "nanda", "transformer_biases": "mlp", "warmup_steps": "10",
        "loss_float64": "true", "activation": "gelu"}              # the literature's build
    assert {"lc_r0.005/train", "lc_r0.05/random", "acc/test", "partition/regions"} <= set(
        run.data.metrics)
    assert run.data.metrics["acc/train"] > 0.2       # learning: chance is 1/13
