"""A local Label Studio server run from its own venv: started, health-checked and stopped by PID.

One implementation for `interop labelstudio start|stop|status` and for the tests and benchmarks, which start
throwaway servers the same way. The admin account and its legacy API token are created by Label Studio itself on
first start (LABEL_STUDIO_USERNAME/PASSWORD/USER_TOKEN); the CLI keeps them in a mode-600 dotenv file that the
settings read, so later commands find the server without the token ever being printed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from labeling.store import LabelingError

if TYPE_CHECKING:
    from db.config import Settings

ADMIN_EMAIL = "admin@interop.local"
DEFAULT_PORT = 8080
HOST = "127.0.0.1"
START_TIMEOUT_S = 600.0  # a first start runs migrations: ~40 s on a quiet machine, 287 s measured on a busy one
STOP_TIMEOUT_S = 20.0
PROGRESS_EVERY_S = 15.0
#: Keys of the credentials file (read by db.config.Settings as a dotenv source).
URL_KEY, TOKEN_KEY = "INTEROP_LABEL_STUDIO_URL", "INTEROP_LABEL_STUDIO_API_KEY"
EMAIL_KEY, PASSWORD_KEY = "INTEROP_LABEL_STUDIO_ADMIN_EMAIL", "INTEROP_LABEL_STUDIO_ADMIN_PASSWORD"

Progress = Callable[[float], None]


class LabelStudioServerError(LabelingError):
    """The local server cannot be started, reached or stopped as asked: one line saying what to do."""


def free_port() -> int:
    """A TCP port nobody listens on now (for throwaway servers)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_taken(port: int, host: str = HOST) -> bool:
    """True when something already listens on (or holds) `host:port`."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def executable(venv: Path) -> Path:
    """`label-studio` of the venv, or one error line saying how to install it."""
    exe = venv / "bin" / "label-studio"
    if not exe.exists():
        raise LabelStudioServerError(
            f"Label Studio is not installed in {venv}: run `make labelstudio` (or point INTEROP_LABEL_STUDIO_VENV "
            "at a venv that has it)"
        )
    return exe


def pid_alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie child of ours is reaped and counts as gone)."""
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if fields and fields[0] == "Z":
            return False
    return True


def is_label_studio(pid: int) -> bool:
    """Whether `pid` is a label-studio process (a stale PID file may name a recycled PID)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid_alive(pid)  # no /proc: trust the PID file
    return b"label-studio" in cmdline or b"label_studio" in cmdline


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT_S) -> str:
    """SIGTERM the process group of `pid`, SIGKILL it after `timeout` s: `stopped`, `killed` or `not running`."""
    if not pid_alive(pid):
        return "not running"
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "not running"
    except PermissionError as exc:
        raise LabelStudioServerError(f"cannot stop process {pid}: {exc.strerror}") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return "stopped"
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return "killed"


@dataclass
class LabelStudioServer:
    """One server process: its venv, data dir, port, admin and legacy API token."""

    venv: Path
    data_dir: Path
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(20))
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    admin_email: str = ADMIN_EMAIL
    log_path: Path | None = None
    pid: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # never the token or password
        return f"LabelStudioServer(url={self.url!r}, data_dir={str(self.data_dir)!r}, pid={self.pid})"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log(self) -> Path:
        return self.log_path or self.data_dir / "server.log"

    def environment(self) -> dict[str, str]:
        """The server's environment: our admin and token, legacy tokens on, no phoning home."""
        env = {k: v for k, v in os.environ.items() if k not in ("USERNAME", "PASSWORD", "HOST", "PORT")}
        env.update(
            LABEL_STUDIO_BASE_DATA_DIR=str(self.data_dir),
            LABEL_STUDIO_USERNAME=self.admin_email,
            LABEL_STUDIO_PASSWORD=self.password,
            LABEL_STUDIO_USER_TOKEN=self.token,
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
            LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
            LATEST_VERSION_CHECK="false",
            COLLECT_ANALYTICS="false",
            SENTRY_DSN="",
            FRONTEND_SENTRY_DSN="",
        )
        return env

    def launch(self) -> int:
        """Start the server in its own session (it outlives the command that started it); returns its PID."""
        exe = executable(self.venv)
        if port_taken(self.port):
            raise LabelStudioServerError(
                f"port {self.port} on {HOST} is already in use by another program: choose another with --port"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log, open(os.devnull, "rb") as devnull:
            self.process = subprocess.Popen(
                [str(exe), "start", "--no-browser", "--internal-host", HOST, "--port", str(self.port)],
                env=self.environment(),
                stdin=devnull,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.process.pid
        return self.pid

    def healthy(self) -> bool:
        """`/health` answers 200."""
        try:
            return requests.get(f"{self.url}/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def token_works(self) -> bool:
        """The API accepts the token (the legacy token auth is on and the admin has this token)."""
        try:
            answer = requests.get(
                f"{self.url}/api/current-user/whoami", headers={"Authorization": f"Token {self.token}"}, timeout=5
            )
        except requests.RequestException:
            return False
        return answer.status_code == 200

    def wait_ready(
        self, timeout: float = START_TIMEOUT_S, progress: Progress | None = None, *, stop_on_failure: bool = True
    ) -> float:
        """Wait until /health answers and the token works; returns the seconds waited. Raises with the log's last
        line when the server exits or does not get ready in time (stopping it, if `stop_on_failure`)."""
        started = time.monotonic()
        next_note = started + PROGRESS_EVERY_S
        while (waited := time.monotonic() - started) < timeout:
            if self.pid is not None and not pid_alive(self.pid):
                raise LabelStudioServerError(
                    f"Label Studio exited while starting ({self.last_log_line()}); see {self.log}"
                )
            if self.healthy():
                if self.token_works():
                    return waited
                if waited > 30:  # healthy for a while but the token is refused: it is not ours
                    if stop_on_failure:
                        self.stop()
                    raise LabelStudioServerError(
                        f"Label Studio in {self.data_dir} refuses the stored API token (its admin was made with "
                        "another one): remove that directory to start afresh"
                    )
            if progress is not None and time.monotonic() >= next_note:
                progress(waited)
                next_note += PROGRESS_EVERY_S
            time.sleep(0.5)
        if stop_on_failure:
            self.stop()
        raise LabelStudioServerError(
            f"Label Studio did not get ready in {timeout:.0f} s ({self.last_log_line()}); see {self.log}"
        )

    def start(self, timeout: float = START_TIMEOUT_S, progress: Progress | None = None) -> LabelStudioServer:
        """Launch and wait until ready."""
        self.launch()
        self.wait_ready(timeout, progress)
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> str:
        """Stop the server's process group by PID: `stopped`, `killed` or `not running`."""
        if self.pid is None:
            return "not running"
        outcome = stop_pid(self.pid, timeout)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=1)
            self.process = None
        self.pid = None
        return outcome

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def last_log_line(self) -> str:
        tail = [line for line in self.log_tail(30).splitlines() if line.strip()]
        return tail[-1].strip()[:300] if tail else "no output"


# --- the project's own server (`interop labelstudio …`) ----------------------------------------------------------


@dataclass(frozen=True)
class LocalPaths:
    """Where the project's server keeps its state: under the settings' state dir."""

    state_dir: Path

    @property
    def root(self) -> Path:
        return self.state_dir / "labelstudio"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def pid_file(self) -> Path:
        return self.root / "server.pid"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def credentials(self) -> Path:
        return credentials_file(self.state_dir)


def credentials_file(state_dir: Path) -> Path:
    """The mode-600 dotenv file with the server's URL, API token and admin login (read by the settings)."""
    return state_dir / "labelstudio.env"


def read_credentials(path: Path) -> dict[str, str]:
    """The stored keys, or {} when there is no file yet."""
    if not path.exists():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by the owner only (mode 600 from creation on, then renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".partial")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


def write_credentials(path: Path, server: LabelStudioServer) -> None:
    """Store URL, token and admin login where the settings read them (mode 600)."""
    write_private(
        path,
        "# written by `interop labelstudio start`; keep private (mode 600)\n"
        f"{URL_KEY}={server.url}\n{TOKEN_KEY}={server.token}\n"
        f"{EMAIL_KEY}={server.admin_email}\n{PASSWORD_KEY}={server.password}\n",
    )


def _port_of(url: str | None) -> int | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).port if url else None
    except ValueError:
        return None


def _recorded_pid(paths: LocalPaths) -> int | None:
    """The PID in the PID file when that process is still a running label-studio; else None."""
    try:
        pid = int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) and is_label_studio(pid) else None


def local_server(settings: Settings, port: int | None = None) -> LabelStudioServer:
    """The project's server as configured: stored token, password and port (new ones on first start)."""
    paths = LocalPaths(settings.state_dir)
    stored = read_credentials(paths.credentials)
    server = LabelStudioServer(
        venv=settings.label_studio_venv,
        data_dir=paths.data_dir,
        port=port or _port_of(stored.get(URL_KEY)) or DEFAULT_PORT,
        log_path=paths.log,
        admin_email=stored.get(EMAIL_KEY) or ADMIN_EMAIL,
    )
    if stored.get(TOKEN_KEY):
        server.token = stored[TOKEN_KEY]
    if stored.get(PASSWORD_KEY):
        server.password = stored[PASSWORD_KEY]
    server.pid = _recorded_pid(paths)
    return server


@dataclass
class StartResult:
    url: str
    pid: int
    already_running: bool
    first_start: bool
    seconds: float
    credentials: Path
    admin_email: str


def start(
    settings: Settings, port: int | None = None, progress: Progress | None = None, timeout: float = START_TIMEOUT_S
) -> StartResult:
    """Start the project's server (or find it running), wait until it is ready, record PID and credentials."""
    paths = LocalPaths(settings.state_dir)
    running = local_server(settings)
    if running.pid is not None:
        if port is not None and port != running.port:
            raise LabelStudioServerError(
                f"Label Studio already runs at {running.url} (pid {running.pid}); `interop labelstudio stop` first "
                f"to move it to port {port}"
            )
        waited = running.wait_ready(timeout, progress, stop_on_failure=False)
        return StartResult(running.url, running.pid, True, False, waited, paths.credentials, running.admin_email)
    server = local_server(settings, port)
    executable(server.venv)
    if port_taken(server.port):
        raise LabelStudioServerError(
            f"port {server.port} on {HOST} is already in use by another program: choose another with --port"
        )
    first = not (paths.data_dir / "label_studio.sqlite3").exists()
    paths.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_credentials(paths.credentials, server)  # before launch: the admin is made with exactly this token
    pid = server.launch()
    paths.pid_file.write_text(f"{pid}\n")
    try:
        waited = server.wait_ready(timeout, progress)
    except LabelStudioServerError:
        with contextlib.suppress(FileNotFoundError):
            paths.pid_file.unlink()
        raise
    return StartResult(server.url, pid, False, first, waited, paths.credentials, server.admin_email)


def stop(settings: Settings, timeout: float = STOP_TIMEOUT_S) -> tuple[str, int | None]:
    """Stop the project's server: (`stopped` | `killed` | `not running`, its PID)."""
    paths = LocalPaths(settings.state_dir)
    pid = _recorded_pid(paths)
    outcome = stop_pid(pid, timeout) if pid is not None else "not running"
    with contextlib.suppress(FileNotFoundError):
        paths.pid_file.unlink()
    return outcome, pid


@dataclass
class Status:
    running: bool
    url: str
    pid: int | None
    healthy: bool
    token: str  # works | refused | none | unknown (never the token itself)
    data_dir: Path
    credentials: Path
    log: Path

    def as_row(self) -> dict[str, object]:
        return {
            "state": "running" if self.running else "stopped",
            "url": self.url,
            "pid": self.pid,
            "healthy": self.healthy,
            "token": self.token,
            "data_dir": str(self.data_dir),
            "credentials": str(self.credentials),
            "log": str(self.log),
        }


def status(settings: Settings) -> Status:
    """Running or not (by PID file), the URL the settings point at, whether it answers and takes the token."""
    paths = LocalPaths(settings.state_dir)
    server = local_server(settings)
    url = settings.label_studio_url.rstrip("/")
    secret = settings.label_studio_api_key
    key = secret.get_secret_value() if secret else None
    answers = _answers(url)
    if not key:
        token = "none"
    elif not answers:
        token = "unknown"
    else:
        token = "works" if _token_accepted(url, key) else "refused"
    return Status(
        running=server.pid is not None,
        url=url,
        pid=server.pid,
        healthy=answers,
        token=token,
        data_dir=paths.data_dir,
        credentials=paths.credentials,
        log=paths.log,
    )


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=3).status_code == 200
    except requests.RequestException:
        return False


def _token_accepted(url: str, key: str) -> bool:
    try:
        answer = requests.get(f"{url}/api/current-user/whoami", headers={"Authorization": f"Token {key}"}, timeout=5)
    except requests.RequestException:
        return False
    return answer.status_code == 200
