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


def choices_of(param: Any) -> list[str]:
    """The values an enumerated option or argument accepts (a Literal or an Enum, maybe optional or repeated)."""
    import enum
    import typing

    descriptor = getattr(param, "type_descriptor", None)
    pending = [getattr(descriptor, "annotation", None)]
    while pending:
        annotation = pending.pop()
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            return [str(m.value) for m in annotation]
        if typing.get_origin(annotation) is typing.Literal:
            return [str(v) for v in typing.get_args(annotation)]
        pending.extend(a for a in typing.get_args(annotation) if a is not type(None))
    return []


def usage_error_line(exc: Any) -> str:
    """A command-line mistake as one line: an unknown choice lists the choices; anything else points at --help."""
    from typer._click.exceptions import BadParameter, MissingParameter

    param = getattr(exc, "param", None)
    choices = choices_of(param) if param is not None else []
    if isinstance(exc, BadParameter) and not isinstance(exc, MissingParameter) and choices:
        opts = [o for o in getattr(param, "opts", []) if o.startswith("--")] or [str(param.name)]
        cause = exc.__cause__
        errors = cause.errors() if hasattr(cause, "errors") else []
        given = f" {errors[0]['input']!r}" if errors and "input" in errors[0] else ""
        return f"unknown {opts[0]}{given}: choose one of {', '.join(choices)}"
    names: list[str] = []
    ctx = getattr(exc, "ctx", None)
    while ctx is not None and ctx.parent is not None:  # the root's name depends on how the CLI was started
        names.insert(0, str(ctx.info_name))
        ctx = ctx.parent
    command = " ".join(["interop", *names])
    message = " ".join(exc.format_message().split()).rstrip(".")
    return f"{message} (see `{command} --help`)"


class FriendlyGroup(TyperGroup):
    """The root command: errors a user can fix print one `error:` line (exit 2), never a traceback.

    `INTEROP_DEBUG=1` shows the full traceback instead."""

    def invoke(self, ctx: click.Context) -> Any:
        import os

        from typer._click.exceptions import UsageError

        try:
            return super().invoke(ctx)
        except UsageError as exc:  # a mistyped command line: one line too (click would draw a usage box)
            fail(usage_error_line(exc), exc.exit_code)
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
