"""What a sweep's parent run holds at its end: every trial's phases (``phases.csv``), what each
trial showed (``report.md``), the paper's claims judged over the trials (``claims.md``,
``figures/claims.png``) and comparison figures; the verdicts open the parent's description.
"""

from __future__ import annotations

import csv
import io
from typing import Mapping

from ..findings.claims import claims_markdown, radius_dependent
from ..findings.history import read_history_csv
from ..findings.phases import BRACKETED, PHASE_KEYS, SHAPE_KEYS
from ..findings.plots import claims_figure, sweep_figures
from ..findings.report import report_table, reproduction_report
from ..findings.verdicts import evaluate_all
from ..store.reading import run_artifact_text
from ..store.sweep_runs import child_runs
from ..store.tracking_store import log_run_figure, log_run_text, tag_run
from .spec import SweepSpec, trial_name

__all__ = ["NOTE_LIMIT", "judge_claims", "parent_note", "summarise", "trial_metrics"]


def summarise(parent_id: str, spec: SweepSpec) -> list[str]:
    """CSV of every trial's phases and final metrics, comparison figures and the trials'
    reports, on the parent; returns ``trial: why`` for each trial whose run FAILED."""
    # the grid's order (sorted by the swept values as the spec lists them): rows, legends
    order = {trial_name(o): i for i, o in enumerate(spec.trials())}
    runs = sorted(child_runs(parent_id), key=lambda r: order.get(
        r.data.tags.get("mlflow.runName", ""), len(order)))
    finals = ["acc/train", "acc/test", "lc/train", "lc/test", "lc/random"]
    out = io.StringIO()
    writer = csv.writer(out)
    columns = [*PHASE_KEYS, *SHAPE_KEYS,
               *(k + end for k in BRACKETED for end in ("_low", "_high"))]
    writer.writerow(["run_id", "trial", *spec.grid, "status", "stop_step", *columns, *finals])
    histories = {}
    for run in runs:
        name = run.data.tags.get("mlflow.runName", run.info.run_id)
        writer.writerow([run.info.run_id, name, *(run.data.params.get(k, "") for k in spec.grid),
                         run.info.status, run.data.tags.get("grok_mlflow.stop_step", ""),
                         *(run.data.metrics.get(k, "") for k in columns),
                         *(run.data.metrics.get(k, "") for k in finals)])
        try:
            text = run_artifact_text(run.info.run_id, "history.csv")
        except Exception:  # noqa: BLE001 - a trial that died early has no history to draw
            continue
        histories[name] = (run, read_history_csv(text))
    log_run_text(parent_id, out.getvalue(), "phases.csv")
    verdicts = judge_claims(spec, runs)
    claims_text = ""
    if verdicts:
        claims_text = claims_markdown(verdicts, spec.name)
        log_run_text(parent_id, claims_text, "claims.md")
        log_run_figure(parent_id, claims_figure(verdicts), "figures/claims.png")
    if histories:
        # what every trial showed, one row each, in the grid's order
        table = report_table({n: reproduction_report(h) for n, (_, h) in histories.items()},
                             stops={n: r.data.tags.get("grok_mlflow.stop_step", "")
                                    for n, (r, _) in histories.items()}
                             if spec.base.until else None)
        text = (f"### Sweep {spec.name}: what each trial showed\n\nA step where the phase was "
                f"seen, `no` where it was not; each trial's own description says why.\n\n{table}")
        log_run_text(parent_id, text, "report.md")
        # the verdicts first: what a reader opening the parent run looks for
        tag_run(parent_id, {"mlflow.note.content": parent_note(claims_text, text)})
        for path, fig in sweep_figures(histories, list(spec.grid)).items():
            log_run_figure(parent_id, fig, path)
    elif claims_text:
        tag_run(parent_id, {"mlflow.note.content": claims_text})
    return [f"{r.data.tags.get('grok_mlflow.trial', r.info.run_id)}: "
            f"{r.data.tags.get('grok_mlflow.failure', 'FAILED')}"
            for r in runs if r.info.status == "FAILED"]


NOTE_LIMIT = 7_500      # MLflow cuts a tag at 8,000 characters; the link goes in front


def parent_note(claims_text: str, report: str) -> str:
    """The parent's description: the verdicts, then what each trial showed; when that is
    longer than MLflow keeps, the verdicts whole and where the rest is."""
    note = (claims_text + "\n" if claims_text else "") + report
    if len(note) <= NOTE_LIMIT:
        return note
    verdicts = claims_text.split("\nHow the verdicts")[0].rstrip() if claims_text else ""
    return (verdicts + "\n\nThe verdicts' rules are in `claims.md` and what each trial showed in "
            "`report.md` (too long for this description).\n")[:NOTE_LIMIT]


def judge_claims(spec: SweepSpec, runs: list) -> list:
    """Each of ``spec.claims`` judged (``verdicts.evaluate_all``: one verdict per radius read)
    over the child ``runs``: a trial's swept settings from its trial name, its quantities from
    its logged metrics (``grok/*`` of a one-radius run also as ``grok_r{r}/*``)."""
    by_name = {trial_name(o): o for o in spec.trials()}
    trials = [(by_name[name], trial_metrics(run.data.metrics, run.data.params)) for run in runs
              if (name := run.data.tags.get("grok_mlflow.trial",
                                            run.data.tags.get("mlflow.runName"))) in by_name]
    setting = f"{spec.base.model} on {spec.base.dataset}"
    # a batch (--only) judges the claims about its own trials; the rest wait for their batch
    claims = [c for c in spec.claims if not spec.only or any(
        all(o.get(k) == v for k, v in c.where.items()) for o in spec.trials())]
    return [v for c in claims for v in evaluate_all(c, trials, spec.grid[c.versus],
                                                    setting=setting)]


def trial_metrics(metrics: Mapping[str, float], params: Mapping[str, str]) -> dict[str, float]:
    """A trial run's metrics, with its LC quantities named by radius: a run that measured one
    radius (its ``lc_radius`` param) logs ``grok/lc_peak_value`` and ``lc/train``; these are
    also ``grok_r{r}/...`` and ``lc_r{r}/...`` here, as a several-radii run logs them."""
    metrics = dict(metrics)
    radii = [r for r in params.get("lc_radius", "").split(",") if r.strip()]
    if len(radii) == 1:
        r = f"{float(radii[0]):g}"
        for key, value in list(metrics.items()):
            name = key.removesuffix("_low").removesuffix("_high")
            if radius_dependent(name) and "_r" not in key.split("/")[0]:
                head, rest = key.split("/", 1)
                metrics[f"{head}_r{r}/{rest}"] = value
    return metrics
