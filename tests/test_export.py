"""`interop export`: whole tables and one query, as CSV, Parquet and SQLite, round-tripped (both backends)."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from db.export import export_query, export_tables, table_names
from tests.support.seed import seed_github


def _db_counts(engine: Engine) -> dict[str, int]:
    from sqlmodel import SQLModel

    out = {}
    with Session(engine) as s:
        for name in table_names(engine):
            if name == "alembic_version":
                continue
            table = SQLModel.metadata.tables[name]
            out[name] = s.exec(select(func.count()).select_from(table)).one()[0]  # type: ignore[call-overload]
    return out


def test_parquet_round_trip_keeps_counts_and_types(engine: Engine, db_url: str, tmp_path: Path) -> None:
    seeded = seed_github(engine, 12)
    done = export_tables(db_url, tmp_path, "parquet", chunk=5)  # several chunks per table
    expected = _db_counts(engine)
    assert {d.name: d.rows for d in done} == expected
    assert "alembic_version" not in expected
    for name, rows in expected.items():
        assert pq.read_metadata(tmp_path / f"{name}.parquet").num_rows == rows
    issues = pq.read_table(tmp_path / "issue.parquet")
    schema = issues.schema
    assert schema.field("number").type == pa.int64()
    assert schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("hydrated").type == pa.bool_()
    assert schema.field("labels").type == pa.string()
    frame = issues.to_pandas()
    assert frame["number"].is_unique and len(frame) == seeded.issues
    assert json.loads(frame["labels"].iloc[0]) == ["module: onnx"]
    assert frame["closed_at"].isna().sum() == seeded.issues - seeded.closed_issues
    assert str(frame["created_at"].min()) == "2023-01-08 00:00:00+00:00"
    assert not list(tmp_path.glob("*.partial"))


def test_csv_round_trip(engine: Engine, db_url: str, tmp_path: Path) -> None:
    seeded = seed_github(engine, 9)
    export_tables(db_url, tmp_path / "out", "csv", tables=["issue", "repository"], chunk=4)
    tmp_path = tmp_path / "out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["issue.csv", "repository.csv"]
    frame = pd.read_csv(tmp_path / "issue.csv")
    assert len(frame) == seeded.issues
    assert str(frame["number"].dtype) == "int64"
    assert frame["state"].value_counts()["closed"] == seeded.closed_issues
    assert pd.to_datetime(frame["created_at"], utc=True).min() == pd.Timestamp("2023-01-08", tz="UTC")
    assert len(pd.read_csv(tmp_path / "repository.csv")) == seeded.repositories


def test_sqlite_export_holds_every_table(engine: Engine, db_url: str, tmp_path: Path) -> None:
    seed_github(engine, 6)
    done = export_tables(db_url, tmp_path, "sqlite")
    target = tmp_path / "interop-export.sqlite"
    assert {d.path for d in done} == {target}
    with sqlite3.connect(target) as conn:
        for name, rows in _db_counts(engine).items():
            assert conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] == rows
        types = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(issue)")}
        assert types["number"] == "INTEGER" and types["created_at"] == "TIMESTAMP"
        as_sqlite = [r[0] for r in conn.execute("SELECT created_at FROM issue ORDER BY id")]
    assert as_sqlite[0].startswith("2023-01-08")
    export_tables(db_url, tmp_path / "csv", "csv", ["issue"])
    with (tmp_path / "csv" / "issue.csv").open(newline="") as handle:
        as_csv = [row["created_at"] for row in csv.DictReader(handle)]
    assert as_sqlite == as_csv, "both exports write the same timestamp text"
    assert as_sqlite[0].endswith("Z") and " " in as_sqlite[0]


def test_export_query_is_read_only_and_uncapped(engine: Engine, reader_url: str, tmp_path: Path) -> None:
    seeded = seed_github(engine, 20)
    sql = "SELECT i.number, i.state, r.full_name FROM issue i JOIN repository r ON r.id = i.repository_id"
    for fmt in ("parquet", "csv", "sqlite"):
        done = export_query(reader_url, sql, tmp_path, fmt, name="closed", chunk=7)
        assert done.rows == seeded.issues
    table = pq.read_table(tmp_path / "closed.parquet")
    assert table.num_rows == seeded.issues and table.schema.field("number").type == pa.int64()
    assert len(pd.read_csv(tmp_path / "closed.csv")) == seeded.issues
    with sqlite3.connect(tmp_path / "closed.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM closed").fetchone()[0] == seeded.issues


def test_cli_export_and_its_errors(cli, configured_reader: str, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seeded = seed_github(engine, 4)
    ok = cli("export", "--format", "parquet", "--tables", "issue,repository", "--out", str(tmp_path / "a"))
    assert ok.exit_code == 0, ok.output
    assert f"issue: {seeded.issues} rows" in ok.output
    bad = cli("export", "--tables", "issue,nosuch", "--out", str(tmp_path / "b"))
    assert bad.exit_code == 2 and "no such table: nosuch" in bad.output
    assert not (tmp_path / "b").exists(), "a failed export takes away the folder it created"
    (tmp_path / "kept").mkdir()
    assert cli("export", "--tables", "nosuch", "--out", str(tmp_path / "kept")).exit_code == 2
    assert (tmp_path / "kept").is_dir(), "but leaves a folder that was already there"
    fmt = cli("export", "--format", "xlsx", "--out", str(tmp_path / "c"))
    assert fmt.exit_code == 2 and "unknown --format 'xlsx'" in fmt.output
    q = cli("export", "query", "SELECT number FROM issue", "--format", "csv", "--out", str(tmp_path / "q"))
    assert q.exit_code == 0, q.output
    assert len(pd.read_csv(tmp_path / "q" / "query.csv")) == seeded.issues


@pytest.mark.parametrize("sql", ["DELETE FROM issue", "SELECT 1; DROP TABLE issue", "UPDATE issue SET title = ''"])
def test_cli_export_query_refuses_writes(cli, configured_reader: str, engine: Engine, tmp_path: Path, sql: str) -> None:  # type: ignore[no-untyped-def]
    seeded = seed_github(engine, 3)
    result = cli("export", "query", sql, "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "refused" in result.output
    assert not (tmp_path / "out").exists()
    with Session(engine) as s:
        from db.models import Issue

        assert s.exec(select(func.count()).select_from(Issue)).one()[0] == seeded.issues  # type: ignore[call-overload]


def test_cli_export_query_stops_long_queries(cli, configured_reader: str, tmp_path: Path, backend: str) -> None:  # type: ignore[no-untyped-def]
    endless = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
        if backend == "sqlite"
        else "SELECT pg_sleep(30)"
    )
    result = cli("export", "query", endless, "--timeout", "1", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "longer than 1 s" in result.output
    assert not (tmp_path / "out").exists(), "no empty --out folder is left behind"


def test_console_downloads_of_json_and_time_columns(engine: Engine, reader_url: str) -> None:
    """The SQL console's CSV/Parquet downloads keep JSON values (dicts on PostgreSQL, text on SQLite) and times."""
    import io

    from db.export import frame_to_bytes
    from db.readonly import run_read_only

    seeded = seed_github(engine, 3)
    result = run_read_only(
        reader_url, "SELECT number, labels, counts, started_at FROM issue, ingest_run ORDER BY number"
    )
    assert result.row_count == seeded.issues * seeded.ingest_runs
    table = pq.read_table(io.BytesIO(frame_to_bytes(result.frame, "parquet")))
    assert table.num_rows == result.row_count
    assert table.schema.field("number").type == pa.int64()
    first = table.column("labels").to_pylist()[0]
    assert json.loads(first) == ["module: onnx"]
    csv = pd.read_csv(io.BytesIO(frame_to_bytes(result.frame, "csv")))
    assert len(csv) == result.row_count and set(csv.columns) == {"number", "labels", "counts", "started_at"}
