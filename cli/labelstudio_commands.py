"""`interop labelstudio start|stop|status`: the local Label Studio server (workflow in labeling/server.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cli.common import console, err_console
from cli.output import Format, emit, format_option, new_table, out_option

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(help="Run the local Label Studio server (installed by `make labelstudio`).", no_args_is_help=True)


@app.command("start")
def start(
    port: int = typer.Option(
        None, "--port", min=1, max=65535, help="Port on 127.0.0.1 (default: the last one used, else 8080)."
    ),
    timeout: float = typer.Option(600.0, "--timeout", min=1, help="Seconds to wait until it is ready."),
) -> None:
    """Start the server from its venv (first start: admin account and API token), wait until it is ready."""
    from db.config import get_settings
    from labeling.server import start as do_start

    settings = get_settings()

    def progress(waited: float) -> None:
        err_console.print(
            f"starting Label Studio… {waited:.0f} s (a first start migrates its database)", highlight=False
        )

    result = do_start(settings, port, progress, timeout)
    if result.already_running:
        console.print(f"Label Studio already runs at {result.url} (pid {result.pid})", markup=False)
    else:
        first = " (first start: admin account and API token created)" if result.first_start else ""
        console.print(
            f"Label Studio runs at {result.url} (pid {result.pid}), ready in {result.seconds:.0f} s{first}",
            markup=False,
        )
    console.print(
        f"URL and API token stored in {result.credentials} (mode 600), read by every `interop` command; "
        f"sign in at {result.url} as {result.admin_email} (password in that file)",
        markup=False,
    )
    overridden = [k for k in ("INTEROP_LABEL_STUDIO_URL", "INTEROP_LABEL_STUDIO_API_KEY") if os.environ.get(k)]
    if overridden:
        err_console.print(
            f"[yellow]note:[/] {', '.join(overridden)} set in the environment take precedence over that file"
        )


@app.command("stop")
def stop() -> None:
    """Stop the server started by `interop labelstudio start` (SIGTERM, SIGKILL after 20 s)."""
    from db.config import get_settings
    from labeling.server import stop as do_stop

    outcome, pid = do_stop(get_settings())
    if outcome == "not running":
        console.print("Label Studio is not running (nothing to stop)")
    elif outcome == "killed":
        console.print(f"Label Studio (pid {pid}) did not stop on SIGTERM in 20 s: killed")
    else:
        console.print(f"Label Studio (pid {pid}) stopped")


@app.command("status")
def status(fmt: Format = format_option(), out: Path | None = out_option()) -> None:
    """Running or stopped, URL, PID, and whether the configured API token works (never the token itself)."""
    import pandas as pd

    from db.config import get_settings
    from labeling.server import status as do_status

    state = do_status(get_settings())
    row = state.as_row()

    def render(to: Console) -> None:
        table = new_table("field", "value")
        for key, value in row.items():
            table.add_row(key, "—" if value is None else str(value))
        to.print(table)

    emit(fmt, out, pd.DataFrame([row]), render=render)
