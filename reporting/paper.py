"""The study's tables from the database: survey, failure taxonomy, pilot agreement, synthetic-model outcomes.

`build_report` reads only through db/queries (and labeling.agreement for the coefficients) and returns the
tables plus the choices they depend on; `write_report` writes them as CSV files and one Markdown file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
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
#: the study's raw exporter results, inside the artifact
EXPORTER_RESULTS = Path("synthetic-models/exporter_test_results")
#: the free-text questions the study coded thematically (survey_analysis.xlsx sheets)
THEMATIC = {"Q64": "Deployment Consideration", "Q66": "How to address ONNX issues", "Q78": "Use case"}
#: the stages a synthetic model's run can end in, as the paper splits them (column order of the tables)
STAGES = ("conversion failure", "runtime (onnxruntime) failure", "timeout", "output mismatch", "pass")
#: failing pipeline stages that are onnxruntime's (the rest before a comparison are the converter's or framework's)
ORT_STAGES = ("ort_session", "ort_run")

#: progress of the slow steps: (what, done, total)
Progress = Callable[[str, int, int], None]


def _quiet(_what: str, _done: int, _total: int) -> None:
    """No progress shown (library use, tests)."""


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
    #: a stacked survey table: written once per question (heading with its text and denominators), not per row
    per_question: bool = False


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
        counts.insert(0, "question", str(q["text"]))
        counts.insert(0, "qid", qid)
        frames.append(counts)
    if not frames:
        raise ReportError(f"survey {survey!r} has none of {', '.join(qids)}: run `interop survey import`")
    out = pd.concat(frames, ignore_index=True)
    for column in ("pct_of_answered", "pct_of_respondents"):
        out[column] = out[column].astype(float).round(1)
    return out


# --- thematic tables of the free-text answers (issue 18: the survey-coding work provides `theme_counts`) -------


def _thematic(engine: Engine, report: PaperReport, survey: str) -> None:
    """The paper's thematic tables: themes per free-text question, from the coded survey answers."""
    from db.queries.labeling import theme_counts

    tables = []
    for qid, sheet in THEMATIC.items():
        frame = theme_counts(engine, survey, qid)
        if not frame.empty:
            tables.append((qid, sheet, frame))
    if not tables:
        report.choices.append(
            "Thematic tables (themes per free-text answer): no coded survey answers in this database; "
            "`interop label import-sheet survey_analysis.xlsx --codebook onnx-survey-themes` imports the study's."
        )
        return
    report.choices.append(
        "Thematic tables: themes per free-text question from the coded survey answers (round `study-themes`: the "
        "study's survey_analysis.xlsx matched to the export by answer text). `share` is of the answers given at "
        "least one theme (`n_coded`); `n_answers` counts every coded answer. An answer may carry several themes, "
        "so counts add up to more than the answers."
    )
    for qid, sheet, frame in tables:
        report.tables.append(
            Table(f"survey_themes_{qid}", f"Survey themes: {qid} ({sheet})", "answers per theme", frame)
        )


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


def _agreement(engine: Engine, progress: Progress = _quiet) -> pd.DataFrame:
    """Agreement per round × dimension; the bootstrap is the report's slowest step, so each one is reported."""
    from db.queries import labeling as labeling_q
    from labeling.agreement import agreement_report
    from labeling.summary import round_categories

    ratings = labeling_q.ratings(engine, labeling_q.LabelFilter(rounds=(ROUND_PILOT, ROUND_DRIFT)))
    if ratings.empty:
        raise ReportError(
            f"no ratings in rounds {ROUND_PILOT!r}/{ROUND_DRIFT!r}: run `interop label import-sheet "
            "PilotStudy.xlsx` and `… FailureAnalysis.xlsx`"
        )
    categories = round_categories(engine)
    groups = list(ratings.groupby(["round", "dimension"], sort=True))
    rows = []
    for done, (_key, part) in enumerate(groups, start=1):
        progress("agreement (bootstrap, 1,000 resamples)", done - 1, len(groups))
        rows += [r.as_row() for r in agreement_report(part, categories)]
    progress("agreement (bootstrap, 1,000 resamples)", len(groups), len(groups))
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


@dataclass(frozen=True)
class VerdictRule:
    """How a compared run's stored numbers become a verdict: max absolute difference above `atol` is a mismatch."""

    name: str
    atol: float
    nan_passes: bool
    description: str

    def mismatch(self, numbers: pd.DataFrame) -> pd.Series:
        """Per compared run (`compared_numbers` rows): True for a mismatch; a run without stored numbers (the torch
        results hold only a flag) keeps its stored verdict."""
        diff, nonfinite = numbers["max_abs_diff"], numbers["nonfinite"].astype(bool)
        if self.nan_passes:  # a NaN difference (no number, flagged non-finite) passes; infinity does not
            judged = (diff > self.atol) | (diff.isna() & ~nonfinite)
        else:
            judged = (diff > self.atol) | diff.isna() | nonfinite
        return (numbers["status"] == "mismatch").where(numbers["outputs"] == 0, judged).astype(bool)


STUDY_RULE = VerdictRule(
    "study", 1e-7, True, "the study's: max absolute difference > 1e-7 is a mismatch, a NaN difference passes"
)
OUR_RULE = VerdictRule("ours", 1e-5, False, "ours: max absolute difference > 1e-5 is a mismatch, NaN/Inf is one too")
RULES = (STUDY_RULE, OUR_RULE)


def _stage_split(engine: Engine) -> pd.DataFrame:
    """Per converter × verdict rule: models ending in each stage; the failures are the same under both rules."""
    from db.queries import experiments as xq

    selected = xq.RunFilter(campaign=CAMPAIGN)
    failures = xq.failure_stages(engine, selected)
    numbers = xq.compared_numbers(engine, selected)
    rows = []
    for converter in sorted(set(failures["converter"]) | set(numbers["converter"])):
        failed = failures[failures["converter"] == converter]
        timeout = int(failed.loc[failed["status"] == "timeout", "runs"].sum())
        runtime = int(failed.loc[(failed["status"] != "timeout") & failed["stage"].isin(ORT_STAGES), "runs"].sum())
        conversion = int(failed["runs"].sum()) - timeout - runtime
        compared = numbers[numbers["converter"] == converter]
        for rule in RULES:
            mismatch = int(rule.mismatch(compared).sum())
            counts = dict(zip(STAGES, (conversion, runtime, timeout, mismatch, len(compared) - mismatch), strict=True))
            models = sum(counts.values())
            rows.append(
                {
                    "converter": converter,
                    "rule": rule.name,
                    "models": models,
                    **counts,
                    "failure %": round(100.0 * (conversion + runtime + timeout) / models, 1) if models else math.nan,
                    "mismatch % of converted": round(100.0 * mismatch / len(compared), 1)
                    if len(compared)
                    else math.nan,
                }
            )
    return pd.DataFrame(rows)


def study_counts(results: Path) -> dict[str, dict[str, int]]:
    """Passes and mismatches per converter as the study's analysis notebooks count them in its JSON files: torch by
    the `mismatch` flag, TensorFlow `mad > 1e-7` after `fillna(0)` (so a NaN difference passes)."""
    out: dict[str, dict[str, int]] = {}
    for framework, converter in (("torch", "torch.onnx"), ("tensorflow", "tf2onnx")):
        counts = out.setdefault(converter, {"pass": 0, "output mismatch": 0})
        for path in sorted((results / framework).glob("*.json")):
            for record in json.loads(path.read_text()):
                if record.get("result") != 0:
                    continue
                if framework == "torch":
                    bad = bool(record.get("mismatch"))
                else:
                    mad = record.get("mad")
                    bad = mad is not None and not math.isnan(float(mad)) and float(mad) > STUDY_RULE.atol
                counts["output mismatch" if bad else "pass"] += 1
    return out


def _reproduces(split: pd.DataFrame, artifact: Path | None) -> str:
    """Whether the study's rule on the stored numbers gives the study's own counts (read from the artifact)."""
    if artifact is None or not (artifact / EXPORTER_RESULTS).is_dir():
        return "Not checked against the study's files (no artifact given)."
    expected = study_counts(artifact / EXPORTER_RESULTS)
    study = split[split["rule"] == STUDY_RULE.name].set_index("converter")
    differences = [
        f"{conv} {stage}: {int(study.loc[conv, stage]) if conv in study.index else 0} here, {n} in the files"
        for conv, counts in expected.items()
        for stage, n in counts.items()
        if conv not in study.index or int(study.loc[conv, stage]) != n
    ]
    shown = "; ".join(f"{conv} {c['output mismatch']} mismatches, {c['pass']} passes" for conv, c in expected.items())
    if differences:
        return f"The study's rule does NOT reproduce the study's counts ({shown}): " + "; ".join(differences) + "."
    return (
        f"The study's rule reproduces the study's own counts exactly ({shown}, as its analysis notebooks count "
        f"them in {EXPORTER_RESULTS}/; the artifact holds no separate table of them)."
    )


def _rules_sentence(split: pd.DataFrame) -> str:
    """The one sentence that explains how the two rules differ, with the numbers that differ."""
    wide = split.set_index(["converter", "rule"])["pass"].unstack()
    moved = ", ".join(
        f"{conv}: {int(row[STUDY_RULE.name])} passes under the study's rule, {int(row[OUR_RULE.name])} under ours"
        for conv, row in wide.iterrows()
    )
    return (
        "The rules differ only where numbers were stored (TensorFlow's max absolute difference `mad`; torch stored a "
        "mismatch flag, kept under both): the study's 1e-7 is stricter than our 1e-5, but the study counted a NaN "
        f"difference as a pass (its notebook fills NaN with 0) where ours counts it as a mismatch ({moved})."
    )


# --- the report ----------------------------------------------------------------------------------------


def build_report(
    engine: Engine, survey: str = SURVEY, artifact: Path | None = None, progress: Progress = _quiet
) -> PaperReport:
    """Every table of the study from the configured database (after the artifact was imported); with the artifact's
    folder also failures against ONNX's evolution (from its onnx_opset_diff.json) and the check that the study's
    verdict rule reproduces its counts. `progress` hears about the slow steps."""
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
            per_question=True,
        )
    )
    report.tables.append(
        Table(
            "survey_interoperability",
            "Survey: interoperability (Q60–Q66)",
            "counts per choice; free-text questions: how many wrote an answer",
            _survey_table(engine, survey, INTEROPERABILITY),
            per_question=True,
        )
    )
    _thematic(engine, report, survey)

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
            _agreement(engine, progress),
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
    split = _stage_split(engine)
    report.facts["synthetic_rules"] = split
    report.choices.append(
        "Synthetic models by stage: a failed run whose stage is onnxruntime's (session creation or run) is a runtime "
        "failure; every other failed run (converter, ONNX checker, or TensorFlow rejecting the generated model) is a "
        f"conversion failure; timeouts are their own column. Verdict rules: {STUDY_RULE.description}; "
        f"{OUR_RULE.description}; both are computed from the stored numbers. {_rules_sentence(split)} "
        f"{_reproduces(split, artifact)}"
    )
    report.tables.append(
        Table(
            "synthetic_totals",
            "Synthetic models (NNSmith): outcomes per converter by stage, under the study's verdict rule and ours",
            "models per stage; failures do not depend on the rule",
            split,
        )
    )
    _distinct_failures(engine, report)
    add_reductions(engine, report)
    from reporting.ecosystem import add_ecosystem  # beside paper.py's other sections, after Table exists

    add_ecosystem(engine, report)
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


def _integral(values: pd.Series) -> bool:
    """A float column that holds only whole numbers (counts that picked up a missing value)."""
    present = values.dropna()
    return bool(len(present)) and bool((present == present.round()).all()) and bool((present.abs() < 1e15).all())


def _formatter(frame: pd.DataFrame, column: Any) -> Callable[[Any], str]:
    """One format per column: counts with thousands separators, percentages with one decimal, other numbers three."""
    name = str(column)
    values = frame[column]
    percent = "%" in name or name.startswith("pct")
    whole = values.dtype.kind in "iu" or (values.dtype.kind == "f" and not percent and _integral(values))

    def fmt(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        if isinstance(value, bool):
            return str(value)
        if isinstance(value, int | float) and whole and name not in ("code", "opset", "requested_opset", "node_count"):
            return f"{int(value):,}"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            if percent:
                return f"{value:.1f}"
            if abs(value) >= 1000 or value.is_integer():
                return f"{value:,.0f}" if value.is_integer() else f"{value:,.1f}"
            return f"{value:.3g}" if abs(value) < 0.001 else f"{value:.3f}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    return fmt


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency), numbers formatted the same way in every table."""
    if frame.empty:
        return "_(no rows)_\n"
    formats = [_formatter(frame, c) for c in frame.columns]
    header = "| " + " | ".join(str(c).replace("|", "\\|") for c in frame.columns) + " |"
    rule = "|" + "|".join("---:" if frame[c].dtype.kind in "iuf" else "---" for c in frame.columns) + "|"
    body = [
        "| " + " | ".join(f(v) for f, v in zip(formats, row, strict=True)) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *body]) + "\n"


#: columns of a stacked survey table that are the same on every row of a question (they go into its heading)
PER_QUESTION = ("qid", "question", "kind", "n_answered", "n_respondents")
KINDS = {"single": "single choice", "multi": "multi-select", "text": "free text", "number": "number"}


@dataclass
class Block:
    """A piece of the written report: Markdown text, or a figure (its PNG and SVG files and a caption)."""

    markdown: str = ""
    figure: tuple[Path, Path] | None = None
    caption: str = ""


def _survey_blocks(table: Table, out_dir: Path, figures: list[Path]) -> list[Block]:
    """One heading, table and bar chart per question of a stacked survey table."""
    from reporting import figures as fig

    blocks = []
    for qid, part in table.frame.groupby("qid", sort=False):
        first = part.iloc[0]
        kind = str(first["kind"])
        heading = (
            f"### {qid} · {KINDS.get(kind, kind)}\n\n{first['question']}\n\n"
            f"_n = {int(first['n_answered']):,} answered of {int(first['n_respondents']):,} respondents"
            + ("; several choices per respondent, percentages add up to more than 100" if kind == "multi" else "")
            + "_\n"
        )
        blocks.append(Block(heading + "\n" + markdown_table(part.drop(columns=list(PER_QUESTION)))))
        chart = fig.survey_bars(part, str(qid), str(first["question"]), kind) if kind != "text" else None
        if chart is not None:
            files = fig.save(chart, out_dir, f"figure_{table.name}_{qid}")
            figures.extend(files)
            blocks.append(Block(figure=files, caption=f"{qid}: % of the respondents who answered"))
    return blocks


def _figure_for(table: Table) -> tuple[Any, str] | None:
    """The chart drawn beside a table, if it has one: (Altair chart, caption)."""
    from reporting import figures as fig

    if table.name == "synthetic_outcomes":
        return fig.synthetic_outcomes(table.frame), "Outcome by node count per converter (stored verdicts)"
    if table.name.startswith("failures_symptom_x_cause"):
        return fig.symptom_cause_heatmap(table.frame, table.title), f"{table.title} (coded issues)"
    if table.name == "issues_vs_onnx_changes":
        return fig.failure_trend(table.frame, table.title), "Failure trends: issues and ONNX operator changes per month"
    return None


def _blocks(
    report: PaperReport, out_dir: Path, imported: list[str] | None, progress: Progress
) -> tuple[list[Block], list[Path]]:
    """The report as Markdown blocks and figures, writing each table's CSV and each figure's PNG and SVG."""
    written: list[Path] = []
    blocks = [
        Block("# Interoperability in Deep Learning: the study's tables, reproduced\n"),
        Block("Generated by `interop report paper` from the configured database.\n"),
    ]
    if imported:
        blocks.append(Block("## Imported\n\n" + "\n".join(f"- {line}" for line in imported) + "\n"))
    blocks.append(Block("## Choices these numbers depend on\n\n" + "\n".join(f"- {c}" for c in report.choices) + "\n"))
    for done, table in enumerate(report.tables):
        progress("tables and figures", done, len(report.tables))
        path = out_dir / f"{table.name}.csv"
        table.frame.to_csv(path, index=False)
        written.append(path)
        blocks.append(Block(f"## {table.title}\n\n_{table.note}; CSV: `{path.name}`_\n"))
        if table.per_question:
            blocks.extend(_survey_blocks(table, out_dir, written))
            continue
        blocks.append(Block(markdown_table(table.frame)))
        found = _figure_for(table)
        if found is not None and found[0] is not None:
            from reporting import figures as fig

            files = fig.save(found[0], out_dir, f"figure_{table.name}")
            written.extend(files)
            blocks.append(Block(figure=files, caption=found[1]))
    progress("tables and figures", len(report.tables), len(report.tables))
    return blocks, written


def _markdown(blocks: list[Block]) -> str:
    parts = []
    for block in blocks:
        if block.figure is not None:
            png, svg = block.figure
            parts.append(f"![{block.caption}]({png.name})\n\n_Figure: {block.caption} ({png.name}, {svg.name})_\n")
        else:
            parts.append(block.markdown)
    return "\n".join(parts)


HTML_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; vertical-align: top; }
th { background: #f3f3f3; } td[style*="right"], th[style*="right"] { font-variant-numeric: tabular-nums; }
figure { margin: 0.5rem 0 2rem; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85rem; color: #555; }
"""


def _html(blocks: list[Block]) -> str:
    """One self-contained HTML file: the same text and tables, every figure embedded as a PNG data URI."""
    import base64
    import html

    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    body = []
    for block in blocks:
        if block.figure is not None:
            png, _svg = block.figure
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            caption = html.escape(block.caption)
            body.append(
                f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
        else:
            body.append(md.render(block.markdown))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Interoperability in Deep Learning: the study's tables, reproduced</title>"
        f"<style>{HTML_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_report(
    report: PaperReport, out_dir: Path, imported: list[str] | None = None, progress: Progress = _quiet
) -> list[Path]:
    """OUT/paper-report.md, OUT/paper-report.html (self-contained), one CSV per table and each figure as PNG and
    SVG; returns the files written, the Markdown first and the HTML second."""
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks, written = _blocks(report, out_dir, imported, progress)
    md = out_dir / "paper-report.md"
    md.write_text(_markdown(blocks), encoding="utf-8")
    page = out_dir / "paper-report.html"
    page.write_text(_html(blocks), encoding="utf-8")
    return [md, page, *written]
