"""`interop db`: schema migrations of the configured database."""

from __future__ import annotations

import typer

from cli.common import console, fail

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
        fail(f"cannot reach the database {mask_url(_url())}: {str(exc.orig).strip().splitlines()[0]}")
    from db.engine import make_engine
    from db.migrate import current_revision

    eng = make_engine(_url())
    try:
        console.print(f"database {mask_url(_url())} is at revision {current_revision(eng)}")
    finally:
        eng.dispose()


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
            fail(f"{what}; run it again with --yes to drop them")
        console.print(what, markup=False)
        if not typer.confirm("Drop them?", default=False):
            fail("nothing dropped: the database is unchanged")
    elif plan.drops:
        console.print(f"dropping {plan.summary()}", markup=False)
    do_downgrade(_url(), revision)
    console.print(f"database {mask_url(_url())} downgraded to {revision}")


@app.command()
def current() -> None:
    """Print the database's schema revision and the newest one available."""
    from db.engine import make_engine
    from db.migrate import current_revision, head_revision

    rev = current_revision(make_engine(_url()))
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
