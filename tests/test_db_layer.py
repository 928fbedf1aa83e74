"""Engine conventions: SQLite pragmas, UTC timestamps, portable JSON, and the ingest_run record."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.engine import make_engine, mask_url, normalize_url
from db.ingest import close_abandoned_runs, recorded_run
from db.models import IngestRun, RunStatus
from db.queries.overview import miner_freshness


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    eng = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with eng.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
    eng.dispose()


def test_postgres_urls_go_through_psycopg3() -> None:
    assert normalize_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert mask_url("postgresql://u:s3cret@h/db") == "postgresql+psycopg://u:***@h/db"
    assert "s3cret" not in mask_url("postgresql+psycopg://u:s3cret@h:5432/db")


def test_timestamps_come_back_timezone_aware_utc_and_json_round_trips(engine: Engine) -> None:
    started = datetime(2024, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    payload = {"labels": ["module: onnx"], "nested": {"n": 1, "ok": True}, "unicode": "κ"}
    with Session(engine) as s:
        s.add(IngestRun(kind="test", parameters=payload, started_at=started))
        s.commit()
    with Session(engine) as s:
        row = s.exec(select(IngestRun)).one()
    assert row.started_at == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    assert row.started_at.tzinfo is not None
    assert row.parameters == payload


def test_naive_timestamps_are_refused(engine: Engine) -> None:
    with Session(engine) as s, pytest.raises(Exception, match="naive datetime"):
        s.add(IngestRun(kind="test", started_at=datetime(2024, 1, 1)))
        s.commit()


def test_recorded_run_marks_ok_failed_and_interrupted(engine: Engine) -> None:
    with recorded_run(engine, "demo", {"n": 1}) as log:
        log.add("items", 3)
    with pytest.raises(ValueError), recorded_run(engine, "demo") as log:
        raise ValueError("bad row 7:\n  field 'x'")
    with pytest.raises(KeyboardInterrupt), recorded_run(engine, "demo"):
        raise KeyboardInterrupt
    with Session(engine) as s:
        rows = s.exec(select(IngestRun).order_by(IngestRun.id)).all()
    assert [r.status for r in rows] == [RunStatus.ok, RunStatus.failed, RunStatus.interrupted]
    assert rows[0].counts == {"items": 3} and rows[0].parameters == {"n": 1}
    assert rows[1].error == "ValueError: bad row 7: field 'x'"
    assert all(r.finished_at and r.finished_at >= r.started_at for r in rows)


_HOLD_A_RUN = """
import signal, sys, time
from cli.main import _terminated
from db.engine import make_engine
from db.ingest import recorded_run
signal.signal(signal.SIGTERM, _terminated)
with recorded_run(make_engine(sys.argv[1]), "held") as log:
    print(log.id, flush=True)
    time.sleep(60)
"""


def _hold_a_run(db_url: str) -> tuple[subprocess.Popen[str], int]:
    """A separate process that opens a recorded run and waits; returns it and the run's id."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD_A_RUN, db_url],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    line = proc.stdout.readline() if proc.stdout else ""
    assert line.strip().isdigit(), f"the helper process did not start a run (exit {proc.poll()})"
    return proc, int(line)


def test_a_run_of_a_killed_process_is_closed_as_abandoned(engine: Engine, db_url: str) -> None:
    proc, run_id = _hold_a_run(db_url)
    assert close_abandoned_runs(engine) == []  # its process is alive: left running
    proc.kill()
    proc.wait(timeout=30)
    with Session(engine) as s:
        assert s.get(IngestRun, run_id).status == RunStatus.running  # type: ignore[union-attr]
    with recorded_run(engine, "next"):  # the next recorded run closes it
        pass
    with Session(engine) as s:
        row = s.get(IngestRun, run_id)
    assert row is not None and row.status == RunStatus.abandoned
    assert row.error and f"process {proc.pid}" in row.error and "ended without closing" in row.error
    assert close_abandoned_runs(engine) == []
    held = miner_freshness(engine).set_index("kind").loc["held"]  # the Overview shows it as the last failure
    assert held["running"] == 0 and "ended without closing" in held["last_error"]
    assert held["last_failure_at"] == pd.Timestamp(row.started_at)


def test_sigterm_closes_the_run_as_interrupted(engine: Engine, db_url: str) -> None:
    proc, run_id = _hold_a_run(db_url)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) != 0
    with Session(engine) as s:
        row = s.get(IngestRun, run_id)
    assert row is not None and row.status == RunStatus.interrupted
    assert row.error == "terminated by signal SIGTERM" and row.finished_at is not None
