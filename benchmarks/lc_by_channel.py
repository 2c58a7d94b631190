"""Which channels make a layer's local complexity: LC of a recorded run split by channel.

    python benchmarks/lc_by_channel.py RUN_ID [--radius 0.005] [--points 200] [--layer conv2.act]

Loads the run's last checkpoint (a ``train`` run or a sweep trial), draws ``--points`` training
inputs as the run's analyses do, and counts, for the layer with the highest mean LC (or
``--layer``), the cut neurons of each channel per point, with the same directions for every
point (LC's default). For the channel with the most cuts it prints the pre-activation on a
constant input at the data's lower bound (an image's background) and the share of its cuts at
positions whose pre-activation equals that constant image's (their receptive field is all
background): a channel whose background value sits within the neighbourhood's reach of zero is
cut at every background position, and the layer's LC jumps with it. Fashion-MNIST's CNN shows
this (docs/datasets.md).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from grok_mlflow.measures.complexity import local_complexity, sample_directions
from grok_mlflow.runner.recorded import RecordedRun


@dataclass(frozen=True)
class ChannelCuts:
    layer: str
    per_channel: Tensor      # (C,) float64: mean cut neurons per point, by channel
    layer_lc: float          # the layer's mean LC as local_complexity counts it
    background: Tensor       # (H, W): the top channel's pre-activation on the constant input
    background_share: float  # of the top channel's cuts, the share at background positions


def channel_cuts(model: nn.Module, x: Tensor, *, radius: float, layer: str | None = None,
                 low: float = 0.0, seed: int = 0) -> ChannelCuts:
    """Cut neurons of ``layer`` (a nonlinearity module's name; default: the layer with the
    highest mean LC) by channel, around each point of ``x`` (N, C_in, H, W) at ``radius``."""
    n_directions = min(25, x[0].numel())
    directions = sample_directions(x[0].numel(), n_directions, seed=seed)
    lc = local_complexity(model, x, radius=radius, directions=directions)
    name = layer or lc.layer_names[int(lc.layer_mean().argmax())]
    if name not in lc.layer_names:
        raise SystemExit(f"lc_by_channel: no layer {name!r}; layers: {', '.join(lc.layer_names)}")
    seen: list[Tensor] = []
    handle = model.get_submodule(name).register_forward_pre_hook(
        lambda _module, args: seen.append(args[0].detach()))
    steps = (radius * directions).reshape(n_directions, *x.shape[1:])
    vertices = torch.cat([x[:, None] + steps[None], x[:, None] - steps[None]], dim=1)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(vertices.reshape(-1, *x.shape[1:]))
            model(x)
            model(torch.full_like(x[:1], low))
    finally:
        handle.remove()
        model.train(was_training)
    at_vertices, at_points, at_low = seen
    at_vertices = at_vertices.reshape(len(x), 2 * n_directions, *at_vertices.shape[1:])
    cut = (at_vertices.amin(dim=1) <= 0) & (at_vertices.amax(dim=1) >= 0)      # (N, C, H, W)
    per_channel = cut.flatten(2).sum(dim=2).double().mean(dim=0)
    top = int(per_channel.argmax())
    background = (at_points[:, top] - at_low[0, top]).abs() < 1e-6              # (N, H, W)
    top_cuts = cut[:, top]
    share = float((top_cuts & background).sum() / top_cuts.sum().clamp(min=1))
    return ChannelCuts(name, per_channel, float(lc.layer_mean()[lc.layer_names.index(name)]),
                       at_low[0, top], share)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_id")
    parser.add_argument("--radius", type=float, default=0.005)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--layer", default=None, help="a nonlinearity's module name")
    args = parser.parse_args()
    run = RecordedRun.load(args.run_id, "lc_by_channel", device="cpu")
    step = run.weights_at(None, checkpoint=True)
    low = float(run.config.get("domain", [0.0, 1.0])[0])
    found = channel_cuts(run.model, run.points(args.points), radius=args.radius,
                         layer=args.layer, low=low)
    top = int(found.per_channel.argmax())
    print(f"run {args.run_id}, step {step}, r = {args.radius}, {args.points} training points")
    print(f"{found.layer}: mean LC {found.layer_lc:.2f}; by channel: "
          + " ".join(f"{v:.2f}" for v in found.per_channel.tolist()))
    print(f"channel {top}: {found.per_channel[top]:.2f} cuts a point "
          f"({found.per_channel[top] / max(found.layer_lc, 1e-12):.0%} of the layer's), "
          f"{found.background_share:.0%} of them at background positions; its pre-activation on "
          f"a constant {low:g} input: {found.background.min():.2e} to {found.background.max():.2e}")


if __name__ == "__main__":
    main()
