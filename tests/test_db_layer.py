"""Engine conventions: SQLite pragmas, UTC timestamps, portable JSON, and the ingest_run record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.engine import make_engine, mask_url, normalize_url
from db.ingest import recorded_run
from db.models import IngestRun, RunStatus


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
