"""A real Label Studio server in its own venv on 127.0.0.1, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("INTEROP_LABEL_STUDIO_VENV", ROOT / ".venv-labelstudio"))
REQUIREMENTS = ROOT / "requirements" / "labelstudio.txt"
ADMIN_EMAIL = "admin@interop.test"


class LabelStudioUnavailable(RuntimeError):
    """The server could not be installed or started here."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_installed(venv: Path = VENV) -> Path:
    """Install label-studio into its own venv once (about 2 minutes), reuse it afterwards."""
    exe = venv / "bin" / "label-studio"
    if exe.exists():
        return exe
    print(f"installing Label Studio into {venv} (about 2 minutes, once)", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(REQUIREMENTS)], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise LabelStudioUnavailable(f"could not install label-studio into {venv}: {exc}") from exc
    return exe


@dataclass
class LabelStudioServer:
    """One server process with a throwaway data dir, a known admin and a legacy API token."""

    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(20))
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="interop-ls-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("USERNAME", "PASSWORD", "HOST", "PORT")}
        env.update(
            LABEL_STUDIO_BASE_DATA_DIR=str(self.data_dir),
            LABEL_STUDIO_USERNAME=ADMIN_EMAIL,
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

    def start(self, timeout: float = 240.0) -> LabelStudioServer:
        """Start and wait for /health; raises LabelStudioUnavailable with the log tail on failure."""
        exe = ensure_installed()
        log = (self.data_dir / "server.log").open("wb")
        self.process = subprocess.Popen(
            [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(self.port)],
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LabelStudioUnavailable(f"label-studio exited early:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200 and self._token_works():
                    return self
            except requests.RequestException:
                pass
            time.sleep(1.0)
        self.stop()
        raise LabelStudioUnavailable(f"label-studio did not answer /health in {timeout:.0f}s:\n{self.log_tail()}")

    def _token_works(self) -> bool:
        r = requests.get(f"{self.url}/api/projects", headers={"Authorization": f"Token {self.token}"}, timeout=5)
        return r.status_code == 200

    def log_tail(self, lines: int = 30) -> str:
        path = self.data_dir / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        """Stop the server's whole process group by PID."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None

    def client(self):  # type: ignore[no-untyped-def]
        from label_studio_sdk import LabelStudio

        return LabelStudio(base_url=self.url, api_key=self.token)
