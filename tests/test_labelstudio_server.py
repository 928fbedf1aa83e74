"""`interop labelstudio start|stop|status` against the real server from its venv (slow: one start per module).

The credentials it stores (mode 600) are what later commands connect with; the token never shows in any output."""

from __future__ import annotations

import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values
from typer.testing import CliRunner

from cli.main import app
from labeling.server import pid_alive
from tests.support.labelstudio import VENV, LabelStudioUnavailable, ensure_installed, free_port
from tests.support.services import skip_or_fail

pytestmark = pytest.mark.labelstudio


def run(*args: str) -> Any:
    """`interop ARGS…` in-process; stdout and stderr both checked by the callers."""
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def everything(result: Any) -> str:
    """All a command showed: click's `output` holds stdout and stderr interleaved."""
    return str(result.output)


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The project's server started once by `interop labelstudio start` in a fresh state dir; stopped at the end."""
    try:
        ensure_installed(VENV)
    except LabelStudioUnavailable as exc:
        skip_or_fail(str(exc))
    state = tmp_path_factory.mktemp("state")
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTEROP_STATE_DIR", str(state))
        mp.setenv("INTEROP_LABEL_STUDIO_VENV", str(VENV))
        mp.delenv("INTEROP_LABEL_STUDIO_URL", raising=False)
        mp.delenv("INTEROP_LABEL_STUDIO_API_KEY", raising=False)
        result = run("labelstudio", "start", "--port", str(port))
        if result.exit_code != 0:
            log = state / "labelstudio" / "server.log"
            skip_or_fail(f"labelstudio start failed: {everything(result)} {log.read_text() if log.exists() else ''}")
        try:
            yield {"state": state, "port": port, "start": result}
        finally:
            run("labelstudio", "stop")


def credentials(state: Path) -> dict[str, str]:
    return {k: v or "" for k, v in dotenv_values(state / "labelstudio.env").items()}


def test_start_creates_the_admin_and_a_token_stored_mode_600_and_never_shown(started: dict[str, Any]) -> None:
    from db.config import get_settings

    shown = everything(started["start"])
    url = f"http://127.0.0.1:{started['port']}"
    assert f"Label Studio runs at {url}" in shown and "first start" in shown
    path = started["state"] / "labelstudio.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = credentials(started["state"])
    token, password = stored["INTEROP_LABEL_STUDIO_API_KEY"], stored["INTEROP_LABEL_STUDIO_ADMIN_PASSWORD"]
    assert len(token) >= 32 and password
    assert token not in shown and password not in shown
    assert token not in (started["state"] / "labelstudio" / "server.log").read_text(errors="replace")
    settings = get_settings()  # every later command reads them
    assert settings.label_studio_url == url
    assert settings.label_studio_api_key is not None and settings.label_studio_api_key.get_secret_value() == token
    assert token not in repr(settings)


def test_status_says_running_with_url_pid_and_a_working_token(started: dict[str, Any]) -> None:
    import json

    result = run("labelstudio", "status", "-f", "json")
    assert result.exit_code == 0, everything(result)
    (row,) = json.loads(result.output)
    assert row["state"] == "running" and row["healthy"] is True and row["token"] == "works"
    assert row["url"] == f"http://127.0.0.1:{started['port']}" and pid_alive(row["pid"])
    table = run("labelstudio", "status")
    token = credentials(started["state"])["INTEROP_LABEL_STUDIO_API_KEY"]
    assert token not in everything(result) + everything(table)
    with pytest.MonkeyPatch.context() as mp:  # a token the server does not know
        mp.setenv("INTEROP_LABEL_STUDIO_API_KEY", "0" * 40)
        (wrong,) = json.loads(run("labelstudio", "status", "-f", "json").output)
    assert wrong["token"] == "refused" and wrong["state"] == "running"


def test_start_again_finds_it_running_and_will_not_move_it(started: dict[str, Any]) -> None:
    again = run("labelstudio", "start")
    assert again.exit_code == 0 and f"already runs at http://127.0.0.1:{started['port']}" in everything(again)
    moved = run("labelstudio", "start", "--port", str(free_port()))
    assert moved.exit_code == 2 and "`interop labelstudio stop` first" in everything(moved)


def test_push_a_sample_drawn_from_a_sheet_round(started: dict[str, Any], cli, shared_dir: Path, backend: str) -> None:  # type: ignore[no-untyped-def]
    from label_studio_sdk import LabelStudio

    from db.config import get_settings
    from db.engine import make_engine
    from db.queries.issues import IssueFilter, issue_list

    assert (
        cli("label", "codebook", "load", str(shared_dir / "codebook" / "onnx-converter-failures.yaml")).exit_code == 0
    )
    sheet = shared_dir / "data" / "paper-artifact" / "failure-analysis" / "FailureAnalysis.xlsx"
    assert cli("label", "import-sheet", str(sheet)).exit_code == 0
    drawn = cli("issues", "sample", "--n", "6", "--seed", "3", "--name", "recode", "--from-round", "failureanalysis")
    assert drawn.exit_code == 0, drawn.output
    pushed = cli(
        "label", "push", "--sample", "recode", "--round", f"recode-{backend}", "--coders", "me=admin@interop.local"
    )
    assert pushed.exit_code == 0, pushed.output
    settings = get_settings()
    members = issue_list(make_engine(settings.database_url), IssueFilter(sample="recode", mined=None), limit=None)
    expected = {
        f"{r}#{n}": t for r, n, t in zip(members["repository"], members["number"], members["title"], strict=True)
    }
    key = settings.label_studio_api_key
    assert key is not None
    client = LabelStudio(base_url=settings.label_studio_url, api_key=key.get_secret_value())
    (project,) = [p for p in client.projects.list() if (p.title or "").startswith(f"recode-{backend} · me")]
    tasks = list(client.tasks.list(project=project.id))
    assert {t.data["item_ref"] for t in tasks} == set(expected)
    for task in tasks:  # URL-only issues: the sheet's title, marked as such
        assert task.data["title"].endswith(f"{expected[task.data['item_ref']]} (title from the coding sheet)")


def test_stop_stops_it_and_a_restart_keeps_the_token(started: dict[str, Any]) -> None:
    import json

    (before,) = json.loads(run("labelstudio", "status", "-f", "json").output)
    stopped = run("labelstudio", "stop")
    assert stopped.exit_code == 0 and f"Label Studio (pid {before['pid']}) stopped" in stopped.output
    assert not pid_alive(before["pid"])
    (after,) = json.loads(run("labelstudio", "status", "-f", "json").output)
    assert after["state"] == "stopped" and after["pid"] is None and after["healthy"] is False
    assert "not running" in run("labelstudio", "stop").output
    restarted = run("labelstudio", "start")
    assert restarted.exit_code == 0, everything(restarted)
    assert "first start" not in everything(restarted)
    (again,) = json.loads(run("labelstudio", "status", "-f", "json").output)
    assert again["state"] == "running" and again["token"] == "works" and again["url"] == before["url"]


def test_a_missing_venv_says_make_labelstudio_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTEROP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("INTEROP_LABEL_STUDIO_VENV", str(tmp_path / "no-venv"))
    result = run("labelstudio", "start")
    assert result.exit_code == 2
    lines = [line for line in everything(result).splitlines() if line.strip()]
    assert lines == [
        f"error: Label Studio is not installed in {tmp_path / 'no-venv'}: run `make labelstudio` "
        "(or point INTEROP_LABEL_STUDIO_VENV at a venv that has it)"
    ]
    assert not (tmp_path / "state").exists()


def test_a_taken_port_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        ensure_installed(VENV)
    except LabelStudioUnavailable as exc:
        skip_or_fail(str(exc))
    monkeypatch.setenv("INTEROP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("INTEROP_LABEL_STUDIO_VENV", str(VENV))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("labelstudio", "start", "--port", str(port))
    assert result.exit_code == 2
    assert f"error: port {port} on 127.0.0.1 is already in use by another program" in everything(result)
    assert not (tmp_path / "state" / "labelstudio" / "server.pid").exists()
    assert not (tmp_path / "state" / "labelstudio.env").exists()
