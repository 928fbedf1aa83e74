"""What every command group shares: the console, user-facing errors, and the configured engine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click
import typer
from rich.console import Console
from sqlalchemy.engine import Engine
from typer.core import TyperGroup

console = Console(stderr=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False)


class UserError(Exception):
    """An error the user can fix (bad file, bad option): shown as one line, exit code 2."""


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one clear error line (credentials in any URL masked) and exit non-zero."""
    from rich.markup import escape

    from db.masking import mask_text

    err_console.print(f"[bold red]error:[/] {escape(mask_text(message))}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn UserError into a one-line message instead of a traceback."""
    try:
        yield
    except UserError as exc:
        fail(str(exc))


def describe(exc: BaseException) -> str | None:
    """One line for an error a user can fix (bad path, config, URL, revision, unreachable database); None else."""
    import os

    from db.config import ConfigError

    if isinstance(exc, UserError | ConfigError):
        return str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return f"cannot read the input as UTF-8 text ({exc.reason} at byte {exc.start}): is it the right file?"
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError | TimeoutError):
        where = exc.filename if exc.filename is not None else None
        return f"{where}: {exc.strerror or exc}" if where is not None else " ".join(str(exc).split())
    module = type(exc).__module__ or ""
    if module.startswith("alembic"):
        return " ".join(str(exc).split())
    if module.startswith("sqlalchemy"):
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

        if isinstance(exc, ArgumentError | NoSuchModuleError):
            return f"INTEROP_DATABASE_URL is not a usable database URL: {' '.join(str(exc).split())}"
        if isinstance(exc, OperationalError) and not os.environ.get("INTEROP_DEBUG"):
            first = str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc).strip() else type(exc).__name__
            return f"database error: {first} (check INTEROP_DATABASE_URL and that the server runs; `interop info`)"
    if isinstance(exc, ModuleNotFoundError) and exc.name in {"MySQLdb", "pymysql", "cx_Oracle", "pyodbc"}:
        return f"no driver for this database URL ({exc.name} is not installed); use SQLite or PostgreSQL"
    return None


class FriendlyGroup(TyperGroup):
    """The root command: errors a user can fix print one `error:` line (exit 2), never a traceback.

    `INTEROP_DEBUG=1` shows the full traceback instead."""

    def invoke(self, ctx: click.Context) -> Any:
        import os

        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            from db.ingest import Terminated

            if isinstance(exc, Terminated):
                err_console.print(f"[bold red]error:[/] {exc}", markup=True)
                raise typer.Exit(143) from None
            raise
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:
            message = None if os.environ.get("INTEROP_DEBUG") else describe(exc)
            if message is None:
                raise
            fail(message)


def engine() -> Engine:
    """The engine of the configured database (INTEROP_DATABASE_URL / interop.toml)."""
    from db.config import get_settings
    from db.engine import make_engine

    return make_engine(get_settings().database_url)
