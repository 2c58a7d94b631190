"""The training loop, data on the device, the tracker doing the rest: ``train`` (one run) and
``train_stacked`` (K runs that keep every tensor shape, trained as one stacked model). Both set
up their run(s) and hand one optimisation step to ``_loop``, which owns what is common: the
steps, the Ctrl-C boundary, the tracker's stepping and the progress callback.

Example:
    result = train(Settings(steps=200, eval_points=5))
    result.metrics["acc/test"]
    results = train_stacked([Settings(steps=200, seed=k) for k in range(8)])   # 8 runs
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..measures.evaluation import loss_function
from ..settings import Settings
from ..store.reading import load_checkpoint
from ..tracker.stacked import StackedTracker, align_checkpoints
from ..tracker.tracking import GrokTracker, RunOptions, StepBoundaryInterrupt
from .batches import StackedBatches, TensorBatches, training_batches
from .build import check_settings, data_and_model, run_name_for
from .data import dataset_spec
from .stacking import StackedAdamW, StackedModules, check_stackable

__all__ = ["TrainResult", "train", "train_stacked", "warmup_factor"]

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


@dataclass
class TrainResult:
    """What ``train`` returns: the trained model, its MLflow run, the last measured metrics."""
    model: nn.Module
    run_id: str | None          # None with track=False
    metrics: dict[str, float]
    error: str = ""      # why a stacked member stopped early (it diverged); empty otherwise


class _Untracked:
    """Stands in for ``GrokTracker`` (``members`` None) or ``StackedTracker`` when nothing is
    measured (``track=False``)."""

    settled = False

    def __init__(self, members: int | None = None) -> None:
        self.run_id: str | None = None
        self.last_step: int | None = None
        self.history: Any = {} if members is None else [{} for _ in range(members)]
        self.alive = list(range(members or 0))
        self.failed: dict[int, BaseException] = {}
        self.run_ids: list[str | None] = [None] * (members or 0)

    def __enter__(self) -> "_Untracked":
        return self

    def __exit__(self, *exc) -> Literal[False]:
        return False

    def step(self, step: int, loss=None) -> None:
        self.last_step = step
        return None


def train(settings: Settings, *, experiment: str | None = None, run_name: str | None = None,
          progress: bool = True, track: bool = True, resume: str | None = None,
          on_progress: Callable[[int, Mapping[str, float]], None] | None = None,
          progress_every_s: float = 5.0) -> TrainResult:
    """Train ``settings.model`` on ``settings.dataset`` and track it in MLflow.

    Adam(W) on minibatches drawn without replacement (a fresh seeded permutation each epoch; the
    last incomplete batch of an epoch is dropped; ``batches.training_batches``: indexed on the
    device, or decoded by workers for a streamed dataset), measured and logged by
    ``GrokTracker``, which also checkpoints the training state with every metric flush
    (``checkpoints/last.pt``).
    ``resume=RUN_ID`` continues that run from its last checkpoint (``settings`` should be the
    run's own: see ``resume_settings``); on CPU the result equals an uninterrupted run's.
    ``track=False`` runs the same loop with no measurement and no MLflow (for benchmarks).
    ``on_progress(step, latest metrics)`` is called at every measured step and at least every
    ``progress_every_s`` seconds (a sweep's trials report their progress through it).
    """
    device = check_settings(settings)
    data, model = data_and_model(settings, device)
    # fused: one kernel for the whole update on CUDA (same maths; the step is launch-bound)
    optimizer = OPTIMIZERS[settings.optimizer](model.parameters(), lr=settings.lr,
                                               betas=(settings.adam_beta1, settings.adam_beta2),
                                               weight_decay=settings.weight_decay,
                                               fused=device.type == "cuda" or None)
    loss_fn = loss_function(settings.loss, settings.loss_float64)
    state = load_checkpoint(resume, device) if resume else None
    done = 0 if state is None else int(state["step"])
    batches = training_batches(data, settings, done=done)   # (B, ...) inputs on the device

    def checkpoint() -> dict:
        return _checkpoint(model.state_dict(), optimizer.state_dict(), batches.state_dict(),
                           device)

    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        batches.load_state_dict(state)
        _restore_rng(state, device)

    def one_step(step: int) -> Tensor:
        x, y = next(batches)
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if step <= settings.warmup_steps:                       # a function of the step:
            for group in optimizer.param_groups:                 # nothing to checkpoint
                group["lr"] = settings.lr * warmup_factor(settings, step)
        optimizer.step()
        return loss

    tracker = GrokTracker(
        model, train=(data.x_train, data.y_train), test=(data.x_test, data.y_test),
        settings=settings.tracker_settings(dataset_spec(settings.dataset).default_adv_eps),
        domain=data.domain,
        run=RunOptions(
            name=run_name or run_name_for(settings), experiment=experiment,
            params=settings.to_params(), run_id=resume, progress=progress,
            checkpoint=checkpoint, resume=state,
            log_model=settings.log_model, tune_report=False,    # a sweep's trial reports itself
            # the project's settings (resume and partition rebuild the run from them); a
            # streamed dataset's x_train is only its evaluation subset
            extra_config={"settings": dataclasses.asdict(settings), "n_train": data.n_train}),
    ) if track else _Untracked()
    # the stream's workers stop before the tracker's final measurement and artifacts
    with tracker, contextlib.closing(batches):
        model.train()
        _loop(range(done + 1, settings.steps + 1), one_step, tracker, on_progress,
              progress_every_s, latest=lambda latest, measured: measured or latest,
              stop=lambda step, measured: tracker.settled)
        final = tracker.history.get(tracker.last_step, {})
    return TrainResult(model=model, run_id=tracker.run_id, metrics=final)


def train_stacked(members: Sequence[Settings], *, run_names: Sequence[str] | None = None,
                  experiment: str | None = None, experiment_id: str | None = None,
                  tags: Sequence[Mapping[str, str]] | None = None,
                  resume: Sequence[str | None] | None = None, progress: bool = True,
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
    order). A member that diverges ends FAILED alone (``tracker.stacked.StackedTracker``).

    Args:
        members: K settings.
        run_names: K names (default ``run_name_for`` each).
        experiment, experiment_id: where new runs go (``StackedTracker``).
        tags: K mappings of tags for the new runs (a sweep's parent and trial names).
        resume: the members' K runs to continue from their checkpoints (all at one step:
            ``tracker.stacked.align_checkpoints``; None for a member without a run yet); the settings
            must be the runs' own.
        on_progress: ``on_progress(step, {name: latest metrics})`` at measured steps and at
            least every ``progress_every_s`` seconds.
        track: False: the same loop with no measurement and no MLflow (for benchmarks).
    Returns:
        K ``TrainResult``s (a member that diverged: ``error`` says why, its model as it was).
    """
    members = list(members)
    check_stackable(members)
    names = list(run_names or [run_name_for(s) for s in members])
    device = [check_settings(s) for s in members][0]     # every member checked, up front
    built = [data_and_model(s, device) for s in members]
    data = [d for d, _ in built]
    states = (align_checkpoints([load_checkpoint(r, device) if r else None for r in resume],
                                names) if resume else [None] * len(members))
    done = next((int(s["step"]) for s in states if s is not None), 0)
    singles = [TensorBatches(d.x_train, d.y_train, s.batch_size, s.seed, done)
               for d, s in zip(data, members)]
    group = _Group(members, [m for _, m in built], singles, device)
    for k, state in enumerate(states):
        if state is not None:
            group.stack.members[k].load_state_dict(state["model"])   # into the stacked storage
            group.optimizer.load_member_state_dict(k, group.views[k], state["optimizer"])
            singles[k].load_state_dict(state)
    if any(s is not None for s in states):
        _restore_rng(next(s for s in states if s is not None), device)
    group.start()
    models = list(group.stack.members)          # the K modules the trackers measure, for good

    def latest(latest: Mapping, measured: Mapping[int, Mapping[str, float]]) -> dict:
        return {**latest, **{names[k]: v for k, v in measured.items()}}

    spec = [dataset_spec(s.dataset) for s in members]
    tracker = StackedTracker(
        models, train=[(d.x_train, d.y_train) for d in data],
        test=[(d.x_test, d.y_test) for d in data],
        settings=[s.tracker_settings(sp.default_adv_eps) for s, sp in zip(members, spec)],
        runs=[RunOptions(
            name=names[k], experiment=experiment,
            tags=tags[k] if tags is not None else None, params=s.to_params(),
            run_id=resume[k] if resume else None,
            log_model=members[0].log_model,     # equal within a group (not in STACKABLE)
            extra_config={"settings": dataclasses.asdict(s), "n_train": d.n_train,
                          "stacked": {"members": names, "index": k}})
            for k, (s, d) in enumerate(zip(members, data))],
        experiment_id=experiment_id, domain=data[0].domain,
        checkpoint=group.checkpoint, resume=states, progress=progress,
    ) if track else _Untracked(len(members))
    def one_step(step: int) -> Tensor:
        alive = tracker.alive
        if len(alive) < len(group.keep):            # a member settled or failed: it leaves
            group.leave([k for k in group.keep if k not in set(alive)])
        return group.step(step)

    with tracker:
        group.stack.train()
        for model in models:
            model.train()
        _loop(range(done + 1, members[0].steps + 1), one_step, tracker, on_progress,
              progress_every_s, latest=latest,
              stop=lambda step, measured: not tracker.alive)    # every member diverged
    return [TrainResult(model=models[k], run_id=tracker.run_ids[k],
                        metrics=tracker.history[k].get(max(tracker.history[k], default=0), {}),
                        error=str(tracker.failed.get(k, "")))
            for k in range(len(members))]


class _Group:
    """The members of a stacked group that still train: one ``StackedModules``, its
    ``StackedAdamW`` and ``StackedBatches``. A member that settles (``until: settled``) or
    fails leaves (``leave``): the others are stacked again with their parameters, optimizer
    state and batch order, so the group's step costs what its members still need. Member k
    keeps its index k (the trackers', the runs'); ``keep`` lists those still in."""

    def __init__(self, members: Sequence[Settings], models: Sequence[nn.Module],
                 singles: Sequence[TensorBatches], device: torch.device) -> None:
        self.members, self.singles, self.device = list(members), list(singles), device
        self.keep = list(range(len(members)))
        self._build(list(models), None)

    def _build(self, models: list[nn.Module], optimizer_states: list | None) -> None:
        kept = [self.members[k] for k in self.keep]
        self.stack = StackedModules(models)           # rebinds the modules to new storage
        self.optimizer = StackedAdamW(self.stack, lr=[s.lr for s in kept],
                                      beta1=[s.adam_beta1 for s in kept],
                                      beta2=[s.adam_beta2 for s in kept],
                                      weight_decay=[s.weight_decay for s in kept],
                                      decoupled=[s.optimizer == "adamw" for s in kept])
        self.views = [self.optimizer.member_optimizer(i) for i in range(len(kept))]
        for i, state in enumerate(optimizer_states or []):
            self.optimizer.load_member_state_dict(i, self.views[i], state)
        if optimizer_states is not None:            # re-stacked: the batches go on too
            self.start()

    def start(self) -> None:
        """The stacked batches, from the members' own (restored) batch states: call once the
        members' checkpoints are loaded (``StackedBatches`` copies their orders)."""
        self.batches = StackedBatches([self.singles[k] for k in self.keep])

    def checkpoint(self, k: int) -> dict:
        """Member k's state as its own single run saves it (its slice only, copied)."""
        i = self.keep.index(k)
        return _checkpoint({n: t.clone() for n, t in self.stack.members[i].state_dict().items()},
                           self.optimizer.member_state_dict(i, self.views[i]),
                           self.batches.member_state_dict(i), self.device)

    def step(self, step: int) -> Tensor:
        """One optimisation step of every member still in; (K,) losses, NaN for those out."""
        x, y = next(self.batches)                                # (K', B, ...), (K', B)
        first = self.members[self.keep[0]]
        losses = self.stack.losses(x, y, [self.members[k].loss for k in self.keep],
                                   first.loss_float64)          # (K',)
        self.optimizer.zero_grad()
        losses.sum().backward()                                  # members are independent
        self.optimizer.step(warmup_factor(first, step))         # warm-up: equal in a group
        full = torch.full((len(self.members),), float("nan"), dtype=losses.dtype,
                          device=losses.device)
        full[self.keep] = losses.detach()
        return full

    def leave(self, gone: Sequence[int]) -> None:
        """Members ``gone`` stop training; the rest are stacked again (nothing if none left)."""
        keep = [k for k in self.keep if k not in set(gone)]
        if len(keep) == len(self.keep) or not keep:
            return
        position = {k: i for i, k in enumerate(self.keep)}
        states = [self.optimizer.member_state_dict(position[k], self.views[position[k]])
                  for k in keep]
        models = [self.stack.members[position[k]] for k in keep]
        for k in keep:                                # batches drawn so far, for each member
            self.singles[k].done = self.batches.done
        self.keep = keep
        self._build(models, states)


def _loop(steps: range, one_step: Callable[[int], Tensor], tracker: Any,
          on_progress: Callable[[int, Mapping], None] | None, progress_every_s: float,
          latest: Callable[[Mapping, Any], Mapping],
          stop: Callable[[int, Any], bool] | None = None) -> None:
    """The training loop for one run or a stacked group: ``one_step(step)`` takes an
    optimisation step and returns the loss (or the K members' losses), ``tracker.step``
    measures what is due, ``on_progress(step, latest(...))`` reports at measured steps and at
    least every ``progress_every_s`` seconds. Ctrl-C stops it between two steps
    (``StepBoundaryInterrupt``: the tracker checkpoints that step); ``stop(step, measured)``
    True stops it after that step (a settled run, a group whose every member diverged)."""
    with _interrupt_at_step_boundary() as interrupted:
        shown: Mapping = {}
        next_progress = time.monotonic() + progress_every_s
        for step in steps:
            if interrupted:
                raise StepBoundaryInterrupt(f"interrupted after step {step - 1}")
            loss = one_step(step)
            measured = tracker.step(step, loss)
            if on_progress is not None and (measured or time.monotonic() >= next_progress):
                shown = latest(shown, measured)
                on_progress(step, shown)
                next_progress = time.monotonic() + progress_every_s
            if stop is not None and stop(step, measured):
                break


def _checkpoint(model: Mapping[str, Tensor], optimizer: Mapping[str, Any],
                batches: Mapping[str, Any], device: torch.device) -> dict:
    """A run's training state as its checkpoint keeps it (the tracker adds step and history)."""
    return {"model": model, "optimizer": optimizer, **batches,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else None}


def _restore_rng(state: Mapping[str, Any], device: torch.device) -> None:
    """The random number generators as a checkpoint (``_checkpoint``) saved them."""
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and device.type == "cuda":
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def warmup_factor(settings: Settings, step: int) -> float:
    """The learning rate's factor at optimisation step ``step`` (1-based): min(step / N, 1) for
    N = ``warmup_steps`` (N = 0: always 1). Nanda et al.'s LambdaLR gives min(s / 10, 1) at their
    0-based step s, so their first update has lr 0; here the first has lr / N."""
    if settings.warmup_steps == 0:
        return 1.0
    return min(step / settings.warmup_steps, 1.0)


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
