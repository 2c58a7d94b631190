"""The training loops, data on the device, the tracker doing the rest: ``train`` (one run) and
``train_stacked`` (K runs that keep every tensor shape, trained as one stacked model).

Example:
    >>> result = train(Settings(steps=200, eval_points=5))
    >>> result.metrics["acc/test"]
    >>> results = train_stacked([Settings(steps=200, seed=k) for k in range(8)])   # 8 runs
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from .complexity import find_module, input_module_of
from .data import check_dataset, dataset_spec, load_dataset, torch_dtype, training_batches
from .evaluation import loss_function
from .models import build_model
from .settings import Settings, SettingsError, load_preset
from .recorder import load_checkpoint, load_snapshot_weights, run_config, snapshot_steps
from .tracking import GrokTracker

__all__ = ["STACKABLE", "TrainResult", "check_settings", "check_stackable", "resolve_device",
           "run_name_for", "stack_key", "train", "train_stacked", "warmup_factor"]

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


@dataclass
class TrainResult:
    """What ``train`` returns: the trained model, its MLflow run, the last measured metrics."""
    model: nn.Module
    run_id: str
    metrics: dict[str, float]
    error: str = ""      # why a stacked member stopped early (it diverged); empty otherwise


# settings that say where or how a run ran, not what it is: never part of its name
_NOT_IN_NAMES = {"preset", "data_root", "download", "data_workers", "device",
                 "checkpoint_every_s", "tracking_retry_s", "log_model"}


def run_name_for(settings: Settings) -> str:
    """A run name that tells runs apart: the preset's file name (else ``dataset_model``), then
    every setting that differs from the preset (else from the defaults), e.g. ``digits_mlp``,
    ``digits_mlp:depth=2,width=16``, ``fig1_mnist_mlp:steps=20000,seed=1``."""
    base, reference = f"{settings.dataset}_{settings.model}", Settings()
    if settings.preset:
        base = os.path.splitext(os.path.basename(settings.preset))[0]
        try:
            reference = load_preset(settings.preset)
        except SettingsError:      # the file is gone (a run rebuilt elsewhere): the defaults
            pass
    mine, theirs = settings.to_params(), reference.to_params()
    changed = [f"{k}={v}" for k, v in mine.items()
               if k not in _NOT_IN_NAMES and v != theirs[k]]
    name = base + (":" + ",".join(changed) if changed else "")
    return name if len(name) <= 250 else name[:249] + "…"   # MLflow's run-name limit


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU raises SettingsError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SettingsError("device: cuda requested but no CUDA GPU is available here "
                            "(use device=auto or device=cpu)")
    return torch.device(name)


def check_settings(settings: Settings) -> torch.device:
    """Every check that needs the environment (device, dataset size), before any work starts."""
    device = resolve_device(settings.device)
    check_dataset(settings)
    return device


class _Untracked:
    """Stands in for ``GrokTracker`` when nothing is measured (``train(track=False)``)."""

    run_id = None

    def __init__(self) -> None:
        self.history: dict[int, dict[str, float]] = {}

    def __enter__(self) -> "_Untracked":
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def step(self, step: int, loss=None) -> None:
        return None


class _UntrackedGroup(_Untracked):
    """Stands in for ``StackedTracker`` when nothing is measured (``train_stacked(track=False)``)."""

    def __init__(self, members: int) -> None:
        self.alive, self.failed = list(range(members)), {}
        self.run_ids, self.history = [None] * members, [{} for _ in range(members)]

    def step(self, step: int, losses=None) -> dict:
        return {}


def train(settings: Settings, *, experiment: str | None = None, run_name: str | None = None,
          progress: bool = True, track: bool = True, resume: str | None = None,
          on_progress: Callable[[int, Mapping[str, float]], None] | None = None,
          progress_every_s: float = 5.0) -> TrainResult:
    """Train ``settings.model`` on ``settings.dataset`` and track it in MLflow.

    Adam(W) on minibatches drawn without replacement (a fresh seeded permutation each epoch; the
    last incomplete batch of an epoch is dropped; ``data.training_batches``: indexed on the
    device, or decoded by workers for a streamed dataset), measured and logged by ``GrokTracker``, which
    also checkpoints the training state with every metric flush (``checkpoints/last.pt``).
    ``resume=RUN_ID`` continues that run from its last checkpoint (``settings`` should be the
    run's own: see ``resume_settings``); on CPU the result equals an uninterrupted run's.
    ``track=False`` runs the same loop with no measurement and no MLflow (for benchmarks).
    ``on_progress(step, latest metrics)`` is called at every measured step and at least every
    ``progress_every_s`` seconds (a sweep's trials report their progress through it).
    """
    device = check_settings(settings)
    data, model = _data_and_model(settings, device)
    # fused: one kernel for the whole update on CUDA (same maths; the step is launch-bound)
    optimizer = OPTIMIZERS[settings.optimizer](model.parameters(), lr=settings.lr,
                                               betas=(settings.adam_beta1, settings.adam_beta2),
                                               weight_decay=settings.weight_decay,
                                               fused=device.type == "cuda" or None)
    loss_fn = loss_function(settings.loss, settings.loss_float64)
    state = load_checkpoint(resume, device) if resume else None
    start = 1 if state is None else int(state["step"]) + 1
    batches = training_batches(data, settings, done=start - 1)   # (B, ...) inputs on the device

    def checkpoint() -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                **batches.state_dict(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None}

    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        batches.load_state_dict(state)
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    tracker_context = GrokTracker(
        model, train=(data.x_train, data.y_train), test=(data.x_test, data.y_test),
        settings=settings.tracker_settings(dataset_spec(settings.dataset).default_adv_eps),
        params=settings.to_params(), domain=data.domain,
        run_name=run_name or run_name_for(settings), experiment=experiment,
        progress=progress, checkpoint=checkpoint, resume=state, run_id=resume,
        log_model=settings.log_model,
        # the project's settings (resume and partition rebuild the run from them); a streamed
        # dataset's x_train is only its evaluation subset
        extra_config={"settings": dataclasses.asdict(settings), "n_train": data.n_train},
    ) if track else _Untracked()
    # the stream's workers stop before the tracker's final measurement and artifacts
    with (tracker_context as tracker, contextlib.closing(batches),
          _interrupt_at_step_boundary() as interrupted):
        model.train()
        latest: Mapping[str, float] = {}
        next_progress = time.monotonic() + progress_every_s
        for step in range(start, settings.steps + 1):
            if interrupted:
                stop = KeyboardInterrupt(f"interrupted after step {step - 1}")
                stop.at_step_boundary = True   # the tracker checkpoints a consistent state
                raise stop
            x, y = next(batches)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if step <= settings.warmup_steps:                       # a function of the step:
                for group in optimizer.param_groups:                 # nothing to checkpoint
                    group["lr"] = settings.lr * warmup_factor(settings, step)
            optimizer.step()
            measured = tracker.step(step, loss=loss)
            if on_progress is not None and (measured or time.monotonic() >= next_progress):
                latest = measured or latest
                on_progress(step, latest)
                next_progress = time.monotonic() + progress_every_s
        final = tracker.history.get(settings.steps, {})
    return TrainResult(model=model, run_id=tracker.run_id, metrics=final)


def warmup_factor(settings: Settings, step: int) -> float:
    """The learning rate's factor at optimisation step ``step`` (1-based): min(step / N, 1) for
    N = ``warmup_steps`` (N = 0: always 1). Nanda et al.'s LambdaLR gives min(s / 10, 1) at their
    0-based step s, so their first update has lr 0; here the first has lr / N."""
    if settings.warmup_steps == 0:
        return 1.0
    return min(step / settings.warmup_steps, 1.0)


def _data_and_model(settings: Settings, device: torch.device):
    """The run's data on ``device`` and its model, initialised from ``settings.seed``; the
    checks that need them loaded (model fits data, P <= input dimension, lc_input exists)."""
    data = load_dataset(settings, device)
    input_dim = math.prod(data.input_shape)
    if data.tokens != (settings.model == "transformer"):
        raise SettingsError(f"model: {settings.model} does not fit {settings.dataset} (token "
                            "data needs the transformer, and the transformer token data)")
    if not data.tokens and settings.lc_directions > input_dim:   # known once the data is loaded
        raise SettingsError(f"lc_directions: must be <= the input dimension of "
                            f"{settings.dataset} ({input_dim}), got {settings.lc_directions}")
    torch.manual_seed(settings.seed)                   # initialisation
    model = build_model(settings, data.input_shape, data.num_classes,
                        dataset_spec(settings.dataset).normalization).to(
                            device, torch_dtype(settings.dtype))
    if settings.lc_input:
        try:
            find_module(model, settings.lc_input)
        except ValueError as err:
            raise SettingsError(str(err)) from None
    return data, model


# Settings that stacked members may differ in: every tensor keeps its shape. Everything else
# (dataset, model, depth, width, activation, batchnorm, dtype, device, steps, batch size, ...)
# must be equal within a stacked group.
STACKABLE = frozenset({
    "seed", "lr", "weight_decay", "adam_beta1", "adam_beta2", "optimizer", "init_scale",
    "train_size", "random_labels", "train_fraction", "loss", "eval_size", "eval_points",
    "eval_every", "checkpoint_every_s", "tracking_retry_s", "lc_radius", "lc_directions",
    "lc_samples", "adv_eps", "adv_steps", "adv_samples", "adv_points", "deform_points",
    "partition_every", "partition_resolution", "preset", "data_root", "download",
    "data_workers"})


def stack_key(settings: Settings) -> tuple | None:
    """What must be equal for runs to train as one stacked model (``train_stacked``), or None
    for a run that cannot be stacked (a streamed dataset: each member would need its own
    stream). Full-batch runs (``batch_size`` 0) also need equal training sets."""
    if dataset_spec(settings.dataset).streamed:
        return None
    params = settings.to_params()
    key = {k: v for k, v in params.items() if k not in STACKABLE}
    if settings.batch_size == 0:
        key.update(train_size=params["train_size"], train_fraction=params["train_fraction"])
    return tuple(sorted(key.items()))


def check_stackable(members: Sequence[Settings]) -> None:
    """``SettingsError`` naming the first setting that differs between members in a way that
    changes a tensor's shape (see ``STACKABLE``)."""
    if not members:
        raise SettingsError("stacked training needs at least one member")
    if any(stack_key(s) is None for s in members):
        raise SettingsError(f"dataset: {members[0].dataset} is streamed; stacked training needs "
                            "a dataset held as tensors (use ensemble: off)")
    first = dict(stack_key(members[0]))
    for s in members[1:]:
        for k, v in stack_key(s):
            if first.get(k) != v:
                raise SettingsError(f"{k}: stacked members must share it (it changes a tensor's "
                                    f"shape), got {first.get(k)!r} and {v!r}")


def train_stacked(members: Sequence[Settings], *, run_names: Sequence[str] | None = None,
                  experiment: str | None = None, experiment_id: str | None = None,
                  tags: Sequence[Mapping[str, str]] | None = None,
                  resume: Sequence[str] | None = None, progress: bool = True,
                  on_progress: Callable[[int, Mapping[str, Mapping[str, float]]], None]
                  | None = None, progress_every_s: float = 5.0,
                  track: bool = True) -> list[TrainResult]:
    """Train K runs as one stacked model; each is tracked as a full run of its own.

    The members may differ in the settings of ``STACKABLE`` (seed, lr, weight decay, optimizer,
    init scale, train size, random labels, loss, measurement settings); the rest must be
    equal (``check_stackable``). Each member gets what ``train`` would give it (its data, its
    initialisation, its batch order, its optimizer), but one forward, backward and optimizer
    step serves all of them (``stacking``). Its histories equal a single run's up to rounding:
    float64 on the CPU to ~1e-12, float32 to ~1e-6 relative (a batched matmul sums in another
    order). A member that diverges ends FAILED alone (``ensemble.StackedTracker``).

    Args:
        members: K settings.
        run_names: K names (default ``run_name_for`` each).
        experiment, experiment_id: where new runs go (``StackedTracker``).
        tags: K mappings of tags for the new runs (a sweep's parent and trial names).
        resume: the members' K runs to continue from their checkpoints (all at one step:
            ``ensemble.align_checkpoints``; None for a member without a run yet); the settings
            must be the runs' own.
        on_progress: ``on_progress(step, {name: latest metrics})`` at measured steps and at
            least every ``progress_every_s`` seconds.
        track: False: the same loop with no measurement and no MLflow (for benchmarks).
    Returns:
        K ``TrainResult``s (a member that diverged: ``error`` says why, its model as it was).
    """
    from .data import StackedBatches, TensorBatches
    from .ensemble import StackedTracker, align_checkpoints
    from .stacking import StackedAdamW, StackedModules

    members = list(members)
    check_stackable(members)
    names = list(run_names or [run_name_for(s) for s in members])
    device = [check_settings(s) for s in members][0]     # every member checked, up front
    built = [_data_and_model(s, device) for s in members]
    data = [d for d, _ in built]
    stack = StackedModules([m for _, m in built])
    optimizer = StackedAdamW(stack, lr=[s.lr for s in members],
                             beta1=[s.adam_beta1 for s in members],
                             beta2=[s.adam_beta2 for s in members],
                             weight_decay=[s.weight_decay for s in members],
                             decoupled=[s.optimizer == "adamw" for s in members])
    views = [optimizer.member_optimizer(k) for k in range(len(members))]
    states = (align_checkpoints([load_checkpoint(r, device) if r else None for r in resume],
                                names) if resume else [None] * len(members))
    done = next((int(s["step"]) for s in states if s is not None), 0)
    singles = [TensorBatches(d.x_train, d.y_train, s.batch_size, s.seed, done)
               for d, s in zip(data, members)]
    for k, state in enumerate(states):
        if state is not None:
            stack.members[k].load_state_dict(state["model"])     # into the stacked storage
            optimizer.load_member_state_dict(k, views[k], state["optimizer"])
            singles[k].load_state_dict(state)
    batches = StackedBatches(singles)                            # (K, B, ...) per step

    def checkpoint(k: int) -> dict:
        """Member k's state as its own single run saves it (its slice only, copied)."""
        return {"model": {n: t.clone() for n, t in stack.members[k].state_dict().items()},
                "optimizer": optimizer.member_state_dict(k, views[k]),
                **batches.member_state_dict(k), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None}

    spec = [dataset_spec(s.dataset) for s in members]
    tracker = StackedTracker(
        stack.members, train=[(d.x_train, d.y_train) for d in data],
        test=[(d.x_test, d.y_test) for d in data],
        settings=[s.tracker_settings(sp.default_adv_eps) for s, sp in zip(members, spec)],
        run_names=names, experiment=experiment, experiment_id=experiment_id,
        tags=list(tags) if tags is not None else None,
        params=[s.to_params() for s in members], domain=data[0].domain,
        extra_config=[{"settings": dataclasses.asdict(s), "n_train": d.n_train,
                       "stacked": {"members": names, "index": k}}
                      for k, (s, d) in enumerate(zip(members, data))],
        checkpoint=checkpoint, resume=states,
        run_ids=list(resume) if resume else None, progress=progress,
        log_model=members[0].log_model,        # equal within a group (not in STACKABLE)
    ) if track else _UntrackedGroup(len(members))
    losses_of = [s.loss for s in members]
    with tracker, _interrupt_at_step_boundary() as interrupted:
        stack.train()
        for model in stack.members:
            model.train()
        latest: dict[str, Mapping[str, float]] = {}
        next_progress = time.monotonic() + progress_every_s
        for step in range(done + 1, members[0].steps + 1):
            if interrupted:
                stop = KeyboardInterrupt(f"interrupted after step {step - 1}")
                stop.at_step_boundary = True
                raise stop
            x, y = next(batches)                                 # (K, B, ...), (K, B)
            losses = stack.losses(x, y, losses_of, members[0].loss_float64)   # (K,)
            optimizer.zero_grad()
            losses.sum().backward()                              # members are independent
            optimizer.step(warmup_factor(members[0], step))      # warm-up: equal in a group
            measured = tracker.step(step, losses.detach())
            if not tracker.alive:
                break                                            # every member diverged
            if on_progress is not None and (measured or time.monotonic() >= next_progress):
                latest.update({names[k]: v for k, v in measured.items()})
                on_progress(step, latest)
                next_progress = time.monotonic() + progress_every_s
    return [TrainResult(model=stack.members[k], run_id=tracker.run_ids[k],
                        metrics=tracker.history[k].get(members[k].steps, {}),
                        error=str(tracker.failed.get(k, "")))
            for k in range(len(members))]


@contextlib.contextmanager
def _interrupt_at_step_boundary():
    """While training: Ctrl-C (SIGINT) sets a flag that the loop turns into KeyboardInterrupt
    between two steps, never inside an optimizer step. A second Ctrl-C interrupts at once."""
    flag: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if flag:
            signal.default_int_handler(signum, frame)
        flag.append(True)

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _config_settings(config: dict) -> Settings:
    return Settings(**{k: tuple(v) if isinstance(v, list) else v
                       for k, v in config["settings"].items()})


def resume_settings(run_id: str) -> Settings:
    """The settings a run was started with (its ``config.json``)."""
    return _config_settings(run_config(run_id, "resume"))


def draw_partition(run_id: str, step: int | None = None, resolution: int | None = None,
                   out: str | None = None, device: str = "cpu") -> tuple[str, dict[str, float]]:
    """Draw the partition slice of a recorded run at one of its snapshot steps.

    The run's own settings, data subset and three partition points (``config.json``) rebuild
    the model; its weights come from ``partition/weights/step_*.pt`` (stored with every
    snapshot when ``partition_every`` > 0).

    Args:
        run_id: an MLflow run recorded by grok_mlflow, in the current tracking store.
        step: a snapshot step; default the last one.
        resolution: pixels per side; default the run's ``partition_resolution``.
        out: PNG path; default ``partition_<run_id>_step<step>.png``.
        device: where to compute (cpu, cuda, auto).
    Returns:
        (PNG path, ``partition/*`` metric values).
    Raises:
        SettingsError: unknown run, a run without snapshots, or a step it has none for (the
            message lists the available steps).
    """
    from .partition import partition_slice
    from .plots import partition_figure

    config, settings = _run_settings(run_id, "partition", device)
    points = config.get("partition_points")
    steps = snapshot_steps(run_id)
    if not points or not steps:
        raise SettingsError(f"partition: run {run_id} has no partition snapshots "
                            "(it was trained with partition_every 0)")
    step = steps[-1] if step is None else step
    if step not in steps:
        raise SettingsError(f"partition: run {run_id} has no snapshot at step {step}; "
                            f"snapshot steps: {', '.join(map(str, steps))}")
    resolution = resolution or settings.partition_resolution
    data, model = _model_for(settings)
    model.load_state_dict(load_snapshot_weights(run_id, step))
    index = points["train_index"]
    part = partition_slice(model, data.x_train[index], resolution=resolution, seed=settings.seed,
                           input_module=input_module_of(model, settings.lc_input) or None)
    fig = partition_figure(part, points["labels"], f"run {run_id[:8]}, step {step}")
    out = out or f"partition_{run_id}_step{step}.png"
    fig.savefig(out, dpi=100)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return out, part.metrics()


def _run_settings(run_id: str, command: str, device: str) -> tuple[dict, Settings]:
    """A recorded run's ``config.json`` and settings (on ``device``), for rebuilding its model;
    ``SettingsError`` for an unknown run or one that our ``train`` did not record."""
    config = run_config(run_id, command)
    if "settings" not in config:
        raise SettingsError(f"{command}: run {run_id} was not trained by grok_mlflow's train "
                            "(its model cannot be rebuilt here)")
    return config, dataclasses.replace(_config_settings(config), device=device)


def _model_for(settings: Settings):
    """(data on the CPU, the settings' model on their device, initialised with their seed)."""
    device = check_settings(settings)
    data = load_dataset(settings, torch.device("cpu"))
    torch.manual_seed(settings.seed)
    model = build_model(settings, data.input_shape, data.num_classes,
                        dataset_spec(settings.dataset).normalization).to(
                            torch_dtype(settings.dtype))
    return data, model.to(device)


def choose_radius(run_id: str | None = None, preset: str | None = None, step: int | None = None,
                  radii=None, directions=(5, 10, 25), points: int = 200, tolerance: float = 0.1,
                  out: str | None = None, device: str = "cpu"):
    """``grok-mlflow radius``: LC and deformation over radii for a recorded run's network (its
    last checkpoint, or its partition snapshot at ``step``) or a preset's network at
    initialisation; a figure, a table and the recommended radius (``radius.radius_study``).

    With ``run_id`` the figure and table are also logged into that run
    (``radius/radius.png``, ``radius/radius.md``).

    Returns:
        (RadiusStudy, PNG path).
    Raises:
        SettingsError: neither or both of run_id/preset, an unknown run, a step without a
            snapshot (the message lists them), bad radii/directions.
    """
    from .plots import radius_figure
    from .radius import DEFAULT_RADII, radius_study
    from .recorder import log_run_figure, log_run_text

    if (run_id is None) == (preset is None):
        raise SettingsError("radius: give a RUN_ID or --preset FILE (one of them)")
    if run_id is not None:
        _, settings = _run_settings(run_id, "radius", device)
        data, model = _model_for(settings)
        state = load_checkpoint(run_id, next(model.parameters()).device) if step is None else None
        if state is not None:
            weights, step = state["model"], int(state["step"])
        else:
            steps = snapshot_steps(run_id)
            if step is None and not steps:
                raise SettingsError(f"radius: run {run_id} has neither a checkpoint nor a "
                                    "partition snapshot to take weights from")
            step = steps[-1] if step is None else step
            if step not in steps:
                raise SettingsError(f"radius: run {run_id} has no snapshot at step {step}; "
                                    f"snapshot steps: {', '.join(map(str, steps)) or 'none'}")
            weights = load_snapshot_weights(run_id, step)
        model.load_state_dict(weights)
        what = f"run {run_id[:8]}, step {step}"
    else:
        settings = dataclasses.replace(load_preset(preset), device=device)
        data, model = _model_for(settings)
        what = f"{os.path.basename(preset)} at initialisation"
    gen = torch.Generator().manual_seed(settings.seed + 1)
    index = torch.randperm(len(data.x_train), generator=gen)[:points]
    x = data.x_train[index].to(next(model.parameters()).device)
    try:
        study = radius_study(model, x, radii=radii or DEFAULT_RADII, directions=directions,
                             seed=settings.seed, tolerance=tolerance,
                             input_module=input_module_of(model, settings.lc_input) or None)
    except ValueError as err:
        raise SettingsError(f"radius: {err}") from None
    fig = radius_figure(study, what)
    out = out or (f"radius_{run_id}.png" if run_id else
                  f"radius_{os.path.splitext(os.path.basename(preset))[0]}.png")
    fig.savefig(out, dpi=100)
    if run_id is not None:
        log_run_figure(run_id, fig, "radius/radius.png")
        log_run_text(run_id, f"### Choosing LC's radius: {what}\n\n{study.table()}",
                     "radius/radius.md")
    else:
        import matplotlib.pyplot as plt
        plt.close(fig)
    return study, out


def compare_regions(run_id: str, points: int = 20, resolution: int = 64,
                    radius: float | None = None, out: str | None = None, device: str = "cpu"):
    """``grok-mlflow compare-regions``: LC next to exact region counts (paper fig. 26).

    At every partition snapshot of the run (its stored weights): mean LC of ``points`` seeded
    training points (the run's radius and P, unless ``radius`` is given) and the mean number of
    linear regions in the 2-D square of side 2r around each of them
    (``regions.local_region_count``); both trajectories on one figure and their Spearman rank
    correlation, logged into the run (``regions/compare.png``, ``regions/compare.csv``).

    Returns:
        (rows [(step, mean regions, mean LC)], rank correlation, PNG path).
    """
    from .complexity import local_complexity
    from .plots import regions_figure
    from .recorder import log_run_figure, log_run_text
    from .regions import local_region_count, rank_correlation

    _, settings = _run_settings(run_id, "compare-regions", device)
    steps = snapshot_steps(run_id)
    if len(steps) < 2:
        raise SettingsError(f"compare-regions: run {run_id} has {len(steps)} partition "
                            "snapshot(s); it needs two or more (train with partition_every > 0)")
    data, model = _model_for(settings)
    if data.tokens:
        raise SettingsError("compare-regions: counts regions in input space; token models "
                            "are not supported")
    r = radius or settings.lc_radius[0]
    gen = torch.Generator().manual_seed(settings.seed + 1)
    x = data.x_train[torch.randperm(len(data.x_train), generator=gen)[:points]].to(
        next(model.parameters()).device)
    rows = []
    for step in steps:
        model.load_state_dict(load_snapshot_weights(run_id, step))
        regions = local_region_count(model, x, radius=r, resolution=resolution,
                                     seed=settings.seed).double().mean().item()
        lc = local_complexity(model, x, radius=r, n_directions=settings.lc_directions,
                              seed=settings.seed).mean().item()
        rows.append((step, regions, lc))
    rho = rank_correlation(torch.tensor([row[1] for row in rows]),
                           torch.tensor([row[2] for row in rows]))
    fig = regions_figure(rows, rho, f"run {run_id[:8]}: r = {r:g}, {points} points, "
                                    f"{resolution}x{resolution} grid")
    out = out or f"regions_{run_id}.png"
    fig.savefig(out, dpi=100)
    table = "step,mean_regions,mean_lc\n" + "".join(f"{s},{g:.6g},{c:.6g}\n" for s, g, c in rows)
    log_run_figure(run_id, fig, "regions/compare.png")
    log_run_text(run_id, table + f"# spearman,{rho:.6g}\n", "regions/compare.csv")
    return rows, rho, out
