"""What a run showed: the paper's phases, read off a run's measured history, in plain words.

``reproduction_report`` turns a ``{step: {metric: value}}`` history into one ``Finding`` per phase
of the paper (sec. 3 and fig. 1): whether it happened, at which step, from which value to which.
It uses the same detectors as the ``grok/*`` metrics (``grok_mlflow.phases``), so the report and
the MLflow table never disagree. The tracker puts ``report_markdown`` of it into the run's
description (``mlflow.note.content``, what the MLflow UI shows first on a run's page) and into
the artifact ``report.md``; ``grok-mlflow report RUN_ID`` prints it for any finished run.

Phases and the rules that decide "seen" (thresholds are ``ReportThresholds`` fields):

======================  ===========================================================================
first descent           LC(train) falls (by >= ``rel_tol``, 5%, of the curve's range) from its
                        first value to a first local minimum that the smoothed curve later rises
                        from by >= ``rel_tol`` of its range
ascent                  after that minimum, the smoothed curve reaches a higher peak
second descent          after the peak, the smoothed curve falls >= ``rel_tol`` of the ascent's
(region migration)      height below it (the onset is the first such step) and ends at least
                        ``descent_frac`` (25%) of that height below the peak (a sustained fall)
interpolation           training accuracy reaches ``interpolation_acc`` (0.99)
delayed                 test accuracy generalises (``grok/generalization_step``: smoothed test
generalization          accuracy within 95% of its final value, ending >= 0.1 above its start)
                        at least ``delay_factor`` (2x) later than interpolation *and* gains
                        >= ``late_gain`` (0.05) after interpolation; generalising with or before
                        interpolation is reported as "no delay"
delayed robustness      per eps: after interpolation, adversarial accuracy leaves its floor and
(per eps)               rises >= ``adv_rise`` (0.05) above it; delayed when that onset is at least
                        ``delay_factor`` x the interpolation step (log-spaced measurements make
                        anything closer indistinguishable from "at interpolation")
======================  ===========================================================================

With several LC radii each radius gets its own three LC phases (``first descent (r=0.05)``).
A phase that the history does not show is reported as "not seen", with the reason (never a
guess); a phase whose curve was not measured is "not measured".

Example:
    >>> findings = reproduction_report(tracker.history)
    >>> print(report_markdown(findings, title="my run"))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .phases import adversarial_keys, lc_phases, robustness_onset, series, smooth

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
    delay_factor: float = 2.0     # "delayed": at least this many times the interpolation step
    descent_frac: float = 0.25    # second descent: share of the ascent undone by the end


@dataclass(frozen=True)
class Finding:
    """One phase of one run.

    Attributes:
        phase: e.g. ``first descent``, ``delayed robustness (eps 0.1)``.
        seen: whether the run shows it.
        step: the step it happened at (end of a descent, peak, onset), or None.
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


def train_lc_keys(history: Mapping[int, Mapping[str, float]]) -> list[str]:
    """The train-LC curves of a history: ``lc/train``, or ``lc_r{r}/train`` for each radius
    (ascending r)."""
    keys = {k for row in history.values() for k in row}
    if "lc/train" in keys:
        return ["lc/train"]
    found = [k for k in keys if k.startswith("lc_r") and k.endswith("/train")]
    return sorted(found, key=lambda k: float(k[len("lc_r"):].split("/")[0])) or ["lc/train"]


def _value_at(steps: np.ndarray, values: np.ndarray, step: int) -> float:
    return float(values[int(np.searchsorted(steps, step))])


def _lc_findings(steps: np.ndarray, lc: np.ndarray, label: str, suffix: str,
                 t: ReportThresholds) -> list[Finding]:
    names = [p + suffix for p in PHASES[:3]]
    if len(lc) < 3:
        return [Finding(p, False, None, None, None, label, f"{label} not measured")
                for p in names]
    found = lc_phases(steps, lc, window=t.window, rel_tol=t.rel_tol)
    s = smooth(lc, t.window)
    tol = t.rel_tol * max(float(s.max() - s.min()), 1e-12)
    first = float(lc[0])
    out = []
    fmin = found.get("grok/lc_first_min_step")
    i_min = None if fmin is None else int(np.searchsorted(steps, fmin))
    if i_min is not None and s[0] - s[i_min] >= tol:
        v = float(lc[i_min])
        out.append(Finding(names[0], True, fmin, first, v, label,
                           f"{label} fell from {first:.3g} (step {steps[0]}) to {v:.3g} "
                           f"(step {fmin})"))
    else:
        out.append(Finding(names[0], False, None, None, None, label,
                           f"{label} did not fall before rising (it starts at {first:.3g})"
                           if fmin is not None else
                           f"{label} never rose again after falling (no first minimum)"))
    peak = found.get("grok/lc_peak_step")
    if peak is not None:
        lo, hi = float(lc[i_min]), _value_at(steps, lc, peak)
        out.append(Finding(names[1], True, peak, lo, hi, label,
                           f"{label} rose from {lo:.3g} (step {fmin}) to {hi:.3g} at step {peak}"))
    else:
        out.append(Finding(names[1], False, None, None, None, label,
                           f"{label} did not rise after its first minimum" if fmin is not None
                           else "no first minimum to rise from"))
    onset = found.get("grok/migration_onset_step")
    if peak is None:
        out.append(Finding(names[2], False, None, None, None, label, "no ascent to descend from"))
        return out
    i_peak = int(np.searchsorted(steps, peak))
    height = max(float(s[i_peak] - s[i_min]), 1e-12)
    fallen = float(s[i_peak] - s[-1]) / height      # share of the ascent undone by the end
    hi = float(lc[i_peak])
    end = float(s[-1])   # smoothed: a last-step loss spike must not decide or misreport it
    if onset is not None and fallen >= t.descent_frac:
        out.append(Finding(names[2], True, onset, hi, end, label,
                           f"region migration: {label} fell from its peak {hi:.3g} (step {peak}) "
                           f"from step {onset} on, to {end:.3g} at the end (smoothed) "
                           + (f"({fallen:.0%} of the ascent undone)" if fallen <= 1 else
                              "(below where the ascent began)")))
    elif onset is not None:
        out.append(Finding(names[2], False, None, None, None, label,
                           f"{label} dipped after its peak (step {onset}) but ended at "
                           f"{end:.3g} (smoothed), only {max(fallen, 0):.0%} of the ascent below "
                           f"the peak {hi:.3g} ({t.descent_frac:.0%} needed)"))
    else:
        out.append(Finding(names[2], False, None, None, None, label,
                           f"{label} stayed at its peak until the end (step {steps[-1]})"))
    return out


def _accuracy_findings(history: Mapping[int, Mapping[str, float]],
                       t: ReportThresholds) -> tuple[list[Finding], int | None]:
    steps, acc = series(history, "acc/train")
    out = []
    interp = None
    if not len(acc):
        out.append(Finding("interpolation", False, None, None, None, "train accuracy",
                           "train accuracy not measured"))
    else:
        hits = np.flatnonzero(acc >= t.interpolation_acc)
        if len(hits):
            interp = int(steps[hits[0]])
            out.append(Finding("interpolation", True, interp, float(acc[0]), float(acc[hits[0]]),
                               "train accuracy",
                               f"train accuracy reached {acc[hits[0]]:.3f} at step {interp} "
                               f"(from {acc[0]:.3f})"))
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
    reached = np.flatnonzero(s >= t.generalization_frac * s[-1])
    final = float(acc_te[-1])
    if not len(reached) or s[-1] - acc_te[0] < t.min_gain:
        out.append(Finding("delayed generalization", False, None, None, None, label,
                           f"test accuracy never rose {t.min_gain:g} above its start "
                           f"({acc_te[0]:.3f} -> {final:.3f}): no generalization"))
        return out, interp
    gen = int(steps_te[reached[0]])
    if interp is None:
        out.append(Finding("delayed generalization", False, gen, None, None, label,
                           f"test accuracy reached {final:.3f}, but training never interpolated"))
        return out, interp
    at_interp = float(np.interp(np.log1p(interp), np.log1p(steps_te), s))
    gain = float(s[-1]) - at_interp
    if gen >= t.delay_factor * max(interp, 1) and gain >= t.late_gain:
        out.append(Finding("delayed generalization", True, gen, at_interp, final, label,
                           f"grokking: test accuracy was {at_interp:.3f} at interpolation (step "
                           f"{interp}) and generalised at step {gen}, ending at {final:.3f}"))
    else:
        out.append(Finding("delayed generalization", False, gen, None, None, label,
                           f"no delay: test accuracy generalised at step {gen} (interpolation: "
                           f"step {interp}); {at_interp:.3f} at interpolation, {final:.3f} at "
                           f"the end"))
    return out, interp


def _robustness_finding(history: Mapping[int, Mapping[str, float]], key: str,
                        interp: int | None, t: ReportThresholds) -> Finding:
    eps = key.rsplit("_", 1)[1]
    phase, label = f"delayed robustness (eps {eps})", f"PGD accuracy (eps {eps})"
    steps, adv = series(history, key)
    if interp is None:
        return Finding(phase, False, None, None, None, label,
                       "training never interpolated, so no delay can be measured")
    if len(adv) < 3:
        return Finding(phase, False, None, None, None, label,
                       f"{label} measured at {len(adv)} steps (3 needed)")
    onset = robustness_onset(steps, adv, interp, window=t.window, adv_rise=t.adv_rise)
    after = steps >= interp
    if not after.any():
        return Finding(phase, False, None, None, None, label,
                       f"{label} not measured after interpolation (step {interp})")
    if onset is None:
        lo, hi = float(adv[after].min()), float(adv[after].max())
        return Finding(phase, False, None, None, None, label,
                       f"{label} did not rise {t.adv_rise:g} after interpolation "
                       f"(between {lo:.3f} and {hi:.3f} from step {interp} on)")
    v0 = _value_at(steps, adv, onset)
    top = float(adv[steps >= onset].max())
    final = float(adv[-1])
    if onset >= t.delay_factor * max(interp, 1):
        return Finding(phase, True, onset, v0, top, label,
                       f"{label} rose from {v0:.3f} at step {onset}, {onset - interp} steps after "
                       f"interpolation, to {top:.3f} ({final:.3f} at the end)")
    return Finding(phase, False, onset, v0, top, label,
                   f"no delay: {label} rose from interpolation on (step {onset}: {v0:.3f}) to "
                   f"{top:.3f} ({final:.3f} at the end)")


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
    for key in keys:
        radius = "" if key == "lc/train" else key[len("lc_r"):].split("/")[0]
        label = f"LC(train, r={radius})" if radius else "LC(train)"
        suffix = f" (r={radius})" if len(keys) > 1 else ""
        findings += _lc_findings(*series(history, key), label, suffix, thresholds)
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
                    expected: Mapping[str, str] | None = None) -> str:
    """The report as Markdown: a headline, then one line per phase (seen or not, and why).

    Args:
        expected: optional {phase: what the paper says}, shown in a column of its own; a key
            without ``(eps ...)`` answers for every eps of that phase.
    """
    seen = [f.phase for f in findings if f.seen]
    head = f"### What this run showed{': ' + title if title else ''}\n\n"
    head += (f"Seen: {', '.join(seen)}.\n\n" if seen else "None of the paper's phases was seen.\n\n")
    columns = "| phase | seen | step | what happened |"
    rule = "|---|---|---|---|"
    if expected:
        columns, rule = columns + " the paper |", rule + "---|"
    rows = []
    for f in findings:
        row = (f"| {f.phase} | {'yes' if f.seen else 'no'} | "
               f"{'' if f.step is None else f.step} | {f.text} |")
        if expected:   # "delayed robustness" answers for every "delayed robustness (eps ...)"
            row += f" {expected.get(f.phase, expected.get(f.phase.split(' (')[0], ''))} |"
        rows.append(row)
    notes = ("\nThresholds: grok_mlflow.report (a phase is seen when the smoothed curve moves by "
             "at least 5% of its range; delayed means at least 2x the interpolation step).\n")
    return head + "\n".join([columns, rule, *rows]) + "\n" + notes


def report_table(reports: Mapping[str, Sequence[Finding]]) -> str:
    """One Markdown table for many runs (a sweep's children): a row per run, a column per
    phase, each cell ``step`` when seen, ``no`` when not."""
    phases: list[str] = []
    for findings in reports.values():
        phases += [f.phase for f in findings if f.phase not in phases]
    rows = ["| run | " + " | ".join(phases) + " |", "|---" * (len(phases) + 1) + "|"]
    for name, findings in reports.items():
        by_phase = {f.phase: f for f in findings}
        cells = [("step " + str(by_phase[p].step) if by_phase[p].seen else "no")
                 if p in by_phase else "" for p in phases]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"
