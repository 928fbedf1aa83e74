"""`interop report`: reproduce the study's tables from its artifact with one command."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from cli.common import console, err_console, fail

app = typer.Typer(help="Reports built from the database (the study's tables).", no_args_is_help=True)

ARTIFACT_FILES = {
    "survey": Path("survey/interopSurvey.xlsx"),
    "coding": Path("failure-analysis/FailureAnalysis.xlsx"),
    "pilot": Path("failure-analysis/PilotStudy.xlsx"),
    "results": Path("synthetic-models/exporter_test_results"),
}


def import_steps(artifact: Path, codebook: Path, survey: str) -> list[list[str]]:
    """The `interop` command lines that load the artifact (each idempotent), in order."""
    files = {key: str(artifact / rel) for key, rel in ARTIFACT_FILES.items()}
    return [
        ["db", "upgrade"],
        ["survey", "import", files["survey"], "--survey", survey],
        ["label", "codebook", "load", str(codebook)],
        ["label", "import-sheet", files["coding"]],
        ["label", "import-sheet", files["pilot"]],
        ["experiment", "import-results", files["results"]],
        ["experiment", "signatures", "--campaign", "study-exporter-results"],
    ]


def _import_survey(export: Path, survey: str) -> int:
    """Step 2: the survey export, through miners.survey's workflow; prints like `interop survey import`."""
    from cli.common import engine
    from cli.survey_commands import print_import
    from miners.survey.reader import ExportError
    from reporting.paper import import_survey_export

    try:
        outcome = import_survey_export(engine(), export, survey)
    except ExportError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)
        return 2
    print_import(outcome)
    return 0


@app.command()
def paper(
    artifact: Path = typer.Option(..., "--artifact", help="The study's artifact (../shared/data/paper-artifact)."),
    out: Path = typer.Option(Path("reports/paper"), "--out", help="Directory for paper-report.md and the CSVs."),
    codebook: Path | None = typer.Option(
        None, "--codebook", help="Codebook YAML (default: ARTIFACT/../../codebook/onnx-converter-failures.yaml)."
    ),
) -> None:
    """Import the artifact into the configured database (idempotent) and write the study's tables."""
    from cli.main import app as interop
    from reporting.paper import SURVEY, ReportError, build_report, write_report

    missing = [str(artifact / rel) for rel in ARTIFACT_FILES.values() if not (artifact / rel).exists()]
    if missing:
        fail(f"not the study's artifact: missing {', '.join(missing)}")
    codebook = codebook or artifact.resolve().parent.parent / "codebook" / "onnx-converter-failures.yaml"
    if not codebook.exists():
        fail(f"codebook {codebook} not found: pass --codebook FILE")
    from labeling.codebook import CodebookError, read_codebook

    try:  # before anything is imported: a bad codebook must not leave a half-imported artifact behind
        read_codebook(codebook)
    except CodebookError as exc:
        fail(str(exc))
    done = []
    steps = import_steps(artifact, codebook, SURVEY)
    for number, step in enumerate(steps, start=1):
        console.print(f"[bold]$ interop {escape(' '.join(step))}[/]", markup=True)
        if step[:2] == ["survey", "import"]:  # the workflow itself, not the command line
            code = _import_survey(Path(step[2]), step[4])
        else:
            code = interop(step, standalone_mode=False)
        if code not in (None, 0):
            # The step has printed its own error line; say what that means for the report, not a second error.
            kept = f"; steps 1–{number - 1} stay imported (re-running skips them)" if number > 1 else ""
            err_console.print(
                f"no report written: stopped at step {number} of {len(steps)}{kept}", markup=False, soft_wrap=True
            )
            raise typer.Exit(code)
        done.append(f"`interop {' '.join(step)}`")
    from cli.common import engine

    try:
        report = build_report(engine(), SURVEY, artifact)
    except ReportError as exc:
        fail(str(exc))
    files = write_report(report, out, done)
    console.print(f"wrote {files[0]} and {len(files) - 1} CSV tables into {out}")
