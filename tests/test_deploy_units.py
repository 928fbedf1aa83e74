"""The systemd units under deploy/: each parses, runs as its own user with secrets in an EnvironmentFile, and its
ExecStart command exists here and answers `--help` (so a renamed command or option breaks this test first)."""

from __future__ import annotations

import configparser
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = sorted(p.name for p in DEPLOY.glob("*.service")) + sorted(p.name for p in DEPLOY.glob("*.timer"))


def parse(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True, comment_prefixes=("#", ";"))
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    unit.read_string((DEPLOY / name).read_text(encoding="utf-8"), source=name)
    return unit


def local_command(exec_start: str, tmp: Path) -> tuple[list[str], dict[str, str]]:
    """ExecStart with the server's paths (/srv/interop/.venv…) mapped to this checkout's venvs."""
    venv = Path(sys.executable).parent.parent
    labelstudio = Path(os.environ.get("INTEROP_LABEL_STUDIO_VENV", ROOT / ".venv-labelstudio"))
    argv = shlex.split(exec_start.lstrip("-@+!"))
    exe = argv[0].replace("/srv/interop/.venv-labelstudio", str(labelstudio)).replace("/srv/interop/.venv", str(venv))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp), "LABEL_STUDIO_BASE_DATA_DIR": str(tmp / "ls")}
    return [exe, *argv[1:]], env


def test_there_are_units_for_the_app_the_scheduler_label_studio_and_backups() -> None:
    assert set(UNITS) >= {
        "interop-app.service",
        "interop-scheduler.service",
        "label-studio.service",
        "interop-backup.service",
        "interop-backup.timer",
    }


@pytest.mark.parametrize("name", [u for u in UNITS if u.endswith(".service")])
def test_each_service_parses_and_its_command_answers_help(name: str, tmp_path: Path) -> None:
    unit = parse(name)
    service = unit["Service"]
    assert unit["Unit"]["Description"]
    assert service["User"] not in ("", "root") and service["EnvironmentFile"].startswith("/etc/interop/")
    assert "ExecStart" in service and service["ExecStart"].startswith("/")
    if service.get("Type", "simple") != "oneshot":
        assert unit["Install"]["WantedBy"] == "multi-user.target" and service["Restart"] == "on-failure"
    for key, value in service.items():  # no secret is written into a unit file
        assert not any(word in key.lower() for word in ("password", "token", "secret")), key
        assert "PASSWORD=" not in value and "ghp_" not in value, key
    argv, env = local_command(service["ExecStart"], tmp_path)
    if not Path(argv[0]).exists():
        pytest.skip(f"{argv[0]} is not installed here")
    if Path(argv[0]).name.startswith("pg_"):  # PostgreSQL's clients take --help only on its own
        argv = argv[:1]
    done = subprocess.run([*argv, "--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (argv, done.stdout[-1000:], done.stderr[-2000:])
    assert "usage" in (done.stdout + done.stderr).lower()


@pytest.mark.parametrize("name", [u for u in UNITS if u.endswith(".timer")])
def test_each_timer_names_a_schedule_and_a_service_that_exists(name: str) -> None:
    timer = parse(name)
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == "timers.target"
    target = timer["Timer"].get("Unit", name.replace(".timer", ".service"))
    assert (DEPLOY / target).exists()


def test_the_readme_team_guide_names_every_unit() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [u for u in UNITS if f"deploy/{u}" not in readme]
    assert not missing, missing
