"""What a run showed: the paper's phases, read off a run's measured history, in plain words.

``reproduction_report`` turns a ``{step: {metric: value}}`` history into one ``Finding`` per phase
of the paper (sec. 3 and fig. 1): whether it happened, at which step, from which value to which.
It uses the same detectors as the ``grok/*`` metrics (``grok_mlflow.findings.phases``), so the report and
the MLflow table never disagree. The tracker puts ``report_markdown`` of it into the run's
description (``mlflow.note.content``, what the MLflow UI shows first on a run's page) and into
the artifact ``report.md``; ``grok-mlflow report RUN_ID`` prints it for any finished run.

Phases and the rules that decide "seen" (``grok_mlflow.findings.phases``: a rise or fall counts only when
it is beyond its noise and material, the *noise rule*; thresholds are ``ReportThresholds`` fields):

======================  ===========================================================================
first descent           LC(train) falls from its first value to the low point the ascent rises
                        from, by a change that counts
ascent                  the smoothed curve's largest rise, when it counts; otherwise the curve is
                        reported as flat within its noise and no LC phase is seen
second descent          after the peak, the smoothed curve falls by a change that counts and ends
(region migration)      at least ``descent_frac`` (25%) of the ascent's height below the peak; the
                        onset is where it crosses ``rel_tol`` (5%) of the height
interpolation           training accuracy reaches ``interpolation_acc`` (0.99)
delayed                 test accuracy generalises (``grok/generalization_step``: smoothed test
generalization          accuracy within 95% of its final value, ending >= 0.1 above its start)
                        at least ``delay_factor`` (2x) later than interpolation *and* gains
                        >= ``late_gain`` (0.05) after interpolation; generalising with or before
                        interpolation is reported as "no delay"
delayed robustness      per eps: after interpolation, adversarial accuracy (smoothed over 3
(per eps)               measurements) leaves its floor and rises >= ``adv_rise`` (0.05) above it,
                        beyond twice its jitter; delayed when that onset is at least
                        ``delay_factor`` x the interpolation step
======================  ===========================================================================

Each step is estimated between measurements and shown as ``estimate (low-high)``, the bracket
being the measured steps around it.
With several LC radii each radius gets its own three LC phases (``first descent (r=0.05)``).
A phase that the history does not show is reported as "not seen", with the reason (never a
guess); a phase whose curve was not measured is "not measured".

Example:
    findings = reproduction_report(tracker.history)
    print(report_markdown(findings, title="my run"))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .curves import Curve, NoiseRule, curve, moving_at_end, series, smooth
from .phases import (
    DELAY_FACTOR,
    adversarial_keys,
    boundary_shift,
    generalization,
    interpolation,
    read_lc,
    read_robustness,
)

__all__ = ["Finding", "ReportThresholds", "train_lc_keys", "report_markdown", "report_table",
           "reproduction_report"]

PHASES = ("first descent", "ascent", "second descent", "interpolation",
          "delayed generalization")


@dataclass(frozen=True)
class ReportThresholds:
    """The numbers that decide whether a phase was seen (defaults as ``detect_phases``)."""

    window: int = 5               # smoothing window, in measurements
    rel_tol: float = 0.05         # fraction of a curve's range that is a real rise or fall
    interpolation_acc: float = 0.99
    generalization_frac: float = 0.95
    min_gain: float = 0.1         # test accuracy must end this far above its start
    late_gain: float = 0.05       # test accuracy gained after interpolation to call it delayed
    adv_rise: float = 0.05        # absolute rise of adversarial accuracy
    delay_factor: float = DELAY_FACTOR   # "delayed": this many times the interpolation step
    descent_frac: float = 0.25    # second descent: share of the ascent undone by the end

    @property
    def rule(self) -> NoiseRule:
        """The noise rule these thresholds imply (``grok_mlflow.findings.curves.NoiseRule``)."""
        return NoiseRule(adv_rise=self.adv_rise)


@dataclass(frozen=True)
class Finding:
    """One phase of one run.

    Attributes:
        phase: e.g. ``first descent``, ``delayed robustness (eps 0.1)``.
        seen: whether the run shows it.
        step: the step it happened at (end of a descent, peak, onset), or None; estimated
            between the measurements ``low`` and ``high`` around it (``grok_mlflow.findings.phases``).
        start, end: the quantity's value before and after the phase (None when not seen).
        quantity: what the values are (``LC(train)``, ``test accuracy``...).
        text: one plain sentence saying what happened (or why it was not seen).
    """

    phase: str
    seen: bool
    step: int | None
    start: float | None
    end: float | None
    quantity: str
    text: str
    low: int | None = None
    high: int | None = None
    under_way: bool = False

    def step_text(self) -> str:
        """``estimate (low-high)``: the step with its bracket, as the report's step column;
        ``> N`` for a phase under way at the last step N."""
        if self.under_way:
            return f"> {self.low}"
        if self.step is None:
            return ""
        if self.low is None or self.high is None or self.low == self.high:
            return f"{self.step}"
        return f"{self.step} ({self.low}-{self.high})"


def train_lc_keys(history: Mapping[int, Mapping[str, float]]) -> list[str]:
    """The train-LC curves of a history: ``lc/train``, or ``lc_r{r}/train`` for each radius
    (ascending r)."""
    keys = {k for row in history.values() for k in row}
    if "lc/train" in keys:
        return ["lc/train"]
    found = [k for k in keys if k.startswith("lc_r") and k.endswith("/train")]
    return sorted(found, key=lambda k: float(k[len("lc_r"):].split("/")[0])) or ["lc/train"]


def _lc_findings(c: Curve, label: str, suffix: str, t: ReportThresholds,
                 interp: int | None = None) -> list[Finding]:
    names = [p + suffix for p in PHASES[:3]]
    if len(c.values) < 3:
        return [Finding(p, False, None, None, None, label, f"{label} not measured")
                for p in names]
    r = read_lc(c, t.rule, rel_tol=t.rel_tol, descent_frac=t.descent_frac,
                after=interp or 0, window=t.window)
    lc, steps = c.values, c.steps
    first = float(lc[0])
    transient = ("" if r.transient is None else
                 f"; a warm-up transient before interpolation (step {interp:,}): {label} rose "
                 f"from step {r.transient[0].text()} to a peak at {r.transient[1].text()} and "
                 f"fell back, not the paper's ascent")
    if r.peak is None:
        after = f" at or after interpolation (step {interp:,})" if r.transient else ""
        flat = (f"{label} is flat within its noise ({r.flat}; sampling error and jitter from "
                f"the history, see grok_mlflow.findings.phases)" if r.flat else
                f"{label} fell from {first:.3g} to {float(c.smoothed.min()):.3g} (smoothed) and "
                f"did not rise again beyond its noise{after} (no ascent)")
        fell = [Finding(names[0], False, None, None, None, label, flat + transient)]
        return fell + [Finding(p, False, None, None, None, label, flat + transient)
                       for p in names[1:]]
    fmin, peak = r.first_min, r.peak
    assert fmin is not None, "read_lc sets the first minimum with the peak"
    v = float(lc[fmin.index])
    if r.first_descent:
        out = [Finding(names[0], True, fmin.estimate, first, v, label,
                       f"{label} fell from {first:.3g} (step {steps[0]}) to {v:.3g} "
                       f"(step {fmin.text()})", fmin.low, fmin.high)]
    else:
        out = [Finding(names[0], False, None, None, None, label,
                       f"{label} did not fall beyond its noise before rising (it starts at "
                       f"{first:.3g})")]
    hi = float(lc[peak.index])
    trend = moving_at_end(steps, lc, t.rule)
    # one reading with phases.censor: the peak is under way while LC still rises at the end
    # and no second descent followed
    rising = trend is not None and trend.rising
    if r.open_peak or (not (r.second_descent and r.onset is not None) and rising):
        still = (f"still moves, {trend.start:.3g} -> {trend.end:.3g} over steps "
                 f"{trend.first_step:,}-{trend.last_step:,}" if trend is not None
                 and trend.moving else f"its last measurements rise above its highest value "
                 f"before them ({hi:.3g}, step {peak.text()}): not yet a peak")
        out.append(Finding(names[1], False, None, v, hi, label,
                           f"under way when the run ended: {label} rose from {v:.3g} (step "
                           f"{fmin.text()}) and {still}; run longer", int(steps[-1]), None,
                           True))
        out.append(Finding(names[2], False, None, None, None, label,
                           "the ascent is still under way"))
        return out
    out.append(Finding(names[1], True, peak.estimate, v, hi, label,
                       f"{label} rose from {v:.3g} (step {fmin.text()}) to {hi:.3g} at step "
                       f"{peak.text()}{transient}", peak.low, peak.high))
    # smoothed, before the last points' smoothing (phases.read_lc): a last-step loss spike must not
    # decide or misreport
    end = float(c.smoothed[max(len(c.smoothed) - 2 - t.window // 2, 1)])
    if r.second_descent and r.onset is not None:
        out.append(Finding(names[2], True, r.onset.estimate, hi, end, label,
                           f"region migration: {label} fell from its peak {hi:.3g} (step "
                           f"{peak.text()}) from step {r.onset.text()} on, to {end:.3g} at the "
                           f"end (smoothed) " + (f"({r.fallen:.0%} of the ascent undone)"
                                                 if r.fallen <= 1 else
                                                 "(below where the ascent began)"),
                           r.onset.low, r.onset.high))
    elif r.onset is not None and r.fallen >= t.descent_frac:
        out.append(Finding(names[2], False, None, None, None, label,
                           f"{label} fell {r.fallen:.0%} of the ascent after its peak to "
                           f"{end:.3g} (smoothed), within its noise or below "
                           f"{t.rule.material:.0%} of its level"))
    elif r.onset is not None:
        out.append(Finding(names[2], False, None, None, None, label,
                           f"{label} dipped after its peak (step {r.onset.text()}) but ended at "
                           f"{end:.3g} (smoothed), only {max(r.fallen, 0):.0%} of the ascent "
                           f"below the peak {hi:.3g} ({t.descent_frac:.0%} needed)"))
    else:
        out.append(Finding(names[2], False, None, None, None, label,
                           f"{label} stayed at its peak until the end (step {steps[-1]})"))
    return out


def _boundary_findings(history: Mapping[int, Mapping[str, float]], key: str, suffix: str,
                       t: ReportThresholds, interp: int) -> list[Finding]:
    """Migration toward the decision boundary (issue 51), for runs that measured LC there:
    over the second descent, LC(boundary) / LC(train) rose beyond its sampling error
    (``phases.boundary_shift``), or did not; no row for runs without a boundary curve."""
    boundary = key[: -len("/train")] + "/boundary"
    if not any(boundary in row for row in history.values()):
        return []
    phase, label = "migration toward the boundary" + suffix, "LC(boundary) / LC(train)"
    r = read_lc(curve(history, key, t.window), t.rule, rel_tol=t.rel_tol,
                descent_frac=t.descent_frac, after=interp, window=t.window)
    if not r.second_descent or r.onset is None:
        return [Finding(phase, False, None, None, None, label,
                        "no second descent to read it over")]
    shift = boundary_shift(history, key, r.onset.estimate, window=t.window)
    if shift is None:
        return [Finding(phase, False, None, None, None, label,
                        "LC at the boundary not measured over the second descent")]
    return [Finding(phase, shift.rose, shift.onset_step, shift.at_onset, shift.at_end, label,
                    shift.text(), shift.onset_step, shift.end_step)]


def _accuracy_findings(history: Mapping[int, Mapping[str, float]],
                       t: ReportThresholds) -> tuple[list[Finding], int | None]:
    steps, acc = series(history, "acc/train")
    out = []
    interp = None
    if not len(acc):
        out.append(Finding("interpolation", False, None, None, None, "train accuracy",
                           "train accuracy not measured"))
    else:
        step = interpolation(history, t.interpolation_acc)
        if step is not None:
            interp = step.estimate
            reached = float(acc[step.index])
            out.append(Finding("interpolation", True, interp, float(acc[0]), reached,
                               "train accuracy",
                               f"train accuracy reached {reached:.3f} at step {step.text()} "
                               f"(from {acc[0]:.3f})", step.low, step.high))
        else:
            out.append(Finding("interpolation", False, None, None, None, "train accuracy",
                               f"train accuracy stayed below {t.interpolation_acc:g} "
                               f"(at most {acc.max():.3f})"))
    steps_te, acc_te = series(history, "acc/test")
    label = "test accuracy"
    if not len(acc_te):
        out.append(Finding("delayed generalization", False, None, None, None, label,
                           "test accuracy not measured"))
        return out, interp
    s = smooth(acc_te, t.window)
    final = float(acc_te[-1])
    g = generalization(history, window=t.window, frac=t.generalization_frac,
                       min_gain=t.min_gain)
    if g is None:
        out.append(Finding("delayed generalization", False, None, None, None, label,
                           f"test accuracy never rose {t.min_gain:g} above its start "
                           f"({acc_te[0]:.3f} -> {final:.3f}): no generalization"))
        return out, interp
    gen = g.estimate
    # the reading censoring and the settled rule make: test accuracy that has held its level
    # since the middle of the last stretch has arrived (curves.moving_at_end(arrival=True))
    trend = moving_at_end(steps_te, acc_te, t.rule, material=t.rule.acc_material,
                          arrival=True)
    if trend is not None and trend.moving:
        out.append(Finding("delayed generalization", False, None, None, None, label,
                           f"under way when the run ended: {trend.text(label)} (fitted); run "
                           f"longer", int(steps_te[-1]), None, True))
        return out, interp
    if interp is None:
        out.append(Finding("delayed generalization", False, gen, None, None, label,
                           f"test accuracy reached {final:.3f}, but training never interpolated",
                           g.low, g.high))
        return out, interp
    at_interp = float(np.interp(np.log1p(interp), np.log1p(steps_te), s))
    gain = float(s[-1]) - at_interp
    if gen >= t.delay_factor * max(interp, 1) and gain >= t.late_gain:
        out.append(Finding("delayed generalization", True, gen, at_interp, final, label,
                           f"grokking: test accuracy was {at_interp:.3f} at interpolation (step "
                           f"{interp}) and generalised at step {g.text()}, ending at {final:.3f}",
                           g.low, g.high))
    else:
        out.append(Finding("delayed generalization", False, gen, None, None, label,
                           f"no delay: test accuracy generalised at step {g.text()} "
                           f"(interpolation: step {interp}); {at_interp:.3f} at interpolation, "
                           f"{final:.3f} at the end", g.low, g.high))
    return out, interp


def _robustness_finding(history: Mapping[int, Mapping[str, float]], key: str,
                        interp: int | None, t: ReportThresholds) -> Finding:
    """One eps's delayed robustness. Every number the sentence quotes is one the rule read:
    the curve smoothed over 3 measurements (``phases.read_robustness``), and a raw last value
    above the floor that the smoothing has not confirmed is named as such."""
    eps = key.rsplit("_", 1)[1]
    phase, label = f"delayed robustness (eps {eps})", f"PGD accuracy (eps {eps})"
    steps, adv = series(history, key)
    if interp is None:
        return Finding(phase, False, None, None, None, label,
                       "training never interpolated, so no delay can be measured")
    if len(adv) < 3:
        return Finding(phase, False, None, None, None, label,
                       f"{label} measured at {len(adv)} steps (3 needed)")
    r = read_robustness(steps, adv, interp, window=t.window, rule=t.rule)
    if r.start is None or r.low is None:      # a reading after interpolation has its floor
        return Finding(phase, False, None, None, None, label,
                       f"{label} not measured after interpolation (step {interp})")
    s = r.curve.smoothed
    if r.onset is None:
        floor, top = float(s[r.low]), float(s[r.low:].max())
        text = (f"{label} did not rise {t.adv_rise:g} above its floor after interpolation "
                f"beyond its noise (smoothed over 3 measurements: floor {floor:.3f} at step "
                f"{steps[r.low]}, at most {top:.3f} after it)")
        raw_top = int(r.low + np.argmax(adv[r.low:]))
        if adv[raw_top] >= floor + t.adv_rise:
            text += (f"; a single measurement reached {adv[raw_top]:.3f} (step "
                     f"{steps[raw_top]})" + (", the last one: a rise not yet confirmed"
                                             if raw_top == len(adv) - 1 else ""))
        return Finding(phase, False, None, None, None, label, text)
    onset = r.onset
    v0 = float(s[onset.index - 1])
    top = float(s[onset.index:].max())
    final = float(adv[-1])
    words = (f"from {v0:.3f} (smoothed) at step {onset.text()}", f"to {top:.3f} (smoothed; "
             f"{final:.3f} at the end)")
    if onset.estimate >= t.delay_factor * max(interp, 1):
        return Finding(phase, True, onset.estimate, v0, top, label,
                       f"{label} rose {words[0]}, {onset.estimate - interp} steps after "
                       f"interpolation, {words[1]}", onset.low, onset.high)
    return Finding(phase, False, onset.estimate, v0, top, label,
                   f"no delay: {label} rose from interpolation on ({words[0]}) {words[1]}",
                   onset.low, onset.high)


def _loss_finding(history: Mapping[int, Mapping[str, float]],
                  t: ReportThresholds) -> Finding:
    """A regression's generalization, read off its test loss (it has no accuracy, so no
    interpolation or delayed generalization in the accuracy sense): seen when the smoothed test
    loss ends at most half its first value; the step is where it first came within 5% of its
    total fall."""
    steps, loss = series(history, "loss/test")
    s = smooth(loss, t.window)
    label = "test loss"
    if len(s) < 2 or s[-1] > 0.5 * s[0]:
        return Finding("generalization (test loss)", False, None, None, None, label,
                       f"test loss did not halve ({loss[0]:.3g} -> {loss[-1]:.3g})")
    step = int(steps[np.flatnonzero(s <= s[-1] + 0.05 * (s[0] - s[-1]))[0]])
    return Finding("generalization (test loss)", True, step, float(loss[0]), float(loss[-1]),
                   label, f"test loss fell from {loss[0]:.3g} to {loss[-1]:.3g} (within 5% of "
                          f"its fall by step {step}); a regression has no accuracy phases")


def reproduction_report(history: Mapping[int, Mapping[str, float]], *,
                        lc_key: str | None = None,
                        thresholds: ReportThresholds = ReportThresholds()) -> list[Finding]:
    """One ``Finding`` per phase of the paper, read off a measured history.

    Args:
        history: ``{step: {metric key: value}}`` as ``GrokTracker.history`` or a run's
            ``history.csv`` (keys ``acc/train``, ``acc/test``, ``lc/train`` or
            ``lc_r{r}/train``, ``adv/acc/eps_{eps}``).
        lc_key: the LC curve to read (default: every train-LC curve, one set of LC phases per
            radius, suffixed `` (r=...)`` when there are several).
        thresholds: what counts as seen (see the module docstring).
    Returns:
        Findings in the order: first descent, ascent, second descent (for each radius),
        interpolation, delayed generalization, then delayed robustness for each eps
        (ascending).
    """
    keys = [lc_key] if lc_key else train_lc_keys(history)
    findings = []
    fitted = interpolation(history, thresholds.interpolation_acc)
    for key in keys:
        radius = "" if key == "lc/train" else key[len("lc_r"):].split("/")[0]
        label = f"LC(train, r={radius})" if radius else "LC(train)"
        suffix = f" (r={radius})" if len(keys) > 1 else ""
        findings += _lc_findings(curve(history, key, thresholds.window), label, suffix,
                                 thresholds, fitted.estimate if fitted is not None else None)
        findings += _boundary_findings(history, key, suffix, thresholds,
                                       fitted.estimate if fitted is not None else 0)
    if not len(series(history, "acc/train")[1]) and len(series(history, "loss/test")[1]):
        findings.append(_loss_finding(history, thresholds))   # regression: no accuracy
        interp = None
    else:
        accuracy, interp = _accuracy_findings(history, thresholds)
        findings += accuracy
    findings += [_robustness_finding(history, k, interp, thresholds)
                 for k in adversarial_keys(history)]
    return findings


def report_markdown(findings: Sequence[Finding], title: str = "",
                    expected: Mapping[str, str] | None = None, stopped: str = "") -> str:
    """The report as Markdown: a headline, then one line per phase (seen or not, and why).

    Args:
        expected: optional {phase: what the paper says}, shown in a column of its own; a key
            without ``(eps ...)`` answers for every eps of that phase.
        stopped: where and why training stopped (``until: settled``, a sweep's stopper), the
            report's first line after the title.
    """
    seen = [f.phase for f in findings if f.seen]
    head = f"### What this run showed{': ' + title if title else ''}\n\n"
    if stopped:
        head += stopped + "\n\n"
    head += (f"Seen: {', '.join(seen)}.\n\n" if seen else "None of the paper's phases was seen.\n\n")
    columns = "| phase | seen | step | what happened |"
    rule = "|---|---|---|---|"
    if expected:
        columns, rule = columns + " the paper |", rule + "---|"
    rows = []
    for f in findings:
        row = (f"| {f.phase} | {'yes' if f.seen else 'under way' if f.under_way else 'no'} | "
               f"{f.step_text()} | {f.text} |")
        if expected:   # "delayed robustness" answers for every "delayed robustness (eps ...)"
            row += f" {expected.get(f.phase, expected.get(f.phase.split(' (')[0], ''))} |"
        rows.append(row)
    notes = ("\nRules: grok_mlflow.findings.phases (a rise or fall is a phase when it is beyond twice its "
             "noise, the logged sampling error and the curve's jitter, and at least 10% of the "
             "curve's level, 0.05 for accuracies; a step is estimated between the measured steps "
             "in brackets); delayed means at least 2x the interpolation step.\n")
    return head + "\n".join([columns, rule, *rows]) + "\n" + notes


def report_table(reports: Mapping[str, Sequence[Finding]],
                 stops: Mapping[str, str] | None = None) -> str:
    """One Markdown table for many runs (a sweep's children): a row per run, a column per
    phase, each cell ``step`` when seen, ``> N`` when under way at the last step N, ``no`` when
    not; ``stops``: {run: the step it stopped at ('' at the cap)}, a last column."""
    phases: list[str] = []
    for findings in reports.values():
        phases += [f.phase for f in findings if f.phase not in phases]
    extra = ["stopped at"] if stops is not None else []
    rows = ["| run | " + " | ".join(phases + extra) + " |",
            "|---" * (len(phases) + len(extra) + 1) + "|"]
    for name, findings in reports.items():
        by_phase = {f.phase: f for f in findings}
        cells = [("step " + by_phase[p].step_text() if by_phase[p].seen else
                  by_phase[p].step_text() if by_phase[p].under_way else "no")
                 if p in by_phase else "" for p in phases]
        if stops is not None:
            cells.append(stops.get(name) or "the cap")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"
