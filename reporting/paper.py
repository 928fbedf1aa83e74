"""The study's tables from the database: survey, failure taxonomy, pilot agreement, synthetic-model outcomes.

`build_report` reads only through db/queries (and labeling.agreement for the coefficients) and returns the
tables plus the choices they depend on; `write_report` writes them as CSV files and one Markdown file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy.engine import Engine

from db.errors import InteropError
from db.models.failures import DEFAULT_SIGNATURE_RULE
from reporting.reductions import add_reductions

if TYPE_CHECKING:
    from miners.survey.workflow import ImportOutcome

#: Names the artifact gets in the database (rounds are named after the workbook files by `label import-sheet`).
SURVEY = "onnx-interop-survey"
CAMPAIGN = "study-exporter-results"
#: the study's operator changes per opset, inside the artifact
OPSET_DIFF = Path("failure-analysis/onnx_opset_diff.json")
ROUND_FINAL = "failureanalysis"
ROUND_PILOT = "pilotstudy"
ROUND_DRIFT = "failureanalysis-drift-testing"
CONVERTERS = {"pytorch/pytorch": "torch.onnx (PyTorch)", "onnx/tensorflow-onnx": "tf2onnx (TensorFlow)"}
DEMOGRAPHICS = ("Q1", "Q2", "Q5", "Q67")
INTEROPERABILITY = ("Q60", "Q61", "Q62", "Q63", "Q65", "Q78", "Q64", "Q66")
#: Failure dimensions and, for sub-types, the cause they refine (their denominator).
DIMENSIONS = {
    "component": ("Failure location (component)", None),
    "symptom": ("Failure symptom", None),
    "cause": ("Failure cause", None),
    "incompatibility_type": ("Cause sub-type: incompatibility", "Incompatibility"),
    "type_problem_type": ("Cause sub-type: type problem", "Type Problem"),
}


class ReportError(InteropError):
    """The database lacks what a table needs (say which import fills it)."""


@dataclass
class Table:
    """One table of the report: its file stem, title, what it counts and its denominator, and the data."""

    name: str
    title: str
    note: str
    frame: pd.DataFrame


@dataclass
class PaperReport:
    tables: list[Table] = field(default_factory=list)
    choices: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def table(self, name: str) -> pd.DataFrame:
        return next(t.frame for t in self.tables if t.name == name)


# --- survey --------------------------------------------------------------------------------------------


def import_survey_export(engine: Engine, export: Path, survey: str = SURVEY) -> ImportOutcome:
    """The study's Qualtrics export into `survey` through the survey import workflow (idempotent)."""
    from miners.survey.workflow import ImportRequest, import_survey

    return import_survey(engine, ImportRequest(file=export, survey=survey))


def _survey_table(engine: Engine, survey: str, qids: tuple[str, ...]) -> pd.DataFrame:
    from db.queries import survey as survey_q

    questions = survey_q.list_questions(engine, survey_q.SurveyFilter(survey)).set_index("qid")
    frames = []
    for qid in qids:
        if qid not in questions.index:
            continue
        q = questions.loc[qid]
        counts = survey_q.question_counts(engine, survey_q.SurveyFilter(survey, qid))
        if q["kind"] == "text":
            counts = pd.DataFrame(
                [
                    {
                        "choice": "(free-text answers)",
                        "count": int(q["n_answered"]),
                        "n_answered": int(q["n_answered"]),
                        "n_respondents": int(counts["n_respondents"].iloc[0]) if len(counts) else 0,
                    }
                ]
            )
            counts["pct_of_answered"] = 100.0
            respondents = counts["n_respondents"].where(counts["n_respondents"] > 0)
            counts["pct_of_respondents"] = counts["count"] * 100.0 / respondents
        counts.insert(0, "kind", q["kind"])
        counts.insert(0, "question", str(q["text"]).replace(" - Selected Choice", ""))
        counts.insert(0, "qid", qid)
        frames.append(counts)
    if not frames:
        raise ReportError(f"survey {survey!r} has none of {', '.join(qids)}: run `interop survey import`")
    out = pd.concat(frames, ignore_index=True)
    for column in ("pct_of_answered", "pct_of_respondents"):
        out[column] = out[column].astype(float).round(1)
    return out


# --- failure taxonomy ----------------------------------------------------------------------------------


def _finals(engine: Engine) -> pd.DataFrame:
    from db.queries import labeling as labeling_q

    finals = labeling_q.final_labels(engine, labeling_q.LabelFilter(rounds=(ROUND_FINAL,)))
    if finals.empty:
        raise ReportError(
            f"no final labels in round {ROUND_FINAL!r}: run `interop label import-sheet FailureAnalysis.xlsx`"
        )
    finals = finals.assign(converter=finals["repository"].map(CONVERTERS).fillna(finals["repository"]))
    return finals


def _per_converter(finals: pd.DataFrame, dimension: str, parent: str | None) -> pd.DataFrame:
    """Counts and % of each code per converter and overall; sub-types over the issues with the parent cause."""
    dim = finals[finals["dimension"] == dimension]
    rows = []
    converters = sorted(finals["converter"].unique())
    if parent is not None:
        with_parent = finals[(finals["dimension"] == "cause") & (finals["label"] == parent)]
        denominators = with_parent.groupby("converter")["item_id"].nunique().to_dict()
    else:
        denominators = finals[finals["dimension"] == dimension].groupby("converter")["item_id"].nunique().to_dict()
    total_den = sum(denominators.values())
    for (code, label), group in dim.groupby(["code", "label"]):
        row: dict[str, Any] = {"code": int(code), "label": label}
        for conv in converters:
            n = int(group.loc[group["converter"] == conv, "item_id"].nunique())
            den = denominators.get(conv, 0)
            row[f"{conv} n"] = n
            row[f"{conv} %"] = round(100.0 * n / den, 1) if den else math.nan
        n_all = int(group["item_id"].nunique())
        row["all n"] = n_all
        row["all %"] = round(100.0 * n_all / total_den, 1) if total_den else math.nan
        rows.append(row)
    out = pd.DataFrame(rows).sort_values(["all n", "code"], ascending=[False, True], ignore_index=True)
    denominator_row: dict[str, Any] = {"code": None, "label": "(denominator)"}
    for conv in converters:
        denominator_row[f"{conv} n"] = int(denominators.get(conv, 0))
        denominator_row[f"{conv} %"] = 100.0
    denominator_row.update({"all n": int(total_den), "all %": 100.0})
    return pd.concat([out, pd.DataFrame([denominator_row])], ignore_index=True)


def _crosstab(engine: Engine, converter: str | None) -> pd.DataFrame:
    """Symptom × cause of the final round (one converter's repositories, or all) with total margins."""
    from db.queries import labeling as labeling_q

    repositories = tuple(repo for repo, name in CONVERTERS.items() if name == converter)
    selected = labeling_q.LabelFilter(rounds=(ROUND_FINAL,), repositories=repositories)
    table = labeling_q.crosstab(engine, selected, "symptom", "cause")
    if table.empty:
        return table
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum()
    table.index.name = "symptom \\ cause"
    return table.reset_index()


# --- agreement and synthetic models --------------------------------------------------------------------


def _agreement(engine: Engine) -> pd.DataFrame:
    from db.queries import labeling as labeling_q
    from labeling.agreement import agreement_report
    from labeling.summary import round_categories

    ratings = labeling_q.ratings(engine, labeling_q.LabelFilter(rounds=(ROUND_PILOT, ROUND_DRIFT)))
    if ratings.empty:
        raise ReportError(
            f"no ratings in rounds {ROUND_PILOT!r}/{ROUND_DRIFT!r}: run `interop label import-sheet "
            "PilotStudy.xlsx` and `… FailureAnalysis.xlsx`"
        )
    rows = [r.as_row() for r in agreement_report(ratings, round_categories(engine))]
    frame = pd.DataFrame(rows)
    out = pd.DataFrame(
        {"round": frame["round"], "dimension": frame["dimension"], "coders": frame["coders"], "items": frame["items"]}
    )
    for name in ("percent_agreement", "cohen_kappa", "fleiss_kappa", "krippendorff_alpha", "gwet_ac1"):
        if name not in frame:
            continue
        out[name] = frame[name].astype(float).round(3)
        lo_hi = frame[f"{name}_ci"].map(lambda ci: ci if isinstance(ci, tuple | list) else (math.nan, math.nan))
        out[f"{name} 95% CI"] = lo_hi.map(lambda ci: "" if math.isnan(ci[0]) else f"[{ci[0]:.3f}, {ci[1]:.3f}]")
    out["κ reading (Landis–Koch)"] = frame["reading"]
    out["α reading (Krippendorff)"] = frame["krippendorff_alpha_reading"]
    out["warnings"] = frame["warnings"].map(lambda w: "; ".join(w))
    order = {ROUND_PILOT: 0, ROUND_DRIFT: 1}
    return out.sort_values(
        ["round", "dimension"], key=lambda s: s.map(order) if s.name == "round" else s, ignore_index=True
    )


def _synthetic(engine: Engine) -> tuple[pd.DataFrame, dict[str, Any]]:
    from db.outcomes import FAILURES
    from db.queries import experiments as xq

    counts = xq.outcome_counts(engine, xq.RunFilter(campaign=CAMPAIGN))
    if counts.empty:
        raise ReportError(f"campaign {CAMPAIGN!r} has no runs: run `interop experiment import-results DIR`")
    outcomes = [o for o in xq.OUTCOMES if o in set(counts["status"])]
    table = counts.pivot_table(
        index=["converter", "node_count"], columns="status", values="runs", aggfunc="sum", fill_value=0
    ).reindex(columns=outcomes, fill_value=0)
    table.insert(0, "models", table.sum(axis=1))
    failed = [o for o in outcomes if o in FAILURES]
    table["failure %"] = (100.0 * table[failed].sum(axis=1) / table["models"]).round(1)
    compared = table.get("passed", 0) + table.get("mismatch", 0)
    table["mismatch % of converted"] = (100.0 * table.get("mismatch", 0) / compared.where(compared > 0)).round(1)
    table = table.reset_index()
    table.columns.name = None
    totals = counts.groupby(["converter", "status"])["runs"].sum().unstack(fill_value=0)
    campaigns = xq.campaigns(engine).set_index("campaign")
    campaign = campaigns.loc[CAMPAIGN].to_dict() if CAMPAIGN in campaigns.index else {}
    tolerances = xq.judged_tolerances(engine, xq.RunFilter(campaign=CAMPAIGN))
    return table, {"totals": totals, "campaign": campaign, "tolerances": tolerances}


def judged_at(tolerances: pd.DataFrame, study: dict[str, Any] | None) -> str:
    """The tolerances the stored verdicts were judged at, read from the runs (`rescore` may have changed them)."""
    if tolerances.empty:
        return ""
    used = [f"atol={r.atol:g}, rtol={r.rtol:g} ({r.runs:,} {r.converter} runs)" for r in tolerances.itertuples()]
    text = " at " + "; ".join(used)
    pairs = {(float(r.atol), float(r.rtol)) for r in tolerances.itertuples()}
    if isinstance(study, dict) and pairs != {(float(study["atol"]), float(study["rtol"]))}:
        text += (
            f" (re-judged with `interop experiment rescore`; the study's own: atol={float(study['atol']):g}, "
            f"rtol={float(study['rtol']):g})"
        )
    return text


# --- the report ----------------------------------------------------------------------------------------


def build_report(engine: Engine, survey: str = SURVEY, artifact: Path | None = None) -> PaperReport:
    """Every table of the study from the configured database (after the artifact was imported); with the artifact's
    folder also failures against ONNX's evolution (from its onnx_opset_diff.json)."""
    from db.queries import survey as survey_q

    report = PaperReport()
    surveys = survey_q.list_surveys(engine).set_index("survey")
    if survey not in surveys.index:
        raise ReportError(f"no survey {survey!r}: run `interop survey import interopSurvey.xlsx --survey {survey}`")
    info = surveys.loc[survey]
    report.facts.update(respondents=int(info["respondents"]), included=int(info["included"]))
    report.choices.append(
        f"Survey: all {int(info['included'])} of {int(info['respondents'])} responses are included (no exclusion "
        "rule; the export holds only the 92 respondents the study analysed). Every percentage is given twice: "
        "of the respondents who answered that question (`pct_of_answered`, the study's denominator) and of all "
        "included respondents (`pct_of_respondents`). Multi-select questions add up to more than 100%."
    )
    report.tables.append(
        Table(
            "survey_demographics",
            "Survey: respondents' background",
            "counts per choice; denominators n_answered / n_respondents",
            _survey_table(engine, survey, DEMOGRAPHICS),
        )
    )
    report.tables.append(
        Table(
            "survey_interoperability",
            "Survey: interoperability (Q60–Q66)",
            "counts per choice; free-text questions: how many wrote an answer",
            _survey_table(engine, survey, INTEROPERABILITY),
        )
    )

    finals = _finals(engine)
    report.facts["coded_issues"] = finals.groupby("converter")["item_id"].nunique().to_dict()
    report.choices.append(
        f"Failure analysis: the final codes of round `{ROUND_FINAL}` (FailureAnalysis.xlsx, sheets PyTorch and "
        "tf2onnx). Percentages are of the issues coded in that dimension per converter; the cause sub-types are "
        "percentages of the issues whose cause is the parent (Incompatibility, Type Problem)."
    )
    for dimension, (title, parent) in DIMENSIONS.items():
        if not (finals["dimension"] == dimension).any():
            continue
        report.tables.append(
            Table(
                f"failures_{dimension}",
                title,
                "issues per code and converter",
                _per_converter(finals, dimension, parent),
            )
        )
    report.tables.append(
        Table(
            "failures_symptom_x_cause",
            "Symptom × cause (both converters)",
            "issues; margins are totals",
            _crosstab(engine, None),
        )
    )
    for conv in CONVERTERS.values():
        slug = conv.split(" ")[0].replace(".", "_")
        report.tables.append(
            Table(
                f"failures_symptom_x_cause_{slug}",
                f"Symptom × cause: {conv}",
                "issues; margins are totals",
                _crosstab(engine, conv),
            )
        )

    report.choices.append(
        f"Agreement: rounds `{ROUND_PILOT}` (PilotStudy.xlsx, two raters, 30 + 30 issues) and `{ROUND_DRIFT}` "
        "(the drift-testing sheets). Nominal coefficients over the items both raters coded; 95% intervals by a "
        "seeded bootstrap over items (1,000 resamples); Gwet's AC1 over the codebook's full scale; κ read on the "
        "Landis & Koch (1977) scale, Krippendorff's α on its own (Krippendorff 2004: ≥ 0.800 reliable, ≥ 0.667 "
        "tentative conclusions only, below that unreliable)."
    )
    report.tables.append(
        Table(
            "pilot_agreement",
            "Inter-rater agreement per dimension",
            "two raters; coefficient [95% CI]",
            _agreement(engine),
        )
    )

    synthetic, facts = _synthetic(engine)
    spec = facts["campaign"].get("spec")
    study = spec.get("judged_at") if isinstance(spec, dict) else None
    report.facts["synthetic_totals"] = facts["totals"]
    report.choices.append(
        f"Synthetic models: campaign `{CAMPAIGN}` imported from exporter_test_results/ (one run per model file "
        "entry). Outcomes are the study's own verdicts: torch `result` 0 with `mismatch` true/false, TensorFlow "
        "`result` 0 judged from the stored max absolute difference (`mad`)"
        + judged_at(facts["tolerances"], study)
        + " (a NaN `mad` counts as a mismatch)"
        + "; `result` 1 (an error) is `failed` with the stage classified from its message. `failure %` is of all "
        "models and counts failed, crash, timeout and oom; `mismatch %` is of the models that converted and ran."
    )
    report.tables.append(
        Table(
            "synthetic_outcomes",
            "Synthetic models (NNSmith): outcome by converter × node count",
            "models per outcome",
            synthetic,
        )
    )
    _distinct_failures(engine, report)
    add_reductions(engine, report)
    if artifact is not None:
        _onnx_evolution(engine, report, artifact / OPSET_DIFF)
    return report


def _onnx_evolution(engine: Engine, report: PaperReport, diff_path: Path) -> None:
    """Beyond the paper: operator changes per ONNX release against issues over time and the failing operators."""
    from reporting.evolution import EvolutionError, evolution

    try:
        found = evolution(engine, diff_path, CAMPAIGN)
    except EvolutionError as exc:
        raise ReportError(str(exc)) from exc
    trends = found["trends"]
    lines = [f"{name}: {t.verdict}" + (f" ({'; '.join(t.notes)})" if t.notes else "") for name, t in trends.items()]
    report.facts["onnx_trends"] = {name: (t.rho, t.p_value, t.months) for name, t in trends.items()}
    report.choices.append(
        "Failures against ONNX's evolution (not in the paper): operators added or updated per ONNX opset release "
        "(onnx_opset_diff.json) per month, against issues opened per month in each converter repository (issues "
        "with a creation date, i.e. mined); Spearman's rank correlation (scipy) over the months both cover, only with "
        f"at least 6 months and 20 dated issues. {' · '.join(lines)}. Failing operators are those the synthetic "
        "models' failure signatures name, against the opset that introduced them and the last opset at or below the "
        "requested one that changed them."
    )
    report.tables.append(
        Table(
            "onnx_releases",
            "ONNX opset releases: operators added and updated",
            "operators per opset (onnx_opset_diff.json)",
            found["releases"][["opset", "date", "added", "updated", "changes"]],
        )
    )
    series = trends["all"].series
    report.tables.append(
        Table(
            "issues_vs_onnx_changes",
            "Issues per month against ONNX operator changes per month",
            trends["all"].verdict,
            series if not series.empty else pd.DataFrame({"month": [], "changes": [], "issues": []}),
        )
    )
    report.tables.append(
        Table(
            "failing_operators_by_opset",
            "Synthetic models: failing operators against the opset that introduced or last changed them",
            "runs per converter × operator × requested opset",
            found["operators"],
        )
    )


def _distinct_failures(engine: Engine, report: PaperReport) -> None:
    """Beyond the paper: how many distinct failures (signatures) the synthetic models' failed runs are."""
    from db.queries import failures as fq
    from db.queries.experiments import RunFilter

    per_stage = fq.signature_counts(engine, RunFilter(campaign=CAMPAIGN))
    if per_stage.empty:
        raise ReportError(
            f"campaign {CAMPAIGN!r} has no failure signatures: "
            f"run `interop experiment signatures --campaign {CAMPAIGN}`"
        )
    listed = fq.signatures(engine, RunFilter(campaign=CAMPAIGN))
    report.facts["distinct_failures"] = per_stage
    report.choices.append(
        "Distinct failures (not in the paper, which counts failed runs): every run of the synthetic models without "
        f"a passing verdict gets a signature under rule `{DEFAULT_SIGNATURE_RULE}` — converter × stage × error class "
        "× the message "
        "with node names, paths, numbers, shapes and dtypes canonicalised × the operator the message names; a "
        "mismatch's signature is how its outputs disagree (the torch results store no numbers: one signature). "
        "Stages of failed runs are classified from their messages by the import."
    )
    report.tables.append(
        Table(
            "distinct_failures",
            "Synthetic models: distinct failures (signatures) per converter × stage",
            "runs without a passing verdict, their distinct signatures, and the runs of the most common one",
            per_stage,
        )
    )
    top = listed.drop(columns=["campaigns", "first_seen", "last_seen", "repro"])
    report.tables.append(
        Table(
            "failure_signatures",
            "Synthetic models: every failure signature",
            "runs and models per signature; the example run's repro: `interop experiment repro RUN`",
            top,
        )
    )


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    if frame.empty:
        return "_(no rows)_\n"

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if isinstance(value, float):
            return f"{value:g}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def write_report(report: PaperReport, out_dir: Path, imported: list[str] | None = None) -> list[Path]:
    """OUT/paper-report.md and one CSV per table; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    parts = [
        "# Interoperability in Deep Learning: the study's tables, reproduced\n",
        "Generated by `interop report paper` from the configured database.\n",
    ]
    if imported:
        parts.append("## Imported\n\n" + "\n".join(f"- {line}" for line in imported) + "\n")
    parts.append("## Choices these numbers depend on\n\n" + "\n".join(f"- {c}" for c in report.choices) + "\n")
    for table in report.tables:
        path = out_dir / f"{table.name}.csv"
        table.frame.to_csv(path, index=False)
        written.append(path)
        parts.append(f"## {table.title}\n\n_{table.note}; CSV: `{path.name}`_\n\n{markdown_table(table.frame)}")
    md = out_dir / "paper-report.md"
    md.write_text("\n".join(parts), encoding="utf-8")
    return [md, *written]
