"""The paper's claims about its ablations, held against a sweep's trials (issue #25).

A sweep spec may list ``claims:``; each names a per-trial quantity (a ``grok/*`` phase or shape
metric, or a final metric such as ``acc/test``), how the paper says it moves with a swept
setting, and the figure that shows it::

    claims:
      - text: "Increasing width hastens region migration"
        figure: "5"
        quantity: grok/migration_onset_step
        trend: decreasing          # increasing | decreasing | constant | rise_then_fall
                                   # | absent | present
        versus: width              # default: the first swept setting
        tolerance: 0.25            # constant / rise_then_fall: relative spread that counts
        where: {batchnorm: true}   # only these trials (absent / present, mostly)

``evaluate`` gives each claim a verdict, *supported*, *contradicted* or *inconclusive*, by the
rules below (``RULES``, written into every ``claims.md``). Trials are placed on the swept axis
by the order the spec lists the values (so ``[false, true]`` and ``[16, 64, 256]`` both work);
several trials at one value (seeds) are averaged over those that show the quantity.

Example:
    claims = parse_claims(spec_yaml["claims"], grid={"width": [16, 64, 256]})
    verdict = evaluate(claims[0], [({"width": 16}, {"grok/migration_onset_step": 900.0}),
                                   ({"width": 64}, {"grok/migration_onset_step": 500.0}),
                                   ({"width": 256}, {"grok/migration_onset_step": 300.0})])
    verdict.status, verdict.rho
    # -> ('supported', -1.0)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .phases import LC_KEYS, PHASE_KEYS, SHAPE_KEYS
from ..settings import SettingsError

__all__ = ["Claim", "PaperSetting", "RULES", "STATUSES", "TRENDS", "Verdict", "claims_markdown",
           "evaluate", "evaluate_all", "parse_claims", "spearman"]

TRENDS = ("increasing", "decreasing", "constant", "rise_then_fall", "absent", "present")
FINAL_KEYS = ("acc/train", "acc/test", "loss/train", "loss/test", "lc/train", "lc/test",
              "lc/random")
# per-radius LC and per-budget adversarial accuracy at the end of a run
_PATTERNS = re.compile(r"^(lc_r[0-9.e-]+/(train|test|random)|adv/acc/eps_[0-9.e-]+)$")
QUANTITIES = PHASE_KEYS + SHAPE_KEYS + FINAL_KEYS

RHO_SUPPORT = 0.8      # |Spearman rho| of the per-value means that counts as a monotone trend
RHO_AGAINST = 0.2      # an interval of rho entirely at or below this is evidence of no rise
MIN_VALUES = 3         # swept values with the quantity, for trends; 2 for constant
ALPHA = 0.05           # the trend test's level and 1 - the bootstrap intervals' confidence
N_RESAMPLES = 2000     # stratified bootstrap resamples (seeded: the same verdict every time)
STATUSES = ("supported", "contradicted", "not resolved", "not covered", "inconclusive")
RULES = f"""\
How the verdicts are decided (grok_mlflow.claims):
- Trials are placed by the order the spec lists the swept values; the per-value mean is over
  the trials at that value (seeds) in which the quantity exists (a phase that was not seen is
  absent). The claim is *inconclusive* when the quantity exists in fewer than half of the
  trials, or at fewer than {MIN_VALUES} swept values (2 for constant).
- Confidence: Spearman's rho between the swept value and the per-value means (scipy.stats.
  spearmanr), its {1 - ALPHA:.0%} interval from a stratified bootstrap over the trials at each
  value ({N_RESAMPLES} seeded resamples, percentile; scipy.stats.bootstrap; only with >= 2 trials
  at every value) and a trend test over all trials (Spearman's rho under a permutation test,
  exact up to 7 trials, one-sided in the claim's direction: p). The radius: a verdict on an
  LC quantity names the r it read: the claim's `radius:`, else the paper's r where the sweep
  measured it, else one verdict per measured r.
- *not covered*: the claim is about a range of the swept setting (`paper: reach:`) that the
  sweep does not span.
- *not resolved*: for a phase step, every swept value's mean bracket (the measured steps around
  each trial's estimate, averaged) overlaps every other's: the differences are below the
  measurement grid's resolution, so they cannot contradict the claim; they support it only
  when the seeds do (the interval and the trend test below).
- increasing / decreasing (r = rho, sign-flipped for decreasing): supported when r >=
  {RHO_SUPPORT}, the trend test's p < {ALPHA} and the interval's lower end > 0. Contradicted on
  evidence against: r <= -{RHO_SUPPORT} with the opposite trend test's p < {ALPHA} and the
  interval below 0, or an interval entirely <= {RHO_AGAINST}. Else inconclusive.
- constant: supported when the per-value means spread (max - min) by at most `tolerance`
  (default 0.25) of their mean magnitude, the bootstrap interval's upper end included;
  contradicted when the interval's lower end exceeds it and the trend is monotone (|rho| >=
  {RHO_SUPPORT}, p < {ALPHA}); else inconclusive.
- rise_then_fall: supported when the largest per-value mean is at an inner swept value, both
  ends lie below it by more than `tolerance` x the range, and so in >= {1 - ALPHA:.0%} of the
  bootstrap resamples; contradicted when monotone (|rho| >= {RHO_SUPPORT}, p < {ALPHA}); else
  inconclusive.
- Censoring: a trial whose phase was under way or not yet seen at its last step
  (`grok/<name>_censored` = 1) is right-censored there, not dropped: its step counts as its last
  step, ranked above every step seen by then. Every verdict says how many trials were censored;
  one that rests on censored trials alone is inconclusive.
- absent / present: over the trials `where` selects (default all): supported when the quantity
  is absent (present) in every one ("not seen by step N" is named: it may come later), except
  that an absent claim with `where` is inconclusive when the other trials lack it too (no
  contrast); contradicted when it is present (absent) in more than half;
  else inconclusive; with the Clopper-Pearson {1 - ALPHA:.0%} interval of the fraction
  (scipy.stats.binomtest).
"""


@dataclass(frozen=True)
class PaperSetting:
    """Where the paper makes a claim: its swept ``values``, ``model``, ``data`` and LC
    ``radius``; ``reach``: the [low, high] of the swept setting the claim is about (a sweep that
    does not span it does not cover the claim); ``note``: one line (e.g. "the fall is at width
    2000")."""
    values: tuple = ()
    model: str = ""
    data: str = ""
    radius: float | None = None
    reach: tuple | None = None
    note: str = ""


@dataclass(frozen=True)
class Claim:
    """One claim of the paper about a sweep (see the module docstring for the fields)."""
    text: str
    quantity: str
    trend: str
    versus: str
    figure: str = ""
    tolerance: float = 0.25
    where: Mapping[str, Any] = field(default_factory=dict)
    radius: float | None = None
    paper: PaperSetting = field(default_factory=PaperSetting)


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict: ``status`` (one of ``STATUSES``), ``reason`` (one sentence with the
    numbers), ``rho`` (Spearman's over the per-value means, where computed), ``interval`` (its
    stratified bootstrap interval, or of the fraction for absent / present; None without one),
    ``p_value`` (the trend test's), ``radius`` (the r it read, for LC quantities) and
    ``points``: (swept value, per-value mean or None) in the grid's order; for absent / present,
    (swept value, fraction of its trials that show the quantity)."""
    claim: Claim
    status: str
    reason: str
    rho: float | None = None
    points: tuple[tuple[Any, float | None], ...] = ()
    interval: tuple[float, float] | None = None
    p_value: float | None = None
    radius: float | None = None


def _known_quantity(name: str) -> bool:
    return name in QUANTITIES or bool(_PATTERNS.match(name))


def radius_dependent(quantity: str) -> bool:
    """Whether a quantity is read off LC, so that its verdict names a radius."""
    return quantity in LC_KEYS or quantity.startswith("lc/")


def _number(value: Any, label: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingsError(f"{label}: {what} must be a number; got {value!r}")
    return float(value)


def _paper(data: Any, label: str) -> PaperSetting:
    if data is None:
        return PaperSetting()
    allowed = {"values", "model", "data", "radius", "reach", "note"}
    if not isinstance(data, dict) or set(data) - allowed:
        raise SettingsError(f"{label}: paper must be a mapping with keys among "
                            + ", ".join(sorted(allowed)) + f"; got {data!r}")
    reach = data.get("reach")
    if reach is not None:
        if not isinstance(reach, list) or len(reach) != 2:
            raise SettingsError(f"{label}: paper: reach must be [low, high]; got {reach!r}")
        reach = tuple(_number(v, label, "paper: reach") for v in reach)
    radius = data.get("radius")
    return PaperSetting(values=tuple(data.get("values") or ()), model=str(data.get("model", "")),
                        data=str(data.get("data", "")), note=str(data.get("note", "")),
                        radius=None if radius is None else _number(radius, label,
                                                                   "paper: radius"),
                        reach=reach)


def parse_claims(data: Any, grid: Mapping[str, Sequence[Any]]) -> list[Claim]:
    """The spec's ``claims:`` list as ``Claim`` s; anything wrong raises ``SettingsError`` with
    one line naming the claim (its number and text)."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise SettingsError("claims: must be a list of {text, quantity, trend, ...} mappings")
    out = []
    allowed = {"text", "figure", "quantity", "trend", "versus", "tolerance", "where", "radius",
               "paper"}
    for i, item in enumerate(data, start=1):
        label = f"claims[{i}]"
        if not isinstance(item, dict):
            raise SettingsError(f"{label}: must be a mapping with text, quantity and trend")
        label += f" ({str(item.get('text', ''))[:60]!r})"
        unknown = sorted(set(item) - allowed)
        if unknown:
            raise SettingsError(f"{label}: unknown key(s) {', '.join(unknown)}; valid: "
                                + ", ".join(sorted(allowed)))
        for key in ("text", "quantity", "trend"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise SettingsError(f"{label}: needs '{key}:' (a string)")
        if not _known_quantity(item["quantity"]):
            raise SettingsError(f"{label}: unknown quantity {item['quantity']!r}; valid: "
                                + ", ".join(QUANTITIES) + ", lc_r<radius>/<set>, "
                                "adv/acc/eps_<eps>")
        if item["trend"] not in TRENDS:
            raise SettingsError(f"{label}: unknown trend {item['trend']!r}; valid: "
                                + ", ".join(TRENDS))
        versus = item.get("versus", next(iter(grid)))
        if versus not in grid:
            raise SettingsError(f"{label}: versus {versus!r} is not swept; swept: "
                                + ", ".join(grid))
        tolerance = item.get("tolerance", 0.25)
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) \
                or not 0 <= tolerance < math.inf:
            raise SettingsError(f"{label}: tolerance must be a number >= 0")
        where = item.get("where") or {}
        if not isinstance(where, dict) or any(k not in grid or v not in grid[k]
                                              for k, v in where.items()):
            raise SettingsError(f"{label}: where must map swept settings to swept values; "
                                f"got {where!r}")
        radius = item.get("radius")
        out.append(Claim(text=item["text"], quantity=item["quantity"], trend=item["trend"],
                         versus=versus, figure=str(item.get("figure", "")),
                         tolerance=float(tolerance), where=dict(where),
                         radius=None if radius is None else _number(radius, label, "radius"),
                         paper=_paper(item.get("paper"), label)))
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (``scipy.stats.spearmanr``, average ranks for ties), rounded
    to 12 digits (so that 4 values one swap apart give 0.8, not 0.7999999999999998); nan when
    either side is constant."""
    from scipy.stats import spearmanr

    if len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return round(float(spearmanr(x, y).statistic), 12)


def censored_step(metrics: Mapping[str, float], key: str) -> int | None:
    """The last step of a trial whose quantity ``key`` is right-censored there (its phase under
    way or not yet seen: ``grok/<name>_censored`` = 1, ``..._low`` the last step), else None.
    A censored shape quantity (``descent_depth``) is not a step: None (read as measured)."""
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


def _rho_rows(x: Sequence[float], ys: np.ndarray) -> np.ndarray:
    """Spearman's rho of ``x`` with each row of ``ys`` (Pearson's r of the ranks, scipy.stats);
    0 where a row is constant (no order: no trend)."""
    import warnings

    from scipy.stats import pearsonr, rankdata

    ys = np.atleast_2d(np.asarray(ys, dtype=float))
    rx = rankdata(np.broadcast_to(np.asarray(x, dtype=float), ys.shape), axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")            # constant rows: nan, taken as 0 below
        rho = pearsonr(rx, rankdata(ys, axis=-1), axis=-1).statistic
    return np.nan_to_num(np.asarray(rho, dtype=float), nan=0.0)


def _bootstrap(groups: list[list[float]], statistic) -> np.ndarray | None:
    """``statistic`` of the per-group means, (B, n_groups) -> (B,), over a stratified bootstrap
    (each group resampled within itself, as rliable's stratified intervals;
    scipy.stats.bootstrap, seeded); None unless every group has >= 2 trials."""
    from scipy.stats import bootstrap

    if any(len(g) < 2 for g in groups):
        return None
    res = bootstrap([np.asarray(g, dtype=float) for g in groups],
                    lambda *gs, axis=-1: statistic(np.stack([np.mean(g, axis=axis)
                                                             for g in gs], axis=-1)),
                    n_resamples=N_RESAMPLES, vectorized=True, method="percentile",
                    confidence_level=1 - ALPHA, rng=np.random.default_rng(0))
    return np.asarray(res.bootstrap_distribution)


def _interval(distribution: np.ndarray | None) -> tuple[float, float] | None:
    if distribution is None:
        return None
    lo, hi = np.quantile(distribution, [ALPHA / 2, 1 - ALPHA / 2])
    return float(lo), float(hi)


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


@dataclass
class _Table:
    """A claim's trials at each swept value: (value, bracket low, bracket high) per trial, a
    censored one as (last step + 0.5, last step, inf)."""
    order: list
    by_value: dict[int, list[tuple[float, float, float]]]
    n: int
    n_censored: int
    bracketed: bool

    @property
    def xs(self) -> list[int]:
        return sorted(self.by_value)

    @property
    def groups(self) -> list[list[float]]:
        return [[v for v, _, _ in self.by_value[i]] for i in self.xs]

    @property
    def means(self) -> list[float]:
        return [float(np.mean(g)) for g in self.groups]

    @property
    def k(self) -> int:
        return sum(len(g) for g in self.by_value.values())

    def points(self) -> tuple:
        return tuple((self.order[i], float(np.mean([v for v, _, _ in self.by_value[i]]))
                      if i in self.by_value else None) for i in range(len(self.order)))

    def brackets(self) -> tuple[list[float], list[float]]:
        """The mean bracket at each swept value (low, high)."""
        lows = [float(np.mean([lo for _, lo, _ in self.by_value[i]])) for i in self.xs]
        highs = [float(np.mean([hi for _, _, hi in self.by_value[i]])) for i in self.xs]
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


def _table(chosen, order: list, versus: str, q: str) -> _Table:
    by_value: dict[int, list[tuple[float, float, float]]] = {}
    censored, bracketed = 0, False
    for o, m in chosen:
        i = order.index(o[versus])
        budget = censored_step(m, q)
        if budget is not None:          # under way or not yet seen: later than its last step
            by_value.setdefault(i, []).append((budget + 0.5, float(budget), math.inf))
            censored += 1
            bracketed = True
        elif m.get(q) is not None and np.isfinite(m[q]):
            v = float(m[q])
            bracketed |= q + "_low" in m
            by_value.setdefault(i, []).append(
                (v, float(m.get(q + "_low", v)), float(m.get(q + "_high", v))))
    return _Table(order, by_value, len(chosen), censored, bracketed)


def _p_trend(table: _Table, direction: float) -> float:
    """The trend test over all trials: Spearman's rho under a permutation test (exact for up
    to 7 trials, else seeded resamples), one-sided in ``direction``."""
    from scipy.stats import permutation_test

    all_x = [x for x, g in zip(table.xs, table.groups) for _ in g]
    all_y = [v for g in table.groups for v in g]
    if len(set(all_y)) < 2 or len(set(all_x)) < 2:
        return 1.0
    res = permutation_test((all_x, all_y), lambda a, b, axis=-1: _rho_rows(a, b),
                           permutation_type="pairings", vectorized=True,
                           n_resamples=N_RESAMPLES, rng=np.random.default_rng(0),
                           alternative="greater" if direction > 0 else "less")
    return float(res.pvalue)


def _presence(claim: Claim, trials, chosen, order: list, q: str, verdict) -> Verdict:
    """absent / present: the fraction of trials that show the quantity, with its interval."""
    from scipy.stats import binomtest

    n = len(chosen)
    k = sum(m.get(q) is not None and np.isfinite(m[q]) for _, m in chosen)
    # points: the fraction of trials at each swept value that show the quantity (over every
    # trial, so a `where` claim is seen against the trials it leaves out)
    shown = [o for o, m in trials if m.get(q) is not None and np.isfinite(m[q])]
    points = tuple((x, sum(o[claim.versus] == x for o in shown)
                    / sum(o[claim.versus] == x for o, _ in trials))
                   for x in order if any(o[claim.versus] == x for o, _ in trials))
    wrong = k if claim.trend == "absent" else n - k
    ci = binomtest(k, n).proportion_ci(1 - ALPHA, method="exact")
    said = (f"{claim.quantity} present in {k} of {n} trials ({1 - ALPHA:.0%} interval of the "
            f"fraction {ci.low:.2f}-{ci.high:.2f})")
    later = [censored_step(m, q) for _, m in chosen if censored_step(m, q) is not None]
    if later:                    # not seen by the last step is not the same as absent
        said += (f"; in {len(later)} of them not seen by step {max(later):,}, its last (it may "
                 f"come later)")
    status = "supported" if wrong == 0 else "contradicted" if wrong > n / 2 else "inconclusive"
    others = [m for o, m in trials if not all(o.get(a) == v for a, v in claim.where.items())]
    if claim.trend == "absent" and claim.where and others and status == "supported" and not any(
            m.get(q) is not None and np.isfinite(m[q]) for m in others):
        # absent where `where` holds, and absent everywhere else too: nothing was removed
        status = "inconclusive"
        said += (f"; absent in the {len(others)} other trials too: no contrast to attribute to "
                 + ", ".join(f"{a}={v}" for a, v in claim.where.items()))
    return verdict(status, said, points=points, interval=(float(ci.low), float(ci.high)))


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
                       points=table.points())
    if table.n_censored == k:
        return verdict("inconclusive", f"every trial's {claim.quantity} is censored (under way "
                       f"or not yet seen at its last step): the verdict would rest on censored "
                       f"trials alone", points=table.points())
    return _judge(claim, table, verdict)


def _judge(claim: Claim, table: _Table, verdict) -> Verdict:
    """A trend claim's verdict over ``table`` (module ``RULES``)."""
    xs, groups, ys = table.xs, table.groups, table.means
    rho = spearman(xs, ys)
    seeds = min(len(g) for g in groups)
    rho_text = "rho undefined (constant)" if math.isnan(rho) else f"Spearman rho = {rho:+.2f}"
    ci = _interval(_bootstrap(groups, lambda means: _rho_rows(xs, means)))
    ci_text = (f" [{1 - ALPHA:.0%} interval {ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else
               " (no interval: one trial at some value)")
    n, k = table.n, table.k
    seen = f"; {n - k} of {n} trials without it" if n - k else ""
    if table.n_censored:
        seen += (f"; {table.n_censored} of {n} trials censored (under way or not yet seen at "
                 f"their last step, ranked above every step seen by then)")
    over = f" over {len(xs)} values x {seeds}{'+' if any(len(g) > seeds for g in groups) else ''}"
    over += f" trial{'s' if seeds > 1 else ''}"
    uncovered = _coverage(claim, table.order)
    sign = -1.0 if claim.trend == "decreasing" else 1.0
    p = (_p_trend(table, sign) if claim.trend in ("increasing", "decreasing")
         else min(_p_trend(table, 1.0), _p_trend(table, -1.0)))     # either direction
    text = f"{rho_text}{ci_text}{over}, trend p = {p:.2g}{seen}"
    kw = dict(rho=rho, points=table.points(), interval=ci, p_value=p)
    if uncovered:
        return verdict("not covered", f"{uncovered}; {text}", **kw)
    unresolved = ("not resolved", f"the values differ by less than their phase steps' brackets"
                  f"{table.brackets_text() if table.bracketed else ''}; {text}")
    monotone = not math.isnan(rho) and abs(rho) >= RHO_SUPPORT and p < ALPHA
    if claim.trend in ("increasing", "decreasing"):
        r = 0.0 if math.isnan(rho) else sign * rho
        lo, hi = sorted((sign * ci[0], sign * ci[1])) if ci else (r, r)
        if r >= RHO_SUPPORT and p < ALPHA and lo > 0:   # the seeds resolve it, brackets or not
            return verdict("supported", text + (table.brackets_text() if table.bracketed
                                                and not table.resolved() else ""), **kw)
        if not table.resolved():
            return verdict(*unresolved, **kw)
        against = (r <= -RHO_SUPPORT and _p_trend(table, -sign) < ALPHA and hi < 0) or (
            ci is not None and hi <= RHO_AGAINST)
        return verdict("contradicted" if against else "inconclusive", text, **kw)
    if claim.trend == "constant":
        return _constant(claim, table, text, kw, monotone, unresolved, verdict)
    return _rise_then_fall(claim, table, text, kw, monotone, unresolved, verdict)


def _constant(claim, table: _Table, text, kw, monotone, unresolved, verdict) -> Verdict:
    def rel_spread(means: np.ndarray) -> np.ndarray:
        return np.ptp(means, axis=-1) / np.maximum(np.mean(np.abs(means), axis=-1), 1e-12)

    rel = float(rel_spread(np.array(table.means)))
    spread_ci = _interval(_bootstrap(table.groups, rel_spread))
    low, high = spread_ci if spread_ci else (rel, rel)
    span = f" [{1 - ALPHA:.0%} interval {low:.0%}-{high:.0%}]" if spread_ci else ""
    text = f"spread {rel:.0%} of the mean{span} (tolerance {claim.tolerance:.0%}); {text}"
    if high <= claim.tolerance:
        return verdict("supported", text, **kw)
    if not table.resolved():
        return verdict(unresolved[0], f"{unresolved[1]}; spread {rel:.0%}{span}", **kw)
    return verdict("contradicted" if monotone and low > claim.tolerance else "inconclusive",
                   text, **kw)


def _rise_then_fall(claim, table: _Table, text, kw, monotone, unresolved, verdict) -> Verdict:
    def shaped(means: np.ndarray) -> np.ndarray:
        means = np.atleast_2d(means)
        top_i = np.argmax(means, axis=-1)
        top_v = np.max(means, axis=-1)
        margin = claim.tolerance * np.ptp(means, axis=-1)
        return ((top_i > 0) & (top_i < means.shape[-1] - 1) & (means[:, 0] < top_v - margin)
                & (means[:, -1] < top_v - margin)).astype(float)

    ys = table.means
    dist = _bootstrap(table.groups, shaped)
    share = float(np.mean(dist)) if dist is not None else None
    top = int(np.argmax(ys))
    where = f"largest at {table.order[table.xs[top]]!r}" + (
        ", an inner value" if 0 < top < len(ys) - 1 else "")
    text = f"{where}; {text}" + (f"; the shape in {share:.0%} of resamples"
                                 if share is not None else "")
    if shaped(np.array(ys))[0] and (share is None or share >= 1 - ALPHA) and np.ptp(ys) > 0:
        return verdict("supported", text, **kw)
    if not table.resolved():
        return verdict(*unresolved, **kw)
    return verdict("contradicted" if monotone else "inconclusive", text, **kw)


def claims_markdown(verdicts: Sequence[Verdict], sweep: str) -> str:
    """The verdicts as Markdown: one line each first (what a reader looks for), then the
    per-value numbers, then the rules."""
    lines = [f"### Sweep {sweep}: the paper's claims", ""]
    for v in verdicts:
        fig = f" (fig. {v.claim.figure})" if v.claim.figure else ""
        lines.append(f"- **{v.status.upper()}**: {v.claim.text}{fig}: {v.reason}.")
    lines += ["", "| claim | quantity | r | trend | versus | per swept value | rho [interval] "
              "| verdict |", "|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        values = ", ".join(f"{x}: {'-' if y is None else f'{y:.4g}'}" for x, y in v.points) \
            or "-"
        rho = "-" if v.rho is None or math.isnan(v.rho) else f"{v.rho:+.2f}"
        if v.interval is not None:
            rho += f" [{v.interval[0]:+.2f}, {v.interval[1]:+.2f}]"
        radius = "-" if v.radius is None else f"{v.radius:g}"
        lines.append(f"| {v.claim.text} | `{v.claim.quantity}` | {radius} | {v.claim.trend} | "
                     f"{v.claim.versus} | {values} | {rho} | {v.status} |")
    return "\n".join(lines) + "\n\n" + RULES
