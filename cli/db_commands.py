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


@app.command()
def downgrade(revision: str = typer.Argument("-1", help="Target revision ('base' empties the schema).")) -> None:
    """Migrate the database down to REVISION (default: one step)."""
    from db.engine import mask_url
    from db.migrate import downgrade as do_downgrade

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
