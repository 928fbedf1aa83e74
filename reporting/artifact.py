"""Load the study's artifact into the database, step by step (each idempotent), for `interop report paper`.

The steps are the workflows behind `interop db upgrade`, `survey import`, `label codebook load`, `label
import-sheet` (twice) and `experiment import-results`, called directly; the CLI only prints what they return."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from db.errors import InteropError
from db.models.failures import DEFAULT_SIGNATURE_RULE
from reporting.paper import CAMPAIGN, SURVEY, ReportError

#: the themes of the study's free-text answers (shipped in the repository; the artifact has only the workbook)
THEMES_CODEBOOK = Path(__file__).resolve().parents[1] / "labeling" / "codebooks" / "survey-themes.yaml"
THEMES_CODEBOOK_NAME = "onnx-survey-themes"

ARTIFACT_FILES = {
    "survey": Path("survey/interopSurvey.xlsx"),
    "coding": Path("failure-analysis/FailureAnalysis.xlsx"),
    "pilot": Path("failure-analysis/PilotStudy.xlsx"),
    "themes": Path("survey/survey_analysis.xlsx"),
    "results": Path("synthetic-models/exporter_test_results"),
}


@dataclass(frozen=True)
class Step:
    """One import: the equivalent `interop` command line, what runs it, and its result as one line."""

    command: str
    run: Callable[[], Any]
    summary: Callable[[Any], str]


def default_codebook(artifact: Path) -> Path:
    """The codebook shipped next to the artifact (ARTIFACT/../../codebook/onnx-converter-failures.yaml)."""
    return artifact.resolve().parent.parent / "codebook" / "onnx-converter-failures.yaml"


def check_artifact(artifact: Path, codebook: Path) -> None:
    """Refuse a folder that is not the artifact, or a codebook that cannot be read, before anything is imported."""
    from labeling.codebook import read_codebook

    missing = [str(artifact / rel) for rel in ARTIFACT_FILES.values() if not (artifact / rel).exists()]
    if missing:
        raise ReportError(f"not the study's artifact: missing {', '.join(missing)}")
    if not codebook.exists():
        raise ReportError(f"codebook {codebook} not found: pass --codebook FILE")
    read_codebook(codebook)  # a bad codebook must not leave a half-imported artifact behind


def artifact_steps(engine: Engine, url: str, artifact: Path, codebook: Path, survey: str = SURVEY) -> list[Step]:
    """The eight imports and the failure signatures of the imported runs, in order."""
    files = {key: artifact / rel for key, rel in ARTIFACT_FILES.items()}

    def upgrade() -> str | None:
        from db.migrate import current_revision
        from db.migrate import upgrade as do_upgrade

        do_upgrade(url, "head")
        return current_revision(engine)

    def survey_import() -> Any:
        from reporting.paper import import_survey_export

        return import_survey_export(engine, files["survey"], survey)

    def codebook_load() -> Any:
        from db.engine import session_scope
        from labeling.codebook import read_codebook
        from labeling.store import store_codebook

        with session_scope(engine) as session:
            return store_codebook(session, read_codebook(codebook), str(codebook))

    def sheet(key: str) -> Callable[[], Any]:
        def run() -> Any:
            from labeling.codebook import read_codebook
            from labeling.importer import import_workbook

            # named: once the survey themes' codebook is loaded too, a re-run must not have to guess
            return import_workbook(engine, files[key], read_codebook(codebook).name)

        return run

    def themes_codebook() -> Any:
        from db.engine import session_scope
        from labeling.codebook import read_codebook
        from labeling.store import store_codebook

        with session_scope(engine) as session:
            return store_codebook(session, read_codebook(THEMES_CODEBOOK), str(THEMES_CODEBOOK))

    def themes() -> Any:
        from labeling.survey_items import import_theme_workbook

        return import_theme_workbook(engine, files["themes"], survey, THEMES_CODEBOOK_NAME)

    def results() -> dict[str, int]:
        from experiments.study_import import import_exporter_results

        return import_exporter_results(engine, files["results"], CAMPAIGN)

    def signatures() -> dict[str, int]:
        from experiments.failure_links import link_signatures
        from experiments.signatures import compute_signatures, load_rule

        counts = compute_signatures(engine, load_rule(), CAMPAIGN)
        return {**counts, **{f"linked_{k}": v for k, v in link_signatures(engine, campaign=CAMPAIGN).items()}}

    return [
        Step("interop db upgrade", upgrade, lambda rev: f"database at revision {rev}"),
        Step(f"interop survey import {files['survey']} --survey {survey}", survey_import, _survey_summary),
        Step(f"interop label codebook load {codebook}", codebook_load, _codebook_summary),
        Step(f"interop label import-sheet {files['coding']}", sheet("coding"), _sheet_summary),
        Step(f"interop label import-sheet {files['pilot']}", sheet("pilot"), _sheet_summary),
        Step(f"interop label codebook load {THEMES_CODEBOOK}", themes_codebook, _codebook_summary),
        Step(
            f"interop label import-sheet {files['themes']} --survey {survey} --codebook {THEMES_CODEBOOK_NAME}",
            themes,
            _themes_summary,
        ),
        Step(f"interop experiment import-results {files['results']}", results, _results_summary),
        Step(f"interop experiment signatures --campaign {CAMPAIGN}", signatures, _signatures_summary),
    ]


def import_artifact(
    steps: list[Step], on_start: Callable[[Step], None], on_done: Callable[[Step, Any], None]
) -> list[str]:
    """Run the steps in order; returns the commands done. A failing step's error says which steps stay imported."""
    done = []
    for number, step in enumerate(steps, start=1):
        on_start(step)
        try:
            result = step.run()
        except InteropError as exc:
            kept = f"; steps 1–{number - 1} stay imported (re-running skips them)" if number > 1 else ""
            raise InteropError(
                str(exc),
                exit_code=exc.exit_code,
                hint=f"no report written: stopped at step {number} of {len(steps)}{kept}",
            ) from exc
        on_done(step, result)
        done.append(f"`{step.command}`")
    return done


def _survey_summary(outcome: Any) -> str:
    result = outcome.result
    if result.nothing_new:
        return f"nothing new: all {result.responses_in_file} responses are already in survey {outcome.request.survey!r}"
    return (
        f"survey {outcome.request.survey!r}: {result.responses_new} new, {result.responses_updated} updated responses"
    )


def _codebook_summary(book: Any) -> str:
    if book.created:
        return f"codebook {book.name!r} stored as version {book.version}"
    return f"codebook {book.name!r}: nothing new (identical to version {book.version})"


def _sheet_summary(result: Any) -> str:
    parts = []
    for r in result.rounds:
        if r["new"] or r["changed"] or r["removed"] or r["finals_changed"]:
            parts.append(f"round {r['round']!r}: {r['codings']} codings ({r['new']} new, {r['changed']} changed)")
        else:
            parts.append(f"round {r['round']!r}: nothing new ({r['codings']} codings already stored)")
    return "; ".join(parts) or "no coding sheets"


def _themes_summary(result: Any) -> str:
    coded = sum(len(m.matched) for m in result.sheets)
    unmatched = sum(len(m.unmatched) for m in result.sheets)
    return f"round {result.round}: {coded} answers coded, {unmatched} sheet rows matching no answer"


def _results_summary(counts: dict[str, int]) -> str:
    if counts["new_runs"]:
        return f"imported {counts['models']:,} models, {counts['runs']:,} runs ({counts['new_runs']:,} new)"
    return f"nothing new: {counts['runs']:,} runs already stored in campaign {CAMPAIGN!r}"


def _signatures_summary(counts: dict[str, int]) -> str:
    return (
        f"rule {DEFAULT_SIGNATURE_RULE}: {counts['runs']:,} runs of campaign {CAMPAIGN!r} have "
        f"{counts['signatures']:,} distinct "
        f"signatures; upstream candidates: {counts.get('linked_candidates', 0):,}"
    )
