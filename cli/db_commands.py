"""`interop db`: schema migrations of the configured database, and the SQL console's reader role."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import console, engine
from db.errors import InteropError, first_line

app = typer.Typer(help="Create and migrate the database schema (Alembic).", no_args_is_help=True)


def _url() -> str:
    from db.config import get_settings

    return get_settings().database_url


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    from sqlalchemy.exc import OperationalError

    from db.engine import mask_url
    from db.migrate import upgrade as do_upgrade

    try:
        do_upgrade(_url(), revision)
    except OperationalError as exc:
        raise InteropError(f"cannot reach the database {mask_url(_url())}: {first_line(exc)}") from None
    from db.migrate import current_revision

    console.print(f"database {mask_url(_url())} is at revision {current_revision(engine())}")


def _interactive() -> bool:
    """Whether a person can answer a question (a terminal on both ends), not a script or cron."""
    import sys

    return sys.stdin.isatty() and sys.stdout.isatty()


@app.command()
def downgrade(
    revision: str = typer.Argument("-1", help="Target revision ('base' empties the schema)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Drop the tables and columns listed without asking."),
) -> None:
    """Migrate the database down to REVISION (default: one step); says what it drops and asks first."""
    from db.engine import mask_url
    from db.migrate import downgrade as do_downgrade
    from db.migrate import downgrade_plan

    plan = downgrade_plan(_url(), revision)
    if plan.drops and not yes:
        what = f"`interop db downgrade {revision}` would drop {plan.summary()}"
        if not _interactive():
            raise InteropError(f"{what}; run it again with --yes to drop them")
        console.print(what, markup=False)
        if not typer.confirm("Drop them?", default=False):
            raise InteropError("nothing dropped: the database is unchanged")
    elif plan.drops:
        console.print(f"dropping {plan.summary()}", markup=False)
    do_downgrade(_url(), revision)
    console.print(f"database {mask_url(_url())} downgraded to {revision}")


@app.command()
def current() -> None:
    """Print the database's schema revision and the newest one available."""
    from db.migrate import current_revision, head_revision

    rev = current_revision(engine())
    head = head_revision()
    state = "up to date" if rev == head else "needs `interop db upgrade`"
    console.print(f"current: {rev or '(empty database)'}  head: {head}  ({state})")


@app.command()
def revision(
    message: str = typer.Option(..., "-m", "--message", help="What the schema change is."),
    autogenerate: bool = typer.Option(True, help="Compare models to the database to fill the revision."),
) -> None:
    """Create a new revision file under db/migrations/versions (developers only)."""
    from db.migrate import new_revision

    console.print(f"created {new_revision(message, _url(), autogenerate)}")


@app.command("create-reader")
def create_reader(
    name: str = typer.Option("interop_reader", "--name", help="Name of the login role to create or bring in line."),
    schema: str | None = typer.Option(None, "--schema", help="Schema it may read (default: the current schema)."),
    statement_timeout: float = typer.Option(
        60.0, "--statement-timeout", help="The role's own limit per statement, in seconds (any client)."
    ),
    passfile: Path | None = typer.Option(
        None, "--passfile", help="libpq password file to store its password in (default: $PGPASSFILE or ~/.pgpass)."
    ),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    keep_password: bool = typer.Option(
        False, "--keep-password", help="For an existing role: leave its password as it is."
    ),
) -> None:
    """PostgreSQL: create a login role that can only read (for the SQL console and `export query`).

    It gets CONNECT, USAGE and SELECT on every table and view of the schema, SELECT on future tables (default
    privileges), no CREATE, default_transaction_read_only = on and a statement_timeout. Its password goes to
    the password file, never to the screen; the URL to set as INTEROP_READER_DATABASE_URL is printed."""
    import sys

    from db.engine import mask_url, normalize_url
    from db.reader import create_reader as make_reader
    from db.reader import default_passfile

    url = normalize_url(_url())
    if url.get_backend_name() != "postgresql":
        raise InteropError("create-reader is for PostgreSQL: on SQLite the console already opens the file read-only")
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise InteropError("--password-stdin: no password on stdin")
    target = passfile.expanduser() if passfile else default_passfile()
    setup = make_reader(url, name, schema, statement_timeout, password, keep_password, target)
    verb = "created" if setup.created else "updated"
    console.print(
        f"reader role {setup.role} {verb} on {mask_url(url)}: SELECT on {setup.tables} tables and views of schema "
        f"{setup.schema}, and on future tables of {', '.join(setup.default_owners)}; read-only by default, "
        f"statement_timeout {statement_timeout:g} s"
    )
    if setup.skipped_owners:
        console.print(
            f"warning: future tables of {', '.join(setup.skipped_owners)} will not be readable until a role that "
            "may act for them runs this again (or a superuser does)"
        )
    if setup.password_set and setup.passfile:
        console.print(f"its password is in {setup.passfile} (mode 0600), where libpq finds it")
    elif not setup.password_set:
        console.print("its password was left as it was")
    console.print(f"INTEROP_READER_DATABASE_URL={setup.url}")


@app.command("copy")
def copy(
    to: str | None = typer.Option(None, "--to", help="Copy the configured database into this (empty) database URL."),
    source: str | None = typer.Option(
        None, "--from", help="Copy this database URL into the configured (empty) database instead."
    ),
    batch: int = typer.Option(10_000, "--batch", min=1, help="Rows per insert batch."),
) -> None:
    """Copy every table into an empty database at the same (newest) revision, e.g. SQLite → PostgreSQL.

    Primary keys are kept, PostgreSQL sequences moved past them, and every table's row count and checksum
    are compared at the end. The target must be migrated (`interop db upgrade`) and hold no rows."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from db.copy import copy_database

    if to is None and source is None:
        raise InteropError(
            "name the other database with --to URL (copy the configured one there) or --from URL (copy it here)"
        )
    src, dst = source or _url(), to or _url()
    columns = (TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, object] = {}

        def progress(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=max(total, done) or None)
            bar.update(tasks[table], completed=done, total=max(total, done) or None)  # type: ignore[arg-type]

        report = copy_database(src, dst, batch=batch, progress=progress)  # a CopyError is one error line
    console.print(
        f"copied {report.rows:,} rows in {len(report.tables)} tables from {report.source} to {report.target} "
        f"at revision {report.revision} in {report.seconds:.1f} s ({report.rows_per_second:,.0f} rows/s); "
        f"row counts and checksums verified"
        + (f"; {report.sequences} sequences moved past the copied ids" if report.sequences else "")
    )
