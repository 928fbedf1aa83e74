"""`interop app`: start the Streamlit explorer on the configured database and print its URL; `interop app users`
manages the built-in sign-in that serving it beyond localhost requires."""

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

app = typer.Typer(invoke_without_command=True)  # its help is run_app's docstring
users_app = typer.Typer(
    help="The app's built-in users (sign-in when it is served beyond localhost).", no_args_is_help=True
)
app.add_typer(users_app, name="users")


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


@app.callback()
def run_app(
    ctx: typer.Context,
    port: int = typer.Option(8501, "--port", "-p", help="Port to serve on."),
    address: str = typer.Option(
        "localhost",
        "--address",
        help="Interface to bind (0.0.0.0 for every one: then everyone must sign in, see `interop app users`).",
    ),
) -> None:
    """Start the explorer (Overview, Survey, Issues, Labeling, Experiments, SQL) and print its URL.

    Bound to anything but localhost it asks everyone to sign in (OIDC from .streamlit/secrets.toml, or the
    users of `interop app users add`), and refuses to start when neither is set up."""
    if ctx.invoked_subcommand is not None:
        return
    import os

    from db.config import get_settings
    from db.engine import mask_url
    from explorer.access import SETUP_HELP, AccessError, is_loopback, list_users, oidc_configured

    if not SCRIPT.exists():
        raise InteropError(f"{SCRIPT} is missing: run `interop app` from a checkout of Interop Lab")
    env = dict(os.environ)
    if not is_loopback(address):
        try:
            users = list_users()
        except AccessError as exc:
            raise InteropError(str(exc)) from None
        if not users and not oidc_configured():
            raise InteropError(f"--address {address} serves other machines, so the app needs sign-in: {SETUP_HELP}")
        env["INTEROP_APP_SIGNIN"] = "required"
    if port_in_use(address, port):
        raise InteropError(f"port {port} is already in use: pick another with --port")
    url = get_settings().database_url
    shown = "localhost" if address in ("0.0.0.0", "") else address
    signin = "" if is_loopback(address) else "; sign-in required"
    console.print(f"Interop Lab explorer on http://{shown}:{port}  (database {mask_url(url)}{signin}; Ctrl-C stops it)")
    raise typer.Exit(serve(streamlit_command(port, address), env))


def _read_password(stdin: bool) -> str:
    """From stdin (one line), or typed twice at a hidden prompt; never echoed, logged or kept."""
    import sys

    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise InteropError("--password-stdin: no password on stdin")
        return password
    if not sys.stdin.isatty():
        raise InteropError("no terminal to type the password at: pass --password-stdin and pipe it in")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="User name (letters, digits, '.', '_', '@', '-')."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    replace: bool = typer.Option(False, "--replace", help="Set a new password for an existing user."),
) -> None:
    """Add a user (or with --replace set a new password); only a salted scrypt hash is stored."""
    from explorer.access import AccessError, add_user, users_file

    password = _read_password(password_stdin)
    try:
        new = add_user(name, password, replace=replace)
    except AccessError as exc:
        raise InteropError(str(exc)) from None
    console.print(f"user {name} {'added to' if new else 'has a new password in'} {users_file()}")


@users_app.command("remove")
def users_remove(name: str = typer.Argument(..., help="User name.")) -> None:
    """Remove a user; their open sessions are signed out at their next click."""
    from explorer.access import AccessError, remove_user, users_file

    try:
        remove_user(name)
    except AccessError as exc:
        raise InteropError(str(exc)) from None
    console.print(f"user {name} removed from {users_file()}")


@users_app.command("list")
def users_list() -> None:
    """The user names (never anything about their passwords)."""
    from explorer.access import AccessError, list_users, users_file

    try:
        names = list_users()
    except AccessError as exc:
        raise InteropError(str(exc)) from None
    console.print("\n".join(names) if names else f"no users in {users_file()}")


def serve(command: list[str], env: dict[str, str] | None = None) -> int:
    """Run the server in the foreground; Ctrl-C or SIGTERM stop it (never leaving it orphaned)."""
    proc = subprocess.Popen(command, env=env)
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
