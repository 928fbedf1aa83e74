"""`interop export`: whole tables or one read-only query to CSV, Parquet or SQLite files."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from cli.common import console
from db.errors import InteropError, first_line

app = typer.Typer(
    help="Export tables (whole, streamed) or one read-only query as CSV, Parquet or SQLite.",
    invoke_without_command=True,
)

FORMAT_HELP = "csv, parquet or sqlite (one file holding every exported table)."
Format = Literal["csv", "parquet", "sqlite"]


def _url() -> str:
    from db.config import get_settings

    return get_settings().database_url


def _split(values: list[str] | None) -> list[str] | None:
    names = [n.strip() for v in values or [] for n in v.split(",") if n.strip()]
    return names or None


@app.callback()
def tables(
    ctx: typer.Context,
    fmt: Format = typer.Option("csv", "--format", "-f", case_sensitive=False, help=FORMAT_HELP),
    tables: list[str] | None = typer.Option(
        None, "--tables", "-t", help="Table names (repeat or comma-separate); default: every table."
    ),
    out: Path = typer.Option(Path("exports"), "--out", "-o", help="Directory to write into."),
) -> None:
    """Export whole tables (no row cap) to OUT: one file per table, or one SQLite file for all."""
    if ctx.invoked_subcommand is not None:
        return
    from sqlalchemy.exc import SQLAlchemyError

    from db.export import export_tables

    if tables is not None and not _split(tables):
        raise InteropError("--tables names no table; leave it out to export every table")
    counts: dict[str, int] = {}
    try:
        with console.status("exporting…") as status:

            def progress(table: str, n: int) -> None:
                counts[table] = counts.get(table, 0) + n
                status.update(f"exporting {table}: {counts[table]:,} rows")

            done = export_tables(_url(), out, fmt.lower(), _split(tables), progress=progress)
    except SQLAlchemyError as exc:
        raise InteropError(f"database error: {first_line(exc)}") from None
    for item in done:
        console.print(f"{item.name}: {item.rows:,} rows → {item.path}")
    console.print(f"exported {len(done)} table(s) as {fmt.lower()} into {out}")


@app.command()
def query(
    sql: str = typer.Argument(..., help="One read-only statement (SELECT / WITH / VALUES / EXPLAIN)."),
    fmt: Format = typer.Option("csv", "--format", "-f", case_sensitive=False, help=FORMAT_HELP),
    out: Path = typer.Option(Path("exports"), "--out", "-o", help="Directory to write into."),
    name: str = typer.Option("query", "--name", "-n", help="File (and SQLite table) name, without extension."),
    timeout: float = typer.Option(
        300.0,
        "--timeout",
        help="Stop the query after this many seconds (0: no limit of ours; a PostgreSQL reader's own "
        "statement_timeout still applies).",
    ),
) -> None:
    """Export the result of one read-only query, run like the app's SQL console (on PostgreSQL only as the
    reader role of INTEROP_READER_DATABASE_URL)."""
    from db.export import export_query
    from db.readonly import console_url

    if timeout < 0:
        raise InteropError(f"--timeout must be 0 (no limit) or a number of seconds, not {timeout:g}")

    url = console_url()
    with console.status("running the query…"):
        done = export_query(url, sql, out, fmt.lower(), name=name, timeout_s=timeout or None)
    console.print(f"{done.rows:,} rows → {done.path}")
