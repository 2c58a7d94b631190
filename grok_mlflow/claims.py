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
    >>> claims = parse_claims(spec_yaml["claims"], grid={"width": [16, 64, 256]})
    >>> verdict = evaluate(claims[0], [({"width": 16}, {"grok/migration_onset_step": 900.0}),
    ...                                ({"width": 64}, {"grok/migration_onset_step": 500.0}),
    ...                                ({"width": 256}, {"grok/migration_onset_step": 300.0})])
    >>> verdict.status, verdict.rho
    ('supported', -1.0)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from .phases import PHASE_KEYS, SHAPE_KEYS
from .settings import SettingsError

__all__ = ["Claim", "RULES", "TRENDS", "Verdict", "claims_markdown", "evaluate", "parse_claims",
           "spearman"]

TRENDS = ("increasing", "decreasing", "constant", "rise_then_fall", "absent", "present")
FINAL_KEYS = ("acc/train", "acc/test", "loss/train", "loss/test", "lc/train", "lc/test",
              "lc/random")
# per-radius LC and per-budget adversarial accuracy at the end of a run
_PATTERNS = re.compile(r"^(lc_r[0-9.e-]+/(train|test|random)|adv/acc/eps_[0-9.e-]+)$")
QUANTITIES = PHASE_KEYS + SHAPE_KEYS + FINAL_KEYS

RHO_SUPPORT = 0.8      # |Spearman rho| that counts as a monotone trend
RHO_AGAINST = 0.2      # rho at or below which an "increasing" claim is contradicted (mirrored)
MIN_VALUES = 3         # swept values with the quantity, for trends; 2 for constant
RULES = f"""\
How the verdicts are decided (grok_mlflow.claims):
- Trials are placed by the order the spec lists the swept values; trials at one value (seeds)
  are averaged over those in which the quantity exists (a phase that was not seen is absent).
- The claim is *inconclusive* when the quantity exists in fewer than half of the trials, or at
  fewer than {MIN_VALUES} swept values (2 for constant).
- increasing / decreasing: Spearman's rho between the swept value and the quantity.
  Supported: rho >= {RHO_SUPPORT} (decreasing: <= -{RHO_SUPPORT}). Contradicted: rho <=
  {RHO_AGAINST} (decreasing: >= -{RHO_AGAINST}): no rise, or the opposite. Between: inconclusive.
- constant: supported when the per-value means spread by at most `tolerance` (default 0.25) of
  their mean magnitude; contradicted when they spread more and |rho| >= {RHO_SUPPORT} (a
  monotone dependence); else inconclusive.
- rise_then_fall: supported when the largest per-value mean is at an inner swept value and both
  ends lie below it by more than `tolerance` x the range; contradicted when |rho| >= {RHO_SUPPORT}
  (monotone); else inconclusive.
- absent / present: over the trials `where` selects (default all): supported when the quantity
  is absent (present) in every one; contradicted when it is present (absent) in more than half;
  else inconclusive.
"""


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


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict: ``status`` (supported, contradicted, inconclusive), ``reason`` (one
    sentence with the numbers), ``rho`` (Spearman's, where computed) and ``points``: (swept value,
    per-value mean or None) in the grid's order; for absent / present, (swept value, fraction of
    its trials that show the quantity)."""
    claim: Claim
    status: str
    reason: str
    rho: float | None = None
    points: tuple[tuple[Any, float | None], ...] = ()


def _known_quantity(name: str) -> bool:
    return name in QUANTITIES or bool(_PATTERNS.match(name))


def parse_claims(data: Any, grid: Mapping[str, Sequence[Any]]) -> list[Claim]:
    """The spec's ``claims:`` list as ``Claim`` s; anything wrong raises ``SettingsError`` with
    one line naming the claim (its number and text)."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise SettingsError("claims: must be a list of {text, quantity, trend, ...} mappings")
    out = []
    allowed = {"text", "figure", "quantity", "trend", "versus", "tolerance", "where"}
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
        out.append(Claim(text=item["text"], quantity=item["quantity"], trend=item["trend"],
                         versus=versus, figure=str(item.get("figure", "")),
                         tolerance=float(tolerance), where=dict(where)))
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties; ``regions.rank_correlation``); nan
    when either side is constant."""
    import torch

    from .regions import rank_correlation

    return rank_correlation(torch.tensor(x, dtype=torch.float64),
                            torch.tensor(y, dtype=torch.float64))


def evaluate(claim: Claim, trials: Sequence[tuple[Mapping[str, Any], Mapping[str, float]]],
             values: Sequence[Any] | None = None) -> Verdict:
    """The verdict on ``claim`` from ``trials``: (its swept settings, its metrics) each.

    Args:
        values: the swept values of ``claim.versus`` in the spec's order (default: as they first
            appear in ``trials``).
    """
    chosen = [(o, m) for o, m in trials
              if all(o.get(k) == v for k, v in claim.where.items())]
    q = claim.quantity
    if not chosen:
        return Verdict(claim, "inconclusive", "no trial matches `where`")
    have = [(o, m[q]) for o, m in chosen if m.get(q) is not None and np.isfinite(m[q])]
    n, k = len(chosen), len(have)
    order = list(values) if values is not None else list(dict.fromkeys(
        o[claim.versus] for o, _ in chosen))
    if claim.trend in ("absent", "present"):
        # points: the fraction of trials at each swept value that show the quantity (over
        # every trial, so a `where` claim is seen against the trials it leaves out)
        shown = [o for o, m in trials if m.get(q) is not None and np.isfinite(m[q])]
        points = tuple((x, sum(o[claim.versus] == x for o in shown)
                        / sum(o[claim.versus] == x for o, _ in trials))
                       for x in order if any(o[claim.versus] == x for o, _ in trials))
        wrong = k if claim.trend == "absent" else n - k
        said = f"{q} present in {k} of {n} trials"
        status = ("supported" if wrong == 0 else "contradicted" if wrong > n / 2
                  else "inconclusive")
        return Verdict(claim, status, said, points=points)
    by_value: dict[int, list[float]] = {}
    for o, v in have:
        by_value.setdefault(order.index(o[claim.versus]), []).append(float(v))
    points = tuple((order[i], float(np.mean(by_value[i])) if i in by_value else None)
                   for i in range(len(order)))
    xs = sorted(by_value)
    ys = [float(np.mean(by_value[i])) for i in xs]
    needed = 2 if claim.trend == "constant" else MIN_VALUES
    missing = n - k
    if k < n / 2 or len(xs) < needed:
        return Verdict(claim, "inconclusive",
                       f"{q} not seen in {missing} of {n} trials ({len(xs)} swept values with "
                       f"it; {needed} needed)", points=points)
    rho = spearman(xs, ys) if len(xs) >= 2 else math.nan
    rho_text = "rho undefined (constant)" if math.isnan(rho) else f"Spearman rho = {rho:+.2f}"
    seen = f" ({missing} of {n} trials without it)" if missing else ""
    if claim.trend in ("increasing", "decreasing"):
        sign = 1.0 if claim.trend == "increasing" else -1.0
        r = 0.0 if math.isnan(rho) else sign * rho
        status = ("supported" if r >= RHO_SUPPORT else "contradicted" if r <= RHO_AGAINST
                  else "inconclusive")
        return Verdict(claim, status, f"{rho_text} over {len(xs)} values{seen}", rho, points)
    spread = max(ys) - min(ys)
    if claim.trend == "constant":
        scale = max(float(np.mean(np.abs(ys))), 1e-12)
        rel = spread / scale
        text = f"spread {rel:.0%} of the mean (tolerance {claim.tolerance:.0%}); {rho_text}{seen}"
        if rel <= claim.tolerance:
            return Verdict(claim, "supported", text, rho, points)
        monotone = not math.isnan(rho) and abs(rho) >= RHO_SUPPORT
        return Verdict(claim, "contradicted" if monotone else "inconclusive", text, rho, points)
    top = int(np.argmax(ys))                                     # rise_then_fall
    margin = claim.tolerance * spread
    inner = 0 < top < len(ys) - 1
    where = f"largest at {order[xs[top]]!r}"
    if inner and ys[0] < ys[top] - margin and ys[-1] < ys[top] - margin:
        return Verdict(claim, "supported", f"{where}, an inner value; {rho_text}{seen}", rho,
                       points)
    monotone = not math.isnan(rho) and abs(rho) >= RHO_SUPPORT
    return Verdict(claim, "contradicted" if monotone else "inconclusive",
                   f"{where}; {rho_text}{seen}", rho, points)


def claims_markdown(verdicts: Sequence[Verdict], sweep: str) -> str:
    """The verdicts as Markdown: one line each first (what a reader looks for), then the
    per-value numbers, then the rules."""
    lines = [f"### Sweep {sweep}: the paper's claims", ""]
    for v in verdicts:
        fig = f" (fig. {v.claim.figure})" if v.claim.figure else ""
        lines.append(f"- **{v.status.upper()}**: {v.claim.text}{fig}: {v.reason}.")
    lines += ["", "| claim | quantity | trend | versus | per swept value | verdict |",
              "|---|---|---|---|---|---|"]
    for v in verdicts:
        values = ", ".join(f"{x}: {'-' if y is None else f'{y:.4g}'}" for x, y in v.points) \
            or "-"
        lines.append(f"| {v.claim.text} | `{v.claim.quantity}` | {v.claim.trend} | "
                     f"{v.claim.versus} | {values} | {v.status} |")
    return "\n".join(lines) + "\n\n" + RULES
