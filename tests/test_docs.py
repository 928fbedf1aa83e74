"""The README documents what users see: every setting (its INTEROP_* variable) and every command of the CLI."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from cli.main import app
from db.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
#: Variables read outside the settings model (which file to read, tracebacks).
OTHER_VARIABLES = ("INTEROP_CONFIG", "INTEROP_DEBUG")


def command_paths(cmd: Any = None, path: tuple[str, ...] = ("interop",)) -> Iterator[str]:
    """Every command a user can run, as typed: `interop survey import`, `interop label codebook load`, …"""
    cmd = cmd or typer.main.get_command(app)
    subs = getattr(cmd, "commands", None) or {}
    if not subs or getattr(cmd, "invoke_without_command", False):
        yield " ".join(path)
    for name, sub in subs.items():
        yield from command_paths(sub, (*path, name))


def test_every_setting_is_in_the_readme() -> None:
    variables = [f"INTEROP_{name.upper()}" for name in Settings.model_fields]
    missing = [v for v in (*variables, *OTHER_VARIABLES) if v not in README]
    assert not missing, f"README.md does not mention {missing}"


def test_every_variable_the_code_reads_is_a_setting_or_documented() -> None:
    read = set()
    for folder in ("db", "miners", "labeling", "experiments", "cli", "reporting", "explorer"):
        for path in (ROOT / folder).rglob("*.py"):
            read |= set(re.findall(r"\bINTEROP_[A-Z_]+[A-Z]\b", path.read_text(encoding="utf-8")))
    missing = sorted(v for v in read if v not in README)
    assert not missing, f"README.md does not mention {missing}"


def test_every_command_is_in_the_readme() -> None:
    paths = list(command_paths())
    assert "interop survey import" in paths and "interop label codebook load" in paths and "interop export" in paths
    missing = [p for p in paths if not re.search(re.escape(p) + r"(?![\w-])", README)]
    assert not missing, f"README.md does not show {missing}"
