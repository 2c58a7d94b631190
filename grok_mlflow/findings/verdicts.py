"""A claim judged over a sweep's trials: the rules of ``claims.RULES`` as code.

Each trial is (its swept settings, its metrics). ``evaluate`` reads the claim's quantity off
every trial (at one LC radius), summarises each swept value over its seeds (a phase step by
its median, Kaplan-Meier where some trials are censored; any other quantity by its mean) and
decides: for absent / present by the fraction of trials with its Clopper-Pearson interval; for a
trend by a permutation trend test and the effect's bootstrap interval; for constant and
rise_then_fall by the spread or the bulge with its interval. ``evaluate_all`` gives one verdict
per radius read.

Example:
    from grok_mlflow.findings.claims import parse_claims
    claims = parse_claims(spec_yaml["claims"], grid={"width": [16, 64, 256]})
    trials = [({"width": w, "seed": s}, {"grok/migration_onset_step": m * (1 + 0.01 * s)})
              for w, m in ((16, 900.0), (64, 500.0), (256, 300.0)) for s in range(3)]
    verdict = evaluate(claims[0], trials)
    verdict.status, round(verdict.effect)
    # -> ('supported', -24)        (-24% per doubling of width)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.stats import binomtest, spearmanr

from .claims import MIN_VALUES, Claim, Verdict, radius_dependent
from .statistics import (
    ALPHA,
    N_PERMUTATIONS,
    decode,
    encode,
    gehan_scores,
    km_median,
    percentile_interval,
    slope,
    stratified_bootstrap,
    trend_test,
)

__all__ = ["censored_step", "evaluate", "evaluate_all", "measured_radii", "spearman"]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (``scipy.stats.spearmanr``, average ranks for ties), rounded
    to 12 digits (so that 4 values one swap apart give 0.8, not 0.7999999999999998); nan when
    either side is constant."""
    if len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return round(float(spearmanr(x, y).statistic), 12)


def censored_step(metrics: Mapping[str, float], key: str) -> int | None:
    """The last step of a trial whose quantity ``key`` is right-censored there (its phase under
    way or not yet seen: ``grok/<name>_censored`` = 1, ``..._low`` the last step), else None.
    A censored shape quantity (``descent_depth``) is not a step: None (read as measured). A
    delay (``.../delay_steps``) is censored with its robustness onset."""
    if key.endswith("/delay_steps"):
        key = key[: -len("delay_steps")] + "robustness_onset_step"
    if not key.endswith("_step"):
        return None
    flag = metrics.get(key[: -len("_step")] + "_censored")
    low = metrics.get(key + "_low")
    if flag is None or flag < 0.5 or low is None or not np.isfinite(low):
        return None
    return int(low)


def _key_at(quantity: str, radius: float | None) -> str:
    """The metric key of an LC quantity at ``radius``: ``grok_r{r}/...`` or ``lc_r{r}/...``."""
    if radius is None:
        return quantity
    head, rest = quantity.split("/", 1)
    return f"{head}_r{radius:g}/{rest}"


def measured_radii(quantity: str, trials) -> list[float]:
    """The radii at which the trials record an LC quantity (``grok_r{r}/`` or ``lc_r{r}/``)."""
    head, rest = quantity.split("/", 1)
    pattern = re.compile(rf"^{head}_r([0-9.e-]+)/{re.escape(rest)}$")
    found = {float(m.group(1)) for _, metrics in trials for k in metrics
             if (m := pattern.match(k))}
    return sorted(found)


def evaluate_all(claim: Claim, trials: Sequence[tuple[Mapping[str, Any], Mapping[str, float]]],
                 values: Sequence[Any] | None = None, setting: str = "") -> list[Verdict]:
    """The verdicts on ``claim``: one, or for an LC quantity one per radius it is read at (the
    claim's ``radius``, else the paper's where measured, else every measured radius)."""
    if not radius_dependent(claim.quantity):
        return [evaluate(claim, trials, values, setting=setting)]
    radii = measured_radii(claim.quantity, trials)
    wanted = claim.radius if claim.radius is not None else claim.paper.radius
    if claim.radius is not None and radii and not any(math.isclose(claim.radius, r)
                                                       for r in radii):
        return [Verdict(claim, "inconclusive", f"r = {claim.radius:g} was not measured "
                        f"(measured: {', '.join(f'{r:g}' for r in radii)})",
                        radius=claim.radius)]
    if wanted is not None and any(math.isclose(wanted, r) for r in radii):
        radii = [wanted]
    return [evaluate(claim, trials, values, radius=r, setting=setting) for r in radii] or [
        evaluate(claim, trials, values, setting=setting)]


def _coverage(claim: Claim, order: list) -> str | None:
    """Why the sweep does not cover the range the claim is about, or None."""
    reach = claim.paper.reach
    numbers = [v for v in order if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if reach is None or not numbers:
        return None
    lo, hi = min(numbers), max(numbers)
    if lo <= reach[0] and hi >= reach[1]:
        return None
    note = f" ({claim.paper.note})" if claim.paper.note else ""
    return (f"the claim is about {claim.versus} {reach[0]:g}-{reach[1]:g} in the paper{note}; "
            f"this sweep covers {lo:g}-{hi:g}: not covered")


def _setting_note(claim: Claim, radius: float | None, setting: str) -> str:
    """How the sweep's setting differs from the paper's, in words ('' if the claim names none)."""
    p, parts = claim.paper, []
    if p.radius is not None and radius is not None and not math.isclose(p.radius, radius):
        parts.append(f"the paper reads r = {p.radius:g}")
    if p.model or p.data:
        where = " on ".join(x for x in (p.model, p.data) if x)
        parts.append(f"the paper: {where}" + (f"; this sweep: {setting}" if setting else ""))
    return "; ".join(parts)


@dataclass(frozen=True)
class _Trial:
    """One trial at a swept value: its quantity, the bracket of a phase step (the measured steps
    around it; ``high`` inf when censored) and whether it is right-censored at ``value``."""

    value: float
    low: float
    high: float
    censored: bool = False


@dataclass
class _Table:
    """A claim's trials at each swept value (index into ``order``); ``steps``: the quantity is a
    phase step, summarised per value by its (Kaplan-Meier) median, else by the mean."""

    order: list
    by_value: dict[int, list[_Trial]]
    n: int
    steps: bool
    bracketed: bool

    @property
    def xs(self) -> list[int]:
        return sorted(self.by_value)

    @property
    def trials(self) -> list[_Trial]:
        return [t for i in self.xs for t in self.by_value[i]]

    @property
    def n_censored(self) -> int:
        return sum(t.censored for t in self.trials)

    @property
    def k(self) -> int:
        return len(self.trials)

    @property
    def seeds(self) -> int:
        return min(len(self.by_value[i]) for i in self.xs)

    def groups(self) -> list[np.ndarray]:
        """Each value's trials, censored ones as negative steps (``statistics.encode``)."""
        return [encode([t.value for t in self.by_value[i]],
                       [t.censored for t in self.by_value[i]]) for i in self.xs]

    def centers(self) -> list[float]:
        """Each value's median (Kaplan-Meier where censored: inf when that median is itself
        censored) for a phase step, else its mean."""
        return [float(_center(g, self.steps)) for g in self.groups()]

    def points(self) -> tuple:
        centers = dict(zip(self.xs, self.centers()))
        return tuple((self.order[i], centers.get(i)) for i in range(len(self.order)))

    def brackets(self) -> tuple[list[float], list[float]]:
        """The mean bracket at each swept value (low, high)."""
        lows = [float(np.mean([t.low for t in self.by_value[i]])) for i in self.xs]
        highs = [float(np.mean([t.high for t in self.by_value[i]])) for i in self.xs]
        return lows, highs

    def resolved(self) -> bool:
        """Whether some two swept values' mean brackets do not overlap (always, for a
        quantity without brackets)."""
        lows, highs = self.brackets()
        return not self.bracketed or max(lows) > min(highs)

    def brackets_text(self) -> str:
        lows, highs = self.brackets()
        return "; brackets " + ", ".join(f"{self.order[i]}: {lo:,.0f}-{hi:,.0f}" for i, lo, hi
                                          in zip(self.xs, lows, highs))


def _center(coded: np.ndarray, steps: bool, bound: bool = False) -> float:
    """One value's summary: the Kaplan-Meier median of its steps (inf when censored; with
    ``bound``, the last step instead: a lower bound), else the mean of its values."""
    if not steps:
        return float(np.mean(coded))
    values, censored = decode(coded)
    if not censored.any():
        return float(np.median(values))
    median = km_median(values, censored).estimate
    return float(values.max()) if bound and not math.isfinite(median) else median


def _table(chosen, order: list, versus: str, q: str) -> _Table:
    by_value: dict[int, list[_Trial]] = {}
    bracketed = False
    for o, m in chosen:
        i = order.index(o[versus])
        budget = censored_step(m, q)
        if budget is not None:          # under way or not yet seen: later than its last step
            by_value.setdefault(i, []).append(_Trial(float(budget), float(budget), math.inf,
                                                     True))
            bracketed = True
        elif m.get(q) is not None and np.isfinite(m[q]):
            v = float(m[q])
            bracketed |= q + "_low" in m
            by_value.setdefault(i, []).append(
                _Trial(v, float(m.get(q + "_low", v)), float(m.get(q + "_high", v))))
    return _Table(order, by_value, len(chosen), q.endswith("_step"), bracketed)


@dataclass(frozen=True)
class _Scale:
    """How an effect is measured: the swept axis (log2 of the value, or its place in the
    spec's order) and the quantity's (log: a relative change in %, else absolute)."""

    x: dict[int, float]
    per: str
    log: bool

    def unit(self) -> str:
        return ("% " if self.log else "") + self.per

    def effect(self, slope_: np.ndarray) -> np.ndarray:
        """The slope on the transformed quantity as the reported effect."""
        return 100.0 * np.expm1(slope_) if self.log else slope_

    def text(self, value: float, interval: tuple[float, float] | None) -> str:
        fmt = (lambda v: f"{v:+.1f}%") if self.log else (lambda v: f"{v:+.3g}")
        span = (f" [{1 - ALPHA:.0%} interval {fmt(interval[0])}, {fmt(interval[1])}]"
                if interval else " (no interval: one trial at some value)")
        return f"{fmt(value)} {self.per}{span}"


def _scale(claim: Claim, table: _Table, q: str) -> _Scale:
    values = [table.order[i] for i in table.xs]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                  for v in values)
    if numeric:
        x = {i: math.log2(table.order[i]) for i in table.xs}
        per = f"per doubling of {claim.versus}"
    else:
        x = {i: float(i) for i in table.xs}
        per = f"per step of {claim.versus} along {', '.join(str(v) for v in table.order)}"
    fraction_like = q.startswith(("acc/", "adv/acc/")) or q.endswith("descent_depth")
    positive = all(t.value > 0 for t in table.trials)
    return _Scale(x, per, positive and not fraction_like)


def _slopes(table: _Table, scale: _Scale, groups: Sequence[np.ndarray]) -> np.ndarray:
    """The effect (``_Scale.effect`` of the slope of the per-value summaries on the swept axis)
    of groups that may carry resamples on the last axis; nan where a median is censored."""
    xs = [scale.x[i] for i in table.xs]
    if any(np.any(g < 0) for g in groups):        # censored: Kaplan-Meier, one resample at a time
        # a resample whose median is censored takes its last step (a lower bound; said)
        centers = np.array([_center(g, True, bound=True) for g in groups])
    elif table.steps:
        centers = np.stack([np.median(g, axis=-1) for g in groups], axis=-1)
    else:
        centers = np.stack([np.mean(g, axis=-1) for g in groups], axis=-1)
    y = np.log(centers) if scale.log else centers
    return scale.effect(slope(xs, y))


def _censored_medians(table: _Table) -> np.ndarray:
    """For each bootstrap resample (the same seeded ones as the interval), whether some value's
    median was censored."""
    def any_open(*groups: np.ndarray, axis: int = -1) -> float:
        return float(any(not math.isfinite(_center(g, True)) for g in groups))
    dist = stratified_bootstrap(table.groups(), any_open, vectorized=False)
    return np.zeros(1) if dist is None else dist


def _trend_p(table: _Table, scale: _Scale) -> tuple[float, float]:
    """One-sided p (rising, falling) over all trials: a permutation test of the Gehan scores
    (ranks, without censoring) along the swept axis (``statistics.trend_test``)."""
    trials = [(scale.x[i], t) for i in table.xs for t in table.by_value[i]]
    scores = gehan_scores([t.value for _, t in trials], [t.censored for _, t in trials])
    return trend_test([x for x, _ in trials], scores)


def _presence(claim: Claim, trials, chosen, order: list, q: str, verdict) -> Verdict:
    """absent / present: the fraction of trials that show the quantity, with its interval."""
    n = len(chosen)
    k = sum(m.get(q) is not None and np.isfinite(m[q]) for _, m in chosen)
    # points: the fraction of trials at each swept value that show the quantity: over every
    # trial when `versus` is a `where` setting (the claim's arm seen beside the trials it leaves
    # out), else over the claim's own trials (``versus: seed`` within one arm)
    among = trials if claim.versus in claim.where else chosen
    shown = [o for o, m in among if m.get(q) is not None and np.isfinite(m[q])]
    points = tuple((x, sum(o[claim.versus] == x for o in shown)
                    / sum(o[claim.versus] == x for o, _ in among))
                   for x in order if any(o[claim.versus] == x for o, _ in among))
    # a trial without the quantity whose phase was not yet seen at its last step is no
    # evidence against 'present': it may come later
    open_ = sum(censored_step(m, q) is not None and not (m.get(q) is not None
                                                          and np.isfinite(m[q]))
                for _, m in chosen)
    wrong = k if claim.trend == "absent" else n - k - open_
    ci = binomtest(k, n).proportion_ci(1 - ALPHA, method="exact")
    later = [step for _, m in chosen if (step := censored_step(m, q)) is not None]
    said = (f"{claim.quantity} present in {k / n:.0%} of trials [{1 - ALPHA:.0%} interval {ci.low:.0%}, "
            f"{ci.high:.0%}] ({k} of {n}; Clopper-Pearson; {len(later)} of {n} censored)")
    if later:                    # not seen by the last step is not the same as absent
        said += (f"; in {len(later)} of them not seen by step {max(later):,}, its last (it may "
                 f"come later)")
    status = ("supported" if wrong == 0 and (claim.trend == "absent" or k == n)
              else "contradicted" if wrong > n / 2 else "inconclusive")
    others = [m for o, m in trials if not all(o.get(a) == v for a, v in claim.where.items())]
    if claim.trend == "absent" and claim.where and others and status == "supported" and not any(
            m.get(q) is not None and np.isfinite(m[q]) for m in others):
        # absent where `where` holds, and absent everywhere else too: nothing was removed
        status = "inconclusive"
        said += (f"; absent in the {len(others)} other trials too: no contrast to attribute to "
                 + ", ".join(f"{a}={v}" for a, v in claim.where.items()))
    return verdict(status, said, points=points, effect=k / n,
                   effect_interval=(float(ci.low), float(ci.high)),
                   effect_unit="fraction of trials", n_censored=len(later))


def evaluate(claim: Claim, trials: Sequence[tuple[Mapping[str, Any], Mapping[str, float]]],
             values: Sequence[Any] | None = None, *, radius: float | None = None,
             setting: str = "") -> Verdict:
    """The verdict on ``claim`` from ``trials``: (its swept settings, its metrics) each, by the
    rules in ``RULES``.

    Args:
        values: the swept values of ``claim.versus`` in the spec's order (default: as they first
            appear in ``trials``).
        radius: read an LC quantity at this radius (``grok_r{r}/...``); None: as named.
        setting: this sweep's model and data in words, for the comparison with the paper's.
    """
    chosen = [(o, m) for o, m in trials
              if all(o.get(k) == v for k, v in claim.where.items())]
    q = _key_at(claim.quantity, radius)
    at = f"r = {radius:g}: " if radius is not None else ""
    note = _setting_note(claim, radius, setting)

    def verdict(status, reason, **kw) -> Verdict:
        return Verdict(claim, status, at + reason + (f"; {note}" if note else ""),
                       radius=radius, **kw)

    if not chosen:
        return verdict("inconclusive", "no trial matches `where`")
    order = list(values) if values is not None else list(dict.fromkeys(
        o[claim.versus] for o, _ in chosen))
    if claim.trend in ("absent", "present"):
        return _presence(claim, trials, chosen, order, q, verdict)
    table = _table(chosen, order, claim.versus, q)
    needed = 2 if claim.trend == "constant" else MIN_VALUES
    n, k = table.n, table.k
    if k < n / 2 or len(table.xs) < needed:
        return verdict("inconclusive", f"{claim.quantity} not seen in {n - k} of {n} trials "
                       f"({len(table.xs)} swept values with it; {needed} needed)",
                       points=table.points(), n_censored=table.n_censored)
    if table.n_censored == k:
        return verdict("inconclusive", f"every trial's {claim.quantity} is censored (under way "
                       f"or not yet seen at its last step): the verdict would rest on censored "
                       f"trials alone", points=table.points(), n_censored=k)
    return _judge(claim, table, q, verdict)


def _judge(claim: Claim, table: _Table, q: str, verdict) -> Verdict:
    """A trend, constant or rise-then-fall claim's verdict over ``table`` (module ``RULES``)."""
    scale = _scale(claim, table, q)
    centers = table.centers()
    rising, falling = _trend_p(table, scale)
    n, k, seeds = table.n, table.k, table.seeds
    over = (f"{len(table.xs)} values x {seeds}{'+' if k > seeds * len(table.xs) else ''} "
            f"seed{'s' if seeds > 1 else ''}; {table.n_censored} of {n} censored"
            + (f"; {n - k} without it" if n - k else ""))
    what = "medians" if table.steps else "means"
    finite = [c for c in centers if math.isfinite(c)]
    rho = spearman([scale.x[i] for i, c in zip(table.xs, centers) if math.isfinite(c)], finite)
    rho_text = "" if math.isnan(rho) else f"; Spearman rho of the {what} {rho:+.2f}"
    kw: dict[str, Any] = dict(rho=rho, points=table.points(), n_censored=table.n_censored,
                              seeds=seeds)
    uncovered = _coverage(claim, table.order)
    open_ = [table.order[i] for i, c in zip(table.xs, centers) if not math.isfinite(c)]
    if open_:
        return verdict("not covered" if uncovered else "inconclusive",
                       (f"{uncovered}; " if uncovered else "")
                       + f"the median at {claim.versus} = {', '.join(map(str, open_))} is "
                       f"censored (half or more of its trials not seen by their last step): "
                       f"no effect can be measured ({over})", **kw)
    if claim.trend in ("increasing", "decreasing"):
        return _monotone(claim, table, scale, (rising, falling), over, rho_text, uncovered, kw,
                         verdict)
    two_sided = min(1.0, 2 * min(rising, falling))
    kw["p_value"] = two_sided
    tail = f" ({over}); monotone trend p = {two_sided:.2g} (two-sided){rho_text}"
    if claim.trend == "constant":
        return _constant(claim, table, tail, kw, two_sided, uncovered, verdict)
    return _rise_then_fall(claim, table, tail, kw, two_sided, uncovered, verdict)


def _monotone(claim: Claim, table: _Table, scale: _Scale, ps: tuple[float, float], over: str,
              rho_text: str, uncovered: str | None, kw: dict, verdict) -> Verdict:
    """increasing / decreasing: the effect per doubling (or per step) with its interval; the
    trend test in the claim's direction decides, each side at ``ALPHA`` / 2."""
    sign = -1.0 if claim.trend == "decreasing" else 1.0
    effect = float(_slopes(table, scale, table.groups()))
    censored = table.n_censored > 0
    dist = stratified_bootstrap(table.groups(), lambda *g, axis=-1: _slopes(table, scale, g),
                                vectorized=not censored)
    ci = percentile_interval(dist)
    if censored and ci is not None:
        bounded = float(np.mean(_censored_medians(table)))
        if bounded:
            over += (f"; in {bounded:.0%} of resamples a value's median was censored and "
                     f"taken at its last step")
    p_with, p_against = ps if sign > 0 else ps[::-1]
    n_trials = table.k
    exact = math.factorial(n_trials) <= N_PERMUTATIONS
    test = (f"trend p = {p_with:.2g} ({claim.trend}, one-sided; permutation test of "
            f"{'Gehan scores' if censored else 'ranks'} over {n_trials} trials, "
            f"{'exact' if exact else f'{N_PERMUTATIONS} seeded resamples'})")
    text = f"{scale.text(effect, ci)} ({over}); {test}{rho_text}"
    kw.update(effect=effect, effect_interval=ci, effect_unit=scale.unit(), p_value=p_with)
    if uncovered:
        return verdict("not covered", f"{uncovered}; {text}", **kw)
    if ci is not None and p_with < ALPHA / 2 and sign * (ci[0] if sign > 0 else ci[1]) > 0:
        return verdict("supported", text + (table.brackets_text() if table.bracketed
                                            and not table.resolved() else ""), **kw)
    if not table.resolved():
        return verdict("not resolved", f"the values differ by less than their phase steps' "
                       f"brackets{table.brackets_text()}; {text}", **kw)
    against = (ci is not None and p_against < ALPHA / 2
               and sign * (ci[1] if sign > 0 else ci[0]) < 0)
    return verdict("contradicted" if against else "inconclusive", text, **kw)


def _relative_spread(*groups: np.ndarray, steps: bool = False, axis: int = -1) -> np.ndarray:
    """(max - min) / mean magnitude of the per-value summaries (resamples on the last axis)."""
    centers = np.stack([np.median(g, axis=-1) if steps else np.mean(g, axis=-1)
                        for g in groups], axis=-1)
    return np.ptp(centers, axis=-1) / np.maximum(np.mean(np.abs(centers), axis=-1), 1e-12)


def _constant(claim, table: _Table, tail: str, kw: dict, two_sided: float,
              uncovered: str | None, verdict) -> Verdict:
    """constant: the spread of the per-value summaries, relative to their mean, with its
    interval; supported when the whole interval is within the tolerance."""
    groups = table.groups()
    if table.n_censored:
        centers = np.array(table.centers())
        rel = float(np.ptp(centers) / max(float(np.mean(np.abs(centers))), 1e-12))

        def spread(*g, axis=-1):
            c = np.array([_center(x, True, bound=True) for x in g])
            return np.ptp(c) / max(float(np.mean(np.abs(c))), 1e-12)
        dist = stratified_bootstrap(groups, spread, vectorized=False)
    else:
        rel = float(_relative_spread(*groups, steps=table.steps))
        dist = stratified_bootstrap(
            groups, lambda *g, axis=-1: _relative_spread(*g, steps=table.steps))
    ci = percentile_interval(dist)
    span = (f" [{1 - ALPHA:.0%} interval {ci[0]:.0%}, {ci[1]:.0%}]" if ci
            else " (no interval: one trial at some value)")
    text = (f"spread {rel:.0%} of the {'median' if table.steps else 'mean'}{span} "
            f"(tolerance {claim.tolerance:.0%}){tail}")
    kw.update(effect=rel, effect_interval=ci, effect_unit="relative spread (max - min) / mean")
    if uncovered:
        return verdict("not covered", f"{uncovered}; {text}", **kw)
    if ci is not None and ci[1] <= claim.tolerance:
        return verdict("supported", text, **kw)
    if not table.resolved():
        return verdict("not resolved", f"the values differ by less than their phase steps' "
                       f"brackets{table.brackets_text()}; {text}", **kw)
    against = ci is not None and ci[0] > claim.tolerance and two_sided < ALPHA
    return verdict("contradicted" if against else "inconclusive", text, **kw)


def _rise_then_fall(claim, table: _Table, tail: str, kw: dict, two_sided: float,
                    uncovered: str | None, verdict) -> Verdict:
    """rise_then_fall: how far the highest inner value's summary stands above the higher end,
    as a share of the summaries' range, with its interval; supported when the interval's lower
    end exceeds the tolerance."""
    steps = table.steps

    def bulge(*groups: np.ndarray, axis: int = -1) -> np.ndarray:
        centers = np.stack([np.median(g, axis=-1) if steps else np.mean(g, axis=-1)
                            for g in groups], axis=-1)
        inner = np.max(centers[..., 1:-1], axis=-1)
        ends = np.maximum(centers[..., 0], centers[..., -1])
        return (inner - ends) / np.maximum(np.ptp(centers, axis=-1), 1e-12)

    if table.n_censored:        # a rise and fall of censored medians: not measured here
        return verdict("inconclusive", f"censored trials: a shape over medians with censored "
                       f"steps is not measured{tail}", **kw)
    groups = table.groups()
    effect = float(bulge(*groups))
    ci = percentile_interval(stratified_bootstrap(groups, bulge))
    centers = table.centers()
    top = int(np.argmax(centers))
    where = f"largest at {table.order[table.xs[top]]!r}" + (
        ", an inner value" if 0 < top < len(centers) - 1 else "")
    span = (f" [{1 - ALPHA:.0%} interval {ci[0]:+.2f}, {ci[1]:+.2f}]" if ci
            else " (no interval: one trial at some value)")
    text = (f"the highest inner value {effect:+.2f} of the range above the higher end{span} "
            f"({where}; tolerance {claim.tolerance:.2f}){tail}")
    kw.update(effect=effect, effect_interval=ci,
              effect_unit="(highest inner - higher end) / range")
    if uncovered:
        return verdict("not covered", f"{uncovered}; {text}", **kw)
    if ci is not None and ci[0] > claim.tolerance:
        return verdict("supported", text, **kw)
    if not table.resolved():
        return verdict("not resolved", f"the values differ by less than their phase steps' "
                       f"brackets{table.brackets_text()}; {text}", **kw)
    return verdict("contradicted" if two_sided < ALPHA else "inconclusive", text, **kw)
