"""`interop report`: reproduce the study's tables from its artifact with one command."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from cli.common import console, engine

app = typer.Typer(help="Reports built from the database (the study's tables).", no_args_is_help=True)


@app.command()
def paper(
    artifact: Path = typer.Option(..., "--artifact", help="The study's artifact (../shared/data/paper-artifact)."),
    out: Path = typer.Option(Path("reports/paper"), "--out", help="Directory for paper-report.md and the CSVs."),
    codebook: Path | None = typer.Option(
        None, "--codebook", help="Codebook YAML (default: ARTIFACT/../../codebook/onnx-converter-failures.yaml)."
    ),
) -> None:
    """Import the artifact into the configured database (idempotent) and write the study's tables."""
    from db.config import get_settings
    from reporting.artifact import Step, artifact_steps, check_artifact, default_codebook, import_artifact
    from reporting.paper import SURVEY, build_report, write_report

    codebook = codebook or default_codebook(artifact)
    check_artifact(artifact, codebook)
    steps = artifact_steps(engine(), get_settings().database_url, artifact, codebook, SURVEY)

    def started(step: Step) -> None:
        console.print(f"[bold]$ {escape(step.command)}[/]", markup=True)

    def finished(step: Step, result: Any) -> None:
        from miners.survey.workflow import ImportOutcome

        if isinstance(result, ImportOutcome):
            from cli.survey_commands import print_import

            print_import(result)
        else:
            console.print(step.summary(result), markup=False)

    done = import_artifact(steps, started, finished)
    with _progress() as progress:
        report = build_report(engine(), SURVEY, artifact, progress)
        files = write_report(report, out, done, progress)
    tables = sum(1 for f in files if f.suffix == ".csv")
    figures = sum(1 for f in files if f.suffix == ".png")
    console.print(
        f"wrote {files[0]}, {files[1]} (self-contained), {tables} CSV tables and {figures} figures (PNG and SVG) "
        f"into {out}"
    )


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar per slow step (agreement bootstrap, tables and figures) on stderr; quiet when not a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cli.common import err_console

    bars = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console
    )
    tasks: dict[str, Any] = {}

    def update(what: str, done: int, total: int) -> None:
        if what not in tasks:
            tasks[what] = bars.add_task(what, total=total)
        bars.update(tasks[what], completed=done, total=total)

    with bars:
        yield update
