"""`interop export`: whole tables or one read-only query to CSV, Parquet or SQLite files."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from cli.common import console
from cli.output import emit
from db.errors import InteropError, first_line

app = typer.Typer(
    help="Export tables (whole, streamed) or one read-only query as CSV, Parquet or SQLite.",
    invoke_without_command=True,
)

FORMAT_HELP = "csv, parquet or sqlite (one file holding every exported table)."
TABLE_FORMAT_HELP = (
    "csv, parquet, sqlite (one file holding every exported table) or sql (a dump of CREATE TABLE and INSERT "
    "statements for --dialect, loaded with `sqlite3 new.db < FILE` or `psql -d NEWDB -f FILE`)."
)
Format = Literal["csv", "parquet", "sqlite"]
TableFormat = Literal["csv", "parquet", "sqlite", "sql"]
Dialect = Literal["sqlite", "postgresql"]


def _url() -> str:
    from db.config import get_settings

    return get_settings().database_url


def _split(values: list[str] | None) -> list[str] | None:
    names = [n.strip() for v in values or [] for n in v.split(",") if n.strip()]
    return names or None


@app.callback()
def tables(
    ctx: typer.Context,
    fmt: TableFormat = typer.Option("csv", "--format", "-f", case_sensitive=False, help=TABLE_FORMAT_HELP),
    dialect: Dialect | None = typer.Option(
        None, "--dialect", case_sensitive=False, help="--format sql: the database it loads into (default: this one's)."
    ),
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

    if dialect is not None and fmt.lower() != "sql":
        raise InteropError("--dialect goes with --format sql")
    if tables is not None and not _split(tables):
        raise InteropError("--tables names no table; leave it out to export every table")
    counts: dict[str, int] = {}
    try:
        with console.status("exporting…") as status:

            def progress(table: str, n: int) -> None:
                counts[table] = counts.get(table, 0) + n
                status.update(f"exporting {table}: {counts[table]:,} rows")

            done = export_tables(
                _url(), out, fmt.lower(), _split(tables), progress=progress, dialect=dialect and dialect.lower()
            )
    except SQLAlchemyError as exc:
        raise InteropError(f"database error: {first_line(exc)}") from None
    for item in done:
        console.print(f"{item.name}: {item.rows:,} rows → {item.path}")
    console.print(f"exported {len(done)} table(s) as {fmt.lower()} into {out}")
    if fmt.lower() == "sql" and done:
        sqlite = done[0].path.name.endswith(".sqlite.sql")
        load = "sqlite3 -bail NEW.db <" if sqlite else "psql -v ON_ERROR_STOP=1 -d NEWDB -f"
        console.print(f"load it into an empty database with: {load} {done[0].path}")


QueryFormat = Literal["table", "json", "csv", "parquet", "sqlite"]


@app.command()
def query(
    sql: str = typer.Argument(..., help="One read-only statement (SELECT / WITH / VALUES / EXPLAIN)."),
    fmt: QueryFormat = typer.Option(
        "csv",
        "--format",
        "-f",
        case_sensitive=False,
        help="table, json or csv to stdout (or --out); parquet and sqlite need --out.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="A file (q.csv: its suffix must be the format's) or a directory to write NAME.FORMAT into; "
        "default: stdout.",
    ),
    name: str = typer.Option("query", "--name", "-n", help="File (and SQLite table) name in an --out directory."),
    timeout: float = typer.Option(
        300.0,
        "--timeout",
        help="Stop the query after this many seconds (0: no limit of ours; a PostgreSQL reader's own "
        "statement_timeout still applies).",
    ),
) -> None:
    """Run one read-only query like the app's SQL console (on PostgreSQL only as the reader role of
    INTEROP_READER_DATABASE_URL), with no row cap: to stdout, a file, or a directory (streamed)."""
    from db.export import export_query
    from db.readonly import console_url, run_read_only

    form = fmt.lower()
    if timeout < 0:
        raise InteropError(f"--timeout must be 0 (no limit) or a number of seconds, not {timeout:g}")
    suffix = ".txt" if form == "table" else f".{form}"
    to_file = out is not None and out.suffix != ""
    if out is not None and out.suffix not in ("", suffix):
        raise InteropError(f"--out {out}: a {form} file must end in {suffix} (or give a directory)")
    if out is None and form in ("parquet", "sqlite"):
        raise InteropError(f"--format {form} writes a file: give --out FILE{suffix} or a directory")
    if out is not None and not to_file and form in ("table", "json"):
        raise InteropError(f"--format {form} writes one file: give --out FILE{suffix}")
    url = console_url()
    if form in ("table", "json") or out is None:
        result = run_read_only(url, sql, row_cap=None, timeout_s=timeout or None)
        emit(form, out, result.frame)
        if out is not None:
            console.print(f"{result.row_count:,} rows → {out}")
        return
    assert out is not None
    folder, stem = (out.parent, out.stem) if to_file else (out, name)
    with console.status("running the query…"):
        done = export_query(url, sql, folder, form, name=stem, timeout_s=timeout or None)
    console.print(f"{done.rows:,} rows → {done.path}")
