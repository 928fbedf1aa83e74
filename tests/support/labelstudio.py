"""A real Label Studio server in its own venv on 127.0.0.1, for tests and benchmarks.

The server itself is `labeling.server.LabelStudioServer`, the same code `interop labelstudio start` runs; this
module only installs the venv when missing and gives each test session a throwaway data dir."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from labeling.server import LabelStudioServer as _Server
from labeling.server import LabelStudioServerError, free_port

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("INTEROP_LABEL_STUDIO_VENV", ROOT / ".venv-labelstudio"))
REQUIREMENTS = ROOT / "requirements" / "labelstudio.txt"
ADMIN_EMAIL = "admin@interop.test"

__all__ = ["ADMIN_EMAIL", "VENV", "LabelStudioServer", "LabelStudioUnavailable", "ensure_installed", "free_port"]


class LabelStudioUnavailable(RuntimeError):
    """The server could not be installed or started here."""


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


class LabelStudioServer(_Server):
    """A throwaway server: the project's own server class with a temporary data dir and the test admin."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        super().__init__(
            venv=VENV,
            data_dir=data_dir or Path(tempfile.mkdtemp(prefix="interop-ls-")),
            port=port or free_port(),
            admin_email=ADMIN_EMAIL,
        )

    def start(self, timeout: float = 240.0, progress=None) -> LabelStudioServer:  # type: ignore[no-untyped-def]
        """Install when missing, start and wait; LabelStudioUnavailable with the log tail on failure."""
        ensure_installed(self.venv)
        try:
            super().start(timeout, progress)
        except LabelStudioServerError as exc:
            raise LabelStudioUnavailable(f"{exc}\n{self.log_tail()}") from exc
        return self

    def client(self):  # type: ignore[no-untyped-def]
        from label_studio_sdk import LabelStudio

        return LabelStudio(base_url=self.url, api_key=self.token)
