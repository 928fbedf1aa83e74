"""Entry point of `interop`; heavy libraries are imported inside commands, never at start-up."""

from __future__ import annotations

import platform
import signal
import threading
from importlib import metadata
from pathlib import Path
from types import FrameType

import typer

from cli import (
    db_commands,
    experiment_commands,
    issues_commands,
    label_commands,
    labelstudio_commands,
    mine_commands,
    schedule_commands,
    survey_commands,
)
from cli.common import FriendlyGroup, console, engine

app = typer.Typer(
    cls=FriendlyGroup,
    help="Interop Lab: mine, code, convert and explore ONNX model-converter data.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(db_commands.app, name="db")
app.add_typer(survey_commands.app, name="survey")
app.add_typer(mine_commands.app, name="mine")
app.add_typer(issues_commands.app, name="issues")
app.add_typer(schedule_commands.app, name="schedule")
app.add_typer(label_commands.app, name="label")
app.add_typer(labelstudio_commands.app, name="labelstudio")
app.add_typer(experiment_commands.app, name="experiment")

STACK = ("torch", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "onnxscript", "nnsmith")


def _version(value: bool) -> None:
    if value:
        console.print(f"interop-lab {metadata.version('interop-lab')}")
        raise typer.Exit()


def _terminated(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (systemd, cron timeouts, `kill`) unwinds like Ctrl-C, so the run being recorded closes as interrupted."""
    from db.ingest import Terminated

    raise Terminated(f"terminated by signal {signal.Signals(signum).name}")


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Interop Lab command line."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)


def package_version(name: str) -> str:
    """Installed version of a distribution without importing it (torch/TF imports take seconds)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


@app.command()
def info() -> None:
    """Show the database (password masked), its schema revision, and the converter stack's versions."""
    from rich.table import Table
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from db.config import ConfigError, get_settings
    from db.engine import mask_url, normalize_url
    from db.migrate import current_revision, head_revision

    settings = get_settings()
    url = settings.database_url
    parsed = normalize_url(url)
    missing = (
        parsed.get_backend_name() == "sqlite"
        and parsed.database not in (None, "", ":memory:")
        and not Path(parsed.database).expanduser().exists()
    )
    try:  # never create a database (or its folder) just to describe it
        rev = (
            "(no database file yet: run `interop db upgrade`)"
            if missing
            else current_revision(engine()) or "(empty: run `interop db upgrade`)"
        )
    except SQLAlchemyError as exc:
        rev = f"unreachable ({type(exc).__name__})"
    table = Table(show_header=False, box=None)
    table.add_row("interop-lab", package_version("interop-lab"))
    table.add_row("database", mask_url(url))
    table.add_row("schema revision", f"{rev} (head {head_revision()})")
    if settings.reader_database_url:
        try:
            normalize_url(settings.reader_database_url)
            reader = mask_url(settings.reader_database_url)
        except (ArgumentError, ConfigError):
            reader = "(INTEROP_READER_DATABASE_URL is not a usable database URL)"
    elif parsed.get_backend_name() == "sqlite":
        reader = "(not needed: SQLite is opened read-only)"
    else:
        reader = "(not set: the SQL console refuses; `interop db create-reader` makes one)"
    table.add_row("SQL console reader", reader)
    table.add_row("python", platform.python_version())
    for name in STACK:
        table.add_row(name, package_version(name))
    console.print(table)


def _register_explorer() -> None:
    """`interop app` and `interop export` (registered here, at the end, to keep merges with other areas easy)."""
    from cli import app_commands, export_commands, report_commands

    app.add_typer(export_commands.app, name="export")
    app.add_typer(report_commands.app, name="report")
    app.add_typer(app_commands.app, name="app")


_register_explorer()

if __name__ == "__main__":
    app()
