"""`interop app`: start the Streamlit explorer on the configured database and print its URL."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import typer

from cli.common import console
from db.errors import InteropError

SCRIPT = Path(__file__).resolve().parents[1] / "streamlit_app.py"


def streamlit_command(port: int, address: str, script: Path = SCRIPT) -> list[str]:
    """The `streamlit run` command line (headless: the URL is printed, no browser is opened)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "minimal",
    ]


def port_in_use(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address if address not in ("localhost", "") else "127.0.0.1", port))
        except OSError:
            return True
    return False


def run_app(
    port: int = typer.Option(8501, "--port", "-p", help="Port to serve on."),
    address: str = typer.Option("localhost", "--address", help="Interface to bind (0.0.0.0 for every one)."),
) -> None:
    """Start the explorer (Overview, Survey, Issues, Labeling, Experiments, SQL) and print its URL."""
    from db.config import get_settings
    from db.engine import mask_url

    if not SCRIPT.exists():
        raise InteropError(f"{SCRIPT} is missing: run `interop app` from a checkout of Interop Lab")
    if port_in_use(address, port):
        raise InteropError(f"port {port} is already in use: pick another with --port")
    url = get_settings().database_url
    shown = "localhost" if address in ("0.0.0.0", "") else address
    console.print(f"Interop Lab explorer on http://{shown}:{port}  (database {mask_url(url)}; Ctrl-C stops it)")
    raise typer.Exit(serve(streamlit_command(port, address)))


def serve(command: list[str]) -> int:
    """Run the server in the foreground; Ctrl-C or SIGTERM stop it (never leaving it orphaned)."""
    proc = subprocess.Popen(command)
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
