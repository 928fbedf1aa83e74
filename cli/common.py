"""What every command group shares: the console, user-facing errors, and the configured engine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from sqlalchemy.engine import Engine

console = Console(stderr=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False)


class UserError(Exception):
    """An error the user can fix (bad file, bad option): shown as one line, exit code 2."""


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one clear error line and exit non-zero."""
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn UserError into a one-line message instead of a traceback."""
    try:
        yield
    except UserError as exc:
        fail(str(exc))


def engine() -> Engine:
    """The engine of the configured database (INTEROP_DATABASE_URL / interop.toml)."""
    from db.config import get_settings
    from db.engine import make_engine

    return make_engine(get_settings().database_url)
