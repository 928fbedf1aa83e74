"""What every command group shares: the console, the one error handler, and the process's engine."""

from __future__ import annotations

from typing import Any

import click
import typer
from rich.console import Console
from sqlalchemy.engine import Engine
from typer.core import TyperGroup

from cli.output import make_console
from db.errors import InteropError, first_line

#: Command output: unlimited width when stdout is a pipe or file, so nothing a user copies is ever wrapped or cut.
console = make_console()
err_console = Console(stderr=True, highlight=False)


def error_line(message: str) -> None:
    """Print one `error:` line on stderr, every credential in it masked."""
    from rich.markup import escape

    from db.masking import mask_text

    err_console.print(f"[bold red]error:[/] {escape(mask_text(message))}", markup=True, soft_wrap=True)


def environment_error(exc: BaseException) -> InteropError | None:
    """An error from outside the program (a bad path, file, database URL or revision; an unreachable server) as the
    user error it is; None for anything else, which is a bug."""
    if isinstance(exc, UnicodeDecodeError):
        return InteropError(
            f"cannot read the input as UTF-8 text ({exc.reason} at byte {exc.start}): is it the right file?"
        )
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError | TimeoutError):
        where = exc.filename if exc.filename is not None else None
        return InteropError(f"{where}: {exc.strerror or exc}" if where is not None else " ".join(str(exc).split()))
    module = type(exc).__module__ or ""
    if module.startswith("alembic"):
        return InteropError(" ".join(str(exc).split()))
    if module.startswith("sqlalchemy"):
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

        if isinstance(exc, ArgumentError | NoSuchModuleError):
            return InteropError(f"INTEROP_DATABASE_URL is not a usable database URL: {' '.join(str(exc).split())}")
        if isinstance(exc, OperationalError):
            return InteropError(
                f"database error: {first_line(exc)} (check INTEROP_DATABASE_URL and that the server runs; "
                "`interop info`)"
            )
    if isinstance(exc, ModuleNotFoundError) and exc.name in {"MySQLdb", "pymysql", "cx_Oracle", "pyodbc"}:
        return InteropError(f"no driver for this database URL ({exc.name} is not installed); use SQLite or PostgreSQL")
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


def hide_flag_types(command: Any) -> None:
    """Flags (`--yes`, `--full`, `--help`) take no value: show no `<bool>` type for them in any command's --help."""
    from typer._click.core import Context

    for param in [*command.params, command.get_help_option(Context(command))]:
        if param is not None and getattr(param, "is_flag", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        hide_flag_types(sub)


class FriendlyGroup(TyperGroup):
    """The root command and the one place errors become output: an `InteropError` (or an error from outside the
    program, see `environment_error`) is one `error:` line and its exit code; anything else is a bug: one line,
    exit code 1. `INTEROP_DEBUG=1` shows the full traceback instead. The process's engine is disposed at the end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        hide_flag_types(self)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        hide_flag_types(self)  # the completion options are added after __init__
        super().format_help(ctx, formatter)

    def invoke(self, ctx: click.Context) -> Any:
        import os

        from typer._click.exceptions import ClickException, UsageError
        from typer.exceptions import Abort, Exit

        try:
            return super().invoke(ctx)
        except UsageError as exc:  # a mistyped command line: one line too (click would draw a usage box)
            error_line(usage_error_line(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            from db.ingest import Terminated

            if isinstance(exc, Terminated):
                error_line(str(exc))
                raise typer.Exit(143) from None
            raise
        except (Exit, Abort, ClickException, click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:
            if os.environ.get("INTEROP_DEBUG"):
                raise
            error = exc if isinstance(exc, InteropError) else environment_error(exc)
            if error is not None:
                error_line(str(error))
                if error.hint:
                    err_console.print(error.hint, markup=False, soft_wrap=True)
                raise typer.Exit(error.exit_code) from None
            error_line(
                f"internal error ({type(exc).__name__}: {first_line(exc)}); this is a bug in interop: "
                "INTEROP_DEBUG=1 shows the traceback"
            )
            raise typer.Exit(1) from None
        finally:
            dispose_engine()


_engine: dict[str, Engine] = {}


def engine() -> Engine:
    """The one engine of this process for the configured database (INTEROP_DATABASE_URL / interop.toml)."""
    from db.config import get_settings
    from db.engine import make_engine

    url = get_settings().database_url
    if url not in _engine:
        dispose_engine()  # the configuration changed (tests run many commands in one process)
        _engine[url] = make_engine(url)
    return _engine[url]


def dispose_engine() -> None:
    """Close the process's engine and its pooled connections (at the end of every command)."""
    while _engine:
        _engine.popitem()[1].dispose()
