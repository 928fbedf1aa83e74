"""`interop --version`, `info` and `db …` as a user types them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cli.main import STACK


def test_version_prints_the_package_version(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("interop-lab ")


def test_info_shows_revision_and_every_stack_version(cli, db_url: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("info")
    assert result.exit_code == 0, result.output
    from db.migrate import head_revision

    assert f"{head_revision()} (head {head_revision()})" in result.stdout
    for name in (*STACK, "python"):
        assert name in result.stdout


def test_info_masks_the_database_password(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from cli.main import app

    monkeypatch.setenv("INTEROP_DATABASE_URL", "postgresql://alice:hunter2@127.0.0.1:1/nope")
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0
    assert "hunter2" not in result.output
    assert "alice:***@127.0.0.1" in result.output


def test_info_creates_no_database_file_or_folder(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from cli.main import app

    target = tmp_path / "not-yet" / "interop.db"
    monkeypatch.setenv("INTEROP_DATABASE_URL", f"sqlite:///{target}")
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0 and "no database file yet" in " ".join(result.output.split())
    assert not target.parent.exists()


def test_db_upgrade_current_downgrade_on_an_empty_database(empty_db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from cli.main import app
    from db.migrate import head_revision

    monkeypatch.setenv("INTEROP_DATABASE_URL", empty_db_url)
    runner = CliRunner()
    assert "(empty database)" in runner.invoke(app, ["db", "current"]).stdout
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert f"current: {head_revision()}" in runner.invoke(app, ["db", "current"]).stdout
    assert runner.invoke(app, ["db", "downgrade", "base", "--yes"]).exit_code == 0
    assert "(empty database)" in runner.invoke(app, ["db", "current"]).stdout


def test_a_downgrade_that_drops_data_says_what_and_needs_yes(empty_db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from sqlmodel import SQLModel
    from typer.testing import CliRunner

    from cli import db_commands
    from cli.main import app
    from db.engine import make_engine
    from db.ingest import recorded_run
    from db.migrate import head_revision
    from tests.support.snapshot import table_digests
    from tests.test_cli_errors import assert_one_error_line

    monkeypatch.setenv("INTEROP_DATABASE_URL", empty_db_url)
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    engine = make_engine(empty_db_url)
    with recorded_run(engine, "test-run"):  # one row of data
        pass
    before = table_digests(engine, skip=())
    # not a terminal (a script, cron, CI): one error line naming every table and its rows; nothing dropped
    refused = runner.invoke(app, ["db", "downgrade", "base"])
    assert refused.exit_code == 2
    tables = len(SQLModel.metadata.tables)
    assert_one_error_line(refused.output, f"`interop db downgrade base` would drop {tables} tables with 1 row", "--yes")
    assert "ingest_run (1 row)" in refused.output and f"and {tables - 1} empty (adjudication_history, campaign," in (
        refused.output
    )
    assert table_digests(engine, skip=()) == before
    later = runner.invoke(app, ["db", "downgrade", "0011_run_key_per_campaign", "--yes"])  # empty tables, columns
    assert later.exit_code == 0 and "downgraded to 0011_run_key_per_campaign" in later.output, later.output
    columns = runner.invoke(app, ["db", "downgrade", "0009_model_operator"])
    assert columns.exit_code == 2 and "2 columns: ingest_run.pid (1 value), ingest_run.host (1 value)" in columns.output
    # a downgrade that drops nothing needs no confirmation
    quiet = runner.invoke(app, ["db", "downgrade", "0010_ingest_run_process"])
    assert quiet.exit_code == 0 and "downgraded to 0010_ingest_run_process" in quiet.output
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    # at a terminal: the list, then a question; "no" keeps everything
    monkeypatch.setattr(db_commands, "_interactive", lambda: True)
    declined = runner.invoke(app, ["db", "downgrade", "base"], input="n\n")
    assert declined.exit_code == 2 and "Drop them?" in declined.output and "nothing dropped" in declined.output
    assert table_digests(engine, skip=()) == before
    agreed = runner.invoke(app, ["db", "downgrade", "base"], input="y\n")
    assert agreed.exit_code == 0, agreed.output
    assert "(empty database)" in runner.invoke(app, ["db", "current"]).stdout
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert f"current: {head_revision()}" in runner.invoke(app, ["db", "current"]).stdout
    engine.dispose()


def test_unreachable_database_is_one_clear_error(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from cli.main import app

    monkeypatch.setenv("INTEROP_DATABASE_URL", "postgresql://bob:pw@127.0.0.1:1/none")
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    assert "cannot reach the database" in result.output and "pw@" not in result.output


def test_the_console_script_starts_without_importing_torch_or_tensorflow() -> None:
    code = "import sys, cli.main; print(any(m in sys.modules for m in ('torch', 'tensorflow')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
