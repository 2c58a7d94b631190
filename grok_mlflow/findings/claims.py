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

``verdicts.evaluate`` gives each claim a verdict, *supported*, *contradicted* or *inconclusive*,
by the rules below (``RULES``, written into every ``claims.md``). Trials are placed on the swept axis
by the order the spec lists the values (so ``[false, true]`` and ``[16, 64, 256]`` both work);
several trials at one value (seeds) are summarised by their median (a phase step,
Kaplan-Meier where some are censored) or mean. Every verdict opens with an effect size and its
95% interval (``Verdict.effect``, ``effect_interval``, ``effect_unit``): for a trend, the change
per doubling of the swept value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..settings import SettingsError
from .phases import BOUNDARY_KEYS, LC_KEYS, PHASE_KEYS, SHAPE_KEYS
from .statistics import ALPHA, N_PERMUTATIONS, N_RESAMPLES

__all__ = ["Claim", "PaperSetting", "RULES", "STATUSES", "TRENDS", "Verdict", "claims_markdown",
           "parse_claims", "radius_dependent"]

TRENDS = ("increasing", "decreasing", "constant", "rise_then_fall", "absent", "present")
FINAL_KEYS = ("acc/train", "acc/test", "loss/train", "loss/test", "lc/train", "lc/test",
              "lc/random")
# per-radius LC and per-budget adversarial accuracy at the end of a run
_PATTERNS = re.compile(r"^(lc_r[0-9.e-]+/(train|test|random)|adv/acc/eps_[0-9.e-]+"
                       r"|grok_eps[0-9.e-]+/(robustness_onset_step|delay_steps))$")
QUANTITIES = PHASE_KEYS + SHAPE_KEYS + BOUNDARY_KEYS + FINAL_KEYS + ("lc/boundary",)

MIN_VALUES = 3         # swept values with the quantity, for trends; 2 for constant
STATUSES = ("supported", "contradicted", "not resolved", "not covered", "inconclusive")
RULES = f"""\
How the verdicts are decided (grok_mlflow.findings.claims, .verdicts, .statistics):
- Trials are placed by the order the spec lists the swept values. Each value is summarised by
  its trials (seeds): a phase step by its median, the Kaplan-Meier median where some trials
  are censored (scipy.stats.ecdf); any other quantity by its mean. A censored step is never
  averaged. The claim is *inconclusive* when the quantity exists in fewer than half of the
  trials, at fewer than {MIN_VALUES} swept values (2 for constant), or when some value's median
  is itself censored (half or more of its trials not seen by their last step).
- The effect, first in every verdict, with its {1 - ALPHA:.0%} interval: for increasing /
  decreasing, the least-squares slope of the per-value summaries against log2 of the swept
  value (its place in the spec's list for settings that are not positive numbers), on a log
  scale for positive quantities (read as % per doubling) and as absolute change for
  accuracies and fractions; for constant, the summaries' spread (max - min) over their mean
  magnitude; for rise_then_fall, how far the highest inner value stands above the higher end,
  as a share of the range. Intervals: stratified bootstrap over the trials at each value
  ({N_RESAMPLES} seeded resamples, percentile; scipy.stats.bootstrap), only with >= 2 trials
  at every value.
- The trend test: a permutation test of sum((x - mean x) x score) over all trials, x the swept
  axis above, the score each trial's rank, or its Gehan score where some are censored (trials
  it is certainly later than minus those it is certainly earlier than); exact when the trials'
  orderings number at most {N_PERMUTATIONS} (up to 7 trials), else {N_PERMUTATIONS} seeded
  resamples (so p >= 1e-4). Spearman's rho of the summaries is given as a description only.
- increasing / decreasing: supported when the trend test in the claim's direction gives p <
  {ALPHA / 2:g} and the effect's interval lies entirely on the claim's side of 0; contradicted
  when the same holds in the opposite direction; else inconclusive (the effect and its interval
  say how large an effect the sweep could have missed). With {ALPHA / 2:g} per side, a sweep
  with no effect is decided in at most {ALPHA:.0%} of cases (calibrated by simulation in the
  tests; docs/claims.md gives the power).
- *not covered*: the claim is about a range of the swept setting (`paper: reach:`) that the
  sweep does not span.
- *not resolved*: for a phase step that the trend test does not support, every swept value's
  mean bracket (the measured steps around each trial's estimate) overlaps every other's: the
  differences are below the measurement grid's resolution, so they cannot contradict the claim.
- constant: supported when the whole interval of the spread is within `tolerance` (default
  0.25); contradicted when its lower end exceeds it and the trend test is significant (two-sided
  p < {ALPHA}); else inconclusive.
- rise_then_fall: supported when the interval of the inner bulge lies above `tolerance`;
  contradicted when the trend is monotone (two-sided p < {ALPHA}); else inconclusive.
- Censoring: a trial whose phase was under way or not yet seen at its last step
  (`grok/<name>_censored` = 1) is right-censored there, not dropped and never averaged. Every
  verdict says how many trials were censored; a trend that rests on censored trials alone is
  inconclusive (an absent claim reads them as absent by their last step, below).
- absent / present: over the trials `where` selects (default all), the fraction that show the
  quantity with its Clopper-Pearson {1 - ALPHA:.0%} interval (scipy.stats.binomtest): supported
  when the quantity is absent (present) in every one ("not seen by step N" is named: it may
  come later), except that an absent claim with `where` is inconclusive when the other trials
  lack it too (no contrast); contradicted when it is present (absent, and not merely not yet
  seen by the trial's last step) in more than half; else inconclusive.
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
    """A claim's verdict: ``status`` (one of ``STATUSES``), ``reason`` (one sentence, the effect
    first), ``effect`` with its ``effect_interval`` (95%, None without one) in
    ``effect_unit`` s (e.g. "% per doubling of width"; for absent / present the fraction of
    trials with its Clopper-Pearson interval), ``p_value`` (the trend test's, in the claim's
    direction; two-sided for constant and rise_then_fall), ``rho`` (Spearman's over the
    per-value summaries: a description), ``seeds`` (the fewest trials at a value),
    ``n_censored``, ``radius`` (the r it read, for LC quantities) and ``points``: (swept value,
    per-value median or mean, or None) in the grid's order; for absent / present, (swept value,
    fraction of its trials that show the quantity)."""
    claim: Claim
    status: str
    reason: str
    rho: float | None = None
    points: tuple[tuple[Any, float | None], ...] = ()
    effect: float | None = None
    effect_interval: tuple[float, float] | None = None
    effect_unit: str = ""
    p_value: float | None = None
    radius: float | None = None
    seeds: int = 0
    n_censored: int = 0


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
    return [_claim(item, f"claims[{i}]", grid) for i, item in enumerate(data, start=1)]


_CLAIM_KEYS = {"text", "figure", "quantity", "trend", "versus", "tolerance", "where", "radius",
               "paper"}


def _claim(item: Any, label: str, grid: Mapping[str, Sequence[Any]]) -> Claim:
    """One entry of ``claims:`` as a ``Claim``; ``SettingsError`` naming it (``label``)."""
    if not isinstance(item, dict):
        raise SettingsError(f"{label}: must be a mapping with text, quantity and trend")
    label += f" ({str(item.get('text', ''))[:60]!r})"
    unknown = sorted(set(item) - _CLAIM_KEYS)
    if unknown:
        raise SettingsError(f"{label}: unknown key(s) {', '.join(unknown)}; valid: "
                            + ", ".join(sorted(_CLAIM_KEYS)))
    for key in ("text", "quantity", "trend"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise SettingsError(f"{label}: needs '{key}:' (a string)")
    if not _known_quantity(item["quantity"]):
        raise SettingsError(f"{label}: unknown quantity {item['quantity']!r}; valid: "
                            + ", ".join(QUANTITIES) + ", lc_r<radius>/<set>, "
                            "adv/acc/eps_<eps>, grok_eps<eps>/robustness_onset_step, "
                            "grok_eps<eps>/delay_steps")
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
    return Claim(text=item["text"], quantity=item["quantity"], trend=item["trend"],
                 versus=versus, figure=str(item.get("figure", "")), tolerance=float(tolerance),
                 where=dict(where),
                 radius=None if radius is None else _number(radius, label, "radius"),
                 paper=_paper(item.get("paper"), label))


def claims_markdown(verdicts: Sequence[Verdict], sweep: str) -> str:
    """The verdicts as Markdown: one line each first (what a reader looks for), then the
    per-value numbers, then the rules."""
    lines = [f"### Sweep {sweep}: the paper's claims", ""]
    for v in verdicts:
        fig = f" (fig. {v.claim.figure})" if v.claim.figure else ""
        lines.append(f"- **{v.status.upper()}**: {v.claim.text}{fig}: {v.reason}.")
    lines += ["", "| claim | quantity | r | trend | versus | per swept value | effect [95% "
              "interval] | censored | p | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        # a median not seen by the last step (censored) has no value to print
        values = ", ".join(f"{x}: {'-' if y is None else 'censored' if math.isinf(y) else f'{y:.4g}'}"
                           for x, y in v.points) or "-"
        effect = "-" if v.effect is None else f"{v.effect:+.3g}"
        if v.effect_interval is not None:
            effect += f" [{v.effect_interval[0]:+.3g}, {v.effect_interval[1]:+.3g}]"
        if v.effect_unit:
            effect += f" {v.effect_unit}"
        p = "-" if v.p_value is None else f"{v.p_value:.2g}"
        radius = "-" if v.radius is None else f"{v.radius:g}"
        lines.append(f"| {v.claim.text} | `{v.claim.quantity}` | {radius} | {v.claim.trend} | "
                     f"{v.claim.versus} | {values} | {effect} | {v.n_censored} | {p} | "
                     f"{v.status} |")
    return "\n".join(lines) + "\n\n" + RULES
