"""`interop label`: codebooks, the study's coding sheets, Label Studio rounds, agreement, adjudication."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from cli.common import console, engine, err_console, fail

app = typer.Typer(help="Code items (GitHub issues, …) with a codebook; measure agreement; adjudicate.",
                  no_args_is_help=True)
codebook_app = typer.Typer(help="Load and list versioned codebooks.", no_args_is_help=True)
app.add_typer(codebook_app, name="codebook")


@contextmanager
def _labeling_errors() -> Iterator[None]:
    """Every expected failure becomes one red line naming what to fix."""
    from labeling.codebook import CodebookError
    from labeling.sheets import SheetError
    from labeling.store import LabelingError

    try:
        yield
    except (CodebookError, SheetError, LabelingError) as exc:
        fail(str(exc))


@codebook_app.command("load")
def codebook_load(file: Path = typer.Argument(..., help="Codebook YAML file.")) -> None:
    """Store FILE as a codebook version (an identical file is a no-op; a changed one is the next version)."""
    from db.engine import session_scope
    from labeling.codebook import read_codebook
    from labeling.store import store_codebook

    with _labeling_errors():
        spec = read_codebook(file)
        for warning in spec.warnings:
            err_console.print(f"[yellow]warning:[/] {warning}")
        with session_scope(engine()) as session:
            book = store_codebook(session, spec, str(file))
    codes = sum(len(d.codes) for d in spec.dimensions)
    state = "stored as" if book.created else "unchanged, already"
    console.print(f"codebook {book.name!r} {state} version {book.version}: {len(spec.dimensions)} dimensions, "
                  f"{codes} codes")


@codebook_app.command("list")
def codebook_list() -> None:
    """Show the loaded codebooks and their versions."""
    from db.queries.labeling import codebook_versions

    frame = codebook_versions(engine())
    if frame.empty:
        console.print("no codebook loaded")
        return
    console.print(frame.to_string(index=False))


@app.command("import-sheet")
def import_sheet(
    file: Path = typer.Argument(..., help="FailureAnalysis.xlsx, PilotStudy.xlsx or a workbook laid out like them."),
    sheet: list[str] = typer.Option(None, "--sheet", help="Only these sheets (repeatable)."),
    round_name: str = typer.Option(None, "--round", help="Round name (when the sheets hold one round)."),
    codebook: str = typer.Option(None, "--codebook", help="Codebook name (default: the only one loaded)."),
) -> None:
    """Import the study's coding: each group of sheets is one round with its coders (re-running changes nothing)."""
    from labeling.importer import import_workbook

    with _labeling_errors():
        result = import_workbook(engine(), file, codebook, sheet or None, round_name)
    for r in result.rounds:
        extra = f", cross-checked {r['cross_checked']} cells" if r["cross_checked"] else ""
        console.print(
            f"round {r['round']!r} ({', '.join(r['sheets'])}): {r['items']} items, coders {', '.join(r['coders'])}, "
            f"{r['codings']} codings ({r['new']} new, {r['changed']} changed, {r['unchanged']} unchanged, "
            f"{r['removed']} removed){extra}"
        )
