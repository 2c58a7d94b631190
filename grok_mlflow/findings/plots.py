"""Figures in the paper's style, from a run's history (matplotlib, no display needed).

Every figure is a ``matplotlib.figure.Figure`` drawn without pyplot: nothing here selects a
backend or registers a figure with pyplot, so a notebook's inline plots keep working and a
figure shows itself when it is a cell's value.

Colours follow the paper (app. B): training green, test orange, random points blue; adversarial
accuracies in shades of red. Steps are on a symmetric-log axis so that step 0 (initialisation)
is shown next to the paper's log-spaced steps.

Example:
    fig = grokking_figure(tracker.history, phases=detect_phases(tracker.history))
    fig.savefig("grokking.png")
"""

from __future__ import annotations

from typing import Any, Mapping

import matplotlib
import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image

from .phases import PHASE_KEYS, detect_phases
from .report import train_lc_keys

__all__ = ["COLORS", "claims_figure", "grokking_figure", "history_figure", "partition_figure",
           "partition_gif", "radius_figure", "regions_figure", "sweep_figures"]

def _subplots(figsize, *shape, **kw):
    """``pyplot.subplots`` without pyplot: a ``Figure`` and its axes."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*shape, **kw)


COLORS = {"train": "tab:green", "test": "tab:orange", "random": "tab:blue",
          "boundary": "tab:red"}      # LC around points on the decision boundary
_PHASE_STYLE = {"grok/interpolation_step": ("interpolation", "k"),
                "grok/lc_peak_step": ("LC peak", "tab:purple"),
                "grok/migration_onset_step": ("migration onset", "tab:brown"),
                "grok/robustness_onset_step": ("robustness onset", "tab:red")}


def _curve(history: Mapping[int, Mapping[str, float]], key: str):
    steps = [s for s in sorted(history) if key in history[s]]
    return np.array(steps), np.array([history[s][key] for s in steps])


def grokking_figure(history: Mapping[int, Mapping[str, float]],
                    phases: Mapping[str, float] | None = None, title: str = "") -> Figure:
    """LC around train/test/random points with 99% CI bands (one panel per radius), above clean
    and adversarial accuracy; detected phases as vertical lines.

    Args:
        history: {step: {metric key: value}} as recorded by ``GrokTracker``.
        phases: ``detect_phases`` output (optional).
        title: figure title (e.g. the run name).
    """
    keys = {k for row in history.values() for k in row}
    prefixes = sorted({k.split("/")[0] for k in keys if k.startswith("lc") and k.endswith("/train")},
                      key=lambda p: float(p[4:]) if p.startswith("lc_r") else 0.0)
    fig, axes = _subplots((7, 2.6 * (len(prefixes) + 1)), len(prefixes) + 1, 1, sharex=True,
                          squeeze=False)
    axes = axes[:, 0]
    for ax, prefix in zip(axes, prefixes):
        _lc_panel(ax, history, prefix)
    ax = axes[-1]
    for split, color in (("train", COLORS["train"]), ("test", COLORS["test"])):
        steps, acc = _curve(history, f"acc/{split}")
        ax.plot(steps, acc, color=color, label=f"{split} accuracy")
    adv = sorted((k for k in keys if k.startswith("adv/acc/eps_")), key=lambda k: float(k[12:]))
    shades = matplotlib.colormaps["Reds"](np.linspace(0.45, 0.95, max(len(adv), 1)))
    for key, shade in zip(adv, shades):
        steps, acc = _curve(history, key)
        ax.plot(steps, acc, color=shade, marker=".", label=f"adversarial, eps={key[12:]}")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("optimisation step")
    ax.legend(loc="best", fontsize=8, frameon=False)
    last = max(max(history) if history else 1, 1)   # a history of step 0 only still gets an axis
    for ax in axes:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(0, last * 1.05)
        ax.grid(alpha=0.3)
        for key, (_label, color) in _PHASE_STYLE.items():
            if phases and key in phases:
                ax.axvline(phases[key], color=color, linestyle="--", linewidth=1,
                           label=None)
    handles = [Line2D([], [], color=c, linestyle="--", label=lab)
               for k, (lab, c) in _PHASE_STYLE.items() if phases and k in phases]
    if handles:
        axes[0].legend(handles=axes[0].get_legend_handles_labels()[0] + handles,
                       fontsize=8, frameon=False, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig

def _lc_panel(ax, history: Mapping[int, Mapping[str, float]], prefix: str) -> None:
    """One radius's LC around train / test / random points, with their 99% CI bands."""
    for split, color in COLORS.items():
        steps, mean = _curve(history, f"{prefix}/{split}")
        if not len(steps):
            continue
        ax.plot(steps, mean, color=color, label=split)
        _, low = _curve(history, f"{prefix}/{split}/ci_low")
        _, high = _curve(history, f"{prefix}/{split}/ci_high")
        if len(low) == len(steps) and len(high) == len(steps):
            ax.fill_between(steps, low, high, color=color, alpha=0.25, linewidth=0)
    radius = prefix[4:] if prefix.startswith("lc_r") else ""
    ax.set_ylabel("local complexity" + (f"\nr = {radius}" if radius else ""))
    ax.legend(loc="best", fontsize=8, frameon=False)


def history_figure(history: Mapping[int, Mapping[str, float]], lc_key: str | None = None,
                   title: str = "") -> Figure:
    """``grokking_figure`` of a history with the phases read off it (``lc_key``: the train-LC
    curve that decides them; default the first radius's)."""
    key = lc_key or train_lc_keys(history)[0]
    return grokking_figure(history, phases=detect_phases(history, lc_key=key), title=title)


def _finish_step_axes(fig: Figure, axes) -> Figure:
    """Log-step x axes with grid, the legend on the first panel, tight layout."""
    for ax in axes:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel("optimisation step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def sweep_figures(histories: Mapping[str, tuple[Any, Mapping[int, Mapping[str, float]]]],
                  swept: list[str]) -> dict[str, Figure]:
    """Comparison figures of a sweep, one curve per trial (colour = trial order).

    Args:
        histories: {trial name: (MLflow run, history)} of the child runs.
        swept: the swept setting names (the first one is the x axis of the phase plot).
    Returns:
        {artifact path: figure}: LC curves (train, test, random), accuracy and adversarial
        accuracy (mean over eps), and phase steps against the first swept setting.
    """
    names = list(histories)
    shades = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, max(len(names), 1)))
    figures: dict[str, Figure] = {}
    first = next(iter(histories.values()))[1]
    keys = {k for row in first.values() for k in row}
    lc_prefix = min((k.split("/")[0] for k in keys if k.startswith("lc") and k.endswith("/train")),
                    default="lc")
    fig, axes = _subplots((15, 4), 1, 3, sharey=True)
    for ax, split in zip(axes, ("train", "test", "random")):
        for name, shade in zip(names, shades):
            steps, values = _curve(histories[name][1], f"{lc_prefix}/{split}")
            ax.plot(steps, values, color=shade, label=name)
        ax.set_title(f"local complexity, {split} points")
    figures["figures/lc.png"] = _finish_step_axes(fig, axes)

    fig, axes = _subplots((11, 4), 1, 2, sharey=True)
    for name, shade in zip(names, shades):
        history = histories[name][1]
        steps, acc = _curve(history, "acc/test")
        axes[0].plot(steps, acc, color=shade, label=name)
        adv = sorted(k for row in history.values() for k in row if k.startswith("adv/acc/"))
        adv_steps = [s for s in sorted(history) if all(k in history[s] for k in set(adv))]
        if adv:
            axes[1].plot(adv_steps, [np.mean([history[s][k] for k in set(adv)]) for s in adv_steps],
                         color=shade, marker=".", label=name)
    axes[0].set_title("test accuracy")
    axes[1].set_title("adversarial accuracy (mean over eps)")
    figures["figures/accuracy.png"] = _finish_step_axes(fig, axes)

    fig, ax = _subplots((6, 4))
    x_key = swept[0]
    for key in PHASE_KEYS[:-1]:
        points = []
        for name in names:
            run = histories[name][0]
            if key in run.data.metrics:
                try:
                    points.append((float(run.data.params[x_key]), run.data.metrics[key]))
                except (KeyError, ValueError):
                    continue
        if points:
            points.sort()
            ax.plot(*zip(*points), marker="o", label=key[5:])
    ax.set_xlabel(x_key)
    ax.set_ylabel("step")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    figures["figures/phases.png"] = fig
    return figures


_VERDICT_COLORS = {"supported": "tab:green", "contradicted": "tab:red",
                   "inconclusive": "tab:gray", "not resolved": "tab:olive",
                   "not covered": "tab:purple"}


def claims_figure(verdicts) -> Figure:
    """One panel per claim (``claims.Verdict``): the quantity's per-value mean against the swept
    value (in the spec's order; a hollow marker at the axis floor where no trial showed it),
    titled with the claim and coloured by its verdict."""
    n = max(len(verdicts), 1)
    fig, axes = _subplots((4.2 * n, 3.6), 1, n, squeeze=False)
    for ax, v in zip(axes[0], verdicts):
        colour = _VERDICT_COLORS[v.status]
        labels = [str(x) for x, _ in v.points]
        seen = [(i, y) for i, (_, y) in enumerate(v.points) if y is not None]
        if seen:
            ax.plot(*zip(*seen), "-o", color=colour)
        floor = min((y for _, y in seen), default=0.0)
        missing = [i for i, (_, y) in enumerate(v.points) if y is None]
        if missing:
            ax.plot(missing, [floor] * len(missing), "o", mfc="none", color=colour,
                    label="not seen")
            ax.legend(fontsize=7, frameon=False)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel(v.claim.versus)
        fraction = v.claim.trend in ("absent", "present")
        ax.set_ylabel(v.claim.quantity + (": fraction of trials with it" if fraction else ""),
                      fontsize=8)
        if fraction:
            ax.set_ylim(-0.05, 1.05)
        fig_ref = f" (fig. {v.claim.figure})" if v.claim.figure else ""
        radius = f", r = {v.radius:g}" if v.radius is not None else ""
        ax.set_title(f"{v.status.upper()}{fig_ref}{radius}\n{v.claim.text[:70]}", fontsize=8,
                     color=colour)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def radius_figure(study, title: str = "") -> Figure:
    """Choosing LC's radius (``radius.radius_study``): relative average eccentricity and diameter
    of the neighbourhoods per layer, one line per radius (paper figs. 8, 11, with 99% CIs), and
    LC against the radius for each P (as fig. 9 right); the recommended radius marked."""
    fig, axes = _subplots((14, 4.2), 1, 3)
    cmap = matplotlib.colormaps["viridis"]
    for k, r in enumerate(study.radii):
        colour = cmap(k / max(1, len(study.radii) - 1))
        for ax, stat in zip(axes[:2], ("eccentricity", "diameter")):
            mean, low, high = (t.cpu().numpy() for t in study.deformation[r].summary(stat))
            layers = np.arange(len(mean))
            style = "-" if r != study.recommended else "-o"
            ax.plot(layers, mean, style, color=colour, label=f"r={r:g}",
                    lw=2.5 if r == study.recommended else 1.2)
            ax.fill_between(layers, low, high, color="red", alpha=0.3, lw=0)
    for ax, stat in zip(axes[:2], ("eccentricity", "diameter")):
        ax.set_yscale("log")
        ax.set_xlabel("layer (0 = input)")
        ax.set_ylabel(f"avg. {stat} / layer 0" if stat == "eccentricity" else "diameter / layer 0")
    axes[0].legend(fontsize=7, ncol=2)
    for i, p in enumerate(study.directions):
        axes[2].plot(study.radii, study.lc[i].numpy(), "-o", ms=3, label=f"P={p}")
    axes[2].axvline(study.recommended, color="k", ls="--", lw=1,
                    label=f"recommended r={study.recommended:g}")
    axes[2].set_xscale("log")
    axes[2].set_xlabel("radius r")
    axes[2].set_ylabel("mean LC")
    axes[2].legend(fontsize=8)
    fig.suptitle((title + ": " if title else "") + f"recommended r = {study.recommended:g} "
                 f"(deformation within {study.tolerance:.0%} of the smallest radius's)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def regions_figure(rows, rho: float, title: str = "") -> Figure:
    """LC and the exact local region count over a run's snapshots (paper fig. 26): two axes,
    one step axis; ``rows`` are (step, mean regions, mean LC)."""
    steps = np.array([r[0] for r in rows])
    fig, ax = _subplots((6.4, 4))
    ax.plot(steps, [r[1] for r in rows], "-o", color="tab:purple", label="regions (2-D square)")
    ax.set_ylabel("mean linear regions in the square", color="tab:purple")
    twin = ax.twinx()
    twin.plot(steps, [r[2] for r in rows], "-s", color=COLORS["train"], label="LC (train)")
    twin.set_ylabel("mean LC", color=COLORS["train"])
    ax.set_xscale("symlog", linthresh=max(1, int(steps[steps > 0].min()) if (steps > 0).any()
                                          else 1))
    ax.set_xlabel("step")
    ax.set_title((title + "\n" if title else "") + f"Spearman rank correlation {rho:.2f}",
                 fontsize=9)
    fig.tight_layout()
    return fig


def partition_figure(partition, labels: list | None = None, title: str = "") -> Figure:
    """The paper's partition picture (figs. 1, 3, 17) from ``partition_slice``'s result.

    Regions coloured by the log norm of the slope restricted to the plane (when computed),
    region boundaries black, the decision boundary red, the three points marked (with their
    labels when given) at (0, 0), (1, 0), (0, 1) of the plane.

    Args:
        partition: a ``grok_mlflow.measures.partition.PartitionSlice``.
        labels: the three points' class labels (optional).
        title: figure title (e.g. run name and step).

    Example:
        partition_figure(partition_slice(model, x[:3]), y[:3].tolist(), "step 1000")
    """
    fig, ax = _subplots((5.2, 5.2))
    # fixed margins, not tight_layout (which draws the figure once more: ~1/3 of its time)
    fig.subplots_adjust(left=0.03, right=0.97, bottom=0.03, top=0.9)
    extent = partition.extent
    # one RGBA picture (the slope's colours, the boundaries painted over them), drawn once
    boundary = partition.boundary.cpu().numpy() > 0                                  # (R, R)
    rgba = np.ones((*boundary.shape, 4), dtype=np.float32)                           # white
    if partition.slope is not None:
        slope = partition.slope.detach().float().cpu().numpy()
        positive = slope[slope > 0]
        low = float(np.percentile(positive, 1)) if positive.size else 1e-6
        shade = np.log10(np.maximum(slope, low))
        rgba = matplotlib.colormaps["viridis"](Normalize(shade.min(), shade.max())(shade)
                                       ).astype(np.float32)
    rgba[boundary] = (0, 0, 0, 1)
    rgba[partition.decision.cpu().numpy()] = (0.9, 0, 0, 1)
    ax.imshow(rgba, origin="lower", extent=extent, interpolation="nearest")
    coords = partition.point_coords.numpy()
    ax.scatter(coords[:, 0], coords[:, 1], s=60, c="white", edgecolors="black", zorder=3)
    for k, (a, b) in enumerate(coords):
        if labels is not None:
            ax.annotate(str(labels[k]), (a, b), xytext=(6, 6), textcoords="offset points",
                        color="white", fontsize=11, fontweight="bold")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title((title + "\n" if title else "") + f"{partition.regions} regions "
                 f"({partition.regions_near_boundary} near the decision boundary)", fontsize=9)
    return fig


def partition_gif(frames: list, path: str, frame_ms: int = 500) -> None:
    """Animated GIF of PNG frames (paths or file-like), in order; the last frame held longer.

    Args:
        frames: PNG images of equal size, e.g. the run's ``partition/step_*.png``.
        path: output ``.gif`` path.
        frame_ms: display time of each frame in milliseconds (> 0).
    """
    if not frames:
        raise ValueError("partition_gif needs at least one frame")
    images = [Image.open(f).convert("RGB") for f in frames]
    durations = [frame_ms] * (len(images) - 1) + [frame_ms * 4]
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)
