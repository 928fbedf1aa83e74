"""The read-only query runner: refuses every kind of write, stops long queries, caps rows (both backends)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from db.engine import normalize_url
from db.models import Issue, Repository
from db.readonly import QueryError, QueryTimeout, ReadOnlyViolation, read_only_rows, run_read_only
from db.sqlguard import check_read_only
from tests.support.seed import seed_github

WRITES = {
    "insert": "INSERT INTO repository (full_name, first_seen_at) VALUES ('x/y', '2024-01-01')",
    "update": "UPDATE issue SET title = 'changed'",
    "delete": "DELETE FROM issue",
    "drop": "DROP TABLE issue",
    "attach": "ATTACH DATABASE '{tmp}/other.db' AS other",
    "pragma": "PRAGMA user_version = 7",
    "multiple": "SELECT 1; DELETE FROM issue",
    "cte-write": "WITH gone AS (DELETE FROM issue RETURNING id) SELECT count(*) FROM gone",
    "create": "CREATE TABLE t AS SELECT * FROM issue",
}


def _counts(engine: Engine) -> tuple[int, int, str]:
    with Session(engine) as s:
        issues = s.exec(select(func.count()).select_from(Issue)).one()[0]  # type: ignore[call-overload]
        repos = s.exec(select(func.count()).select_from(Repository)).one()[0]  # type: ignore[call-overload]
        title = s.exec(select(Issue.title).order_by(Issue.id).limit(1)).one()[0]  # type: ignore[call-overload]
    return issues, repos, title


@pytest.mark.parametrize("kind", sorted(WRITES))
def test_writes_are_refused_with_a_clear_message(kind: str, engine: Engine, db_url: str, tmp_path: Path) -> None:
    seed_github(engine, 5)
    before = _counts(engine)
    with pytest.raises(ReadOnlyViolation, match="refused"):
        run_read_only(db_url, WRITES[kind].format(tmp=tmp_path))
    assert _counts(engine) == before
    assert not (tmp_path / "other.db").exists()


@pytest.mark.parametrize("kind", ["insert", "update", "delete", "drop", "create"])
def test_the_database_itself_refuses_writes_that_pass_the_static_check(
    kind: str, engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Second layer: with the static check switched off, the read-only connection still refuses."""
    import db.readonly

    seed_github(engine, 5)
    before = _counts(engine)
    monkeypatch.setattr(db.readonly, "check_read_only", lambda sql: sql)
    with pytest.raises(ReadOnlyViolation, match="refused by the database"), read_only_rows(db_url, WRITES[kind]) as s:
        list(s.batches)
    assert _counts(engine) == before


def test_sqlite_attach_and_pragma_writes_refused_by_the_connection(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ATTACH and PRAGMA are SQLite statements: this runs once, on a copy of the migrated SQLite template."""
    import db.readonly
    from tests.support.databases import copy_sqlite

    db_url = copy_sqlite(sqlite_template, tmp_path / "ro.db")

    monkeypatch.setattr(db.readonly, "check_read_only", lambda sql: sql)
    for sql in (f"ATTACH DATABASE '{tmp_path}/x.db' AS x", "PRAGMA user_version = 3", "PRAGMA query_only = 0"):
        with pytest.raises(ReadOnlyViolation, match="not authorized"), read_only_rows(db_url, sql) as stream:
            list(stream.batches)
    assert not (tmp_path / "x.db").exists()
    assert run_read_only(db_url, "PRAGMA user_version").frame.iloc[0, 0] == 0


def test_reading_statements_pass(engine: Engine, db_url: str, backend: str) -> None:
    seeded = seed_github(engine, 5)
    per_repo = (
        "SELECT r.full_name, count(*) AS n FROM issue i "
        "JOIN repository r ON r.id = i.repository_id GROUP BY r.full_name ORDER BY 1;"
    )
    result = run_read_only(db_url, per_repo)
    assert dict(zip(result.frame["full_name"], result.frame["n"], strict=True)) == seeded.per_repo
    explain = "EXPLAIN QUERY PLAN SELECT * FROM issue" if backend == "sqlite" else "EXPLAIN SELECT * FROM issue"
    assert run_read_only(db_url, explain).row_count >= 1
    # words that look like writes inside strings, quoted names and functions are fine
    tricky = "SELECT 'DROP TABLE x; DELETE' AS s, replace(title, 'a', 'b') AS t, updated_at FROM issue"
    ok = run_read_only(db_url, tricky)
    assert ok.row_count == seeded.issues and ok.frame["s"].iloc[0] == "DROP TABLE x; DELETE"


def test_long_query_is_stopped(db_url: str, backend: str) -> None:
    endless = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
        if backend == "sqlite"
        else "SELECT count(*) FROM generate_series(1, 1000000000) a"
    )
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match="longer than 1 s"):
        run_read_only(db_url, endless, timeout_s=1)
    assert time.monotonic() - started < 6
    if backend == "postgresql":
        with pytest.raises(QueryTimeout):
            run_read_only(db_url, "SELECT pg_sleep(10)", timeout_s=0.5)
    # the connection is usable again afterwards
    assert run_read_only(db_url, "SELECT 1 AS one").frame["one"].tolist() == [1]


def test_row_cap_and_truncated_flag(engine: Engine, db_url: str) -> None:
    seeded = seed_github(engine, 20)
    capped = run_read_only(db_url, "SELECT * FROM issue ORDER BY id", row_cap=7)
    assert capped.truncated and capped.row_count == 7
    assert capped.frame["number"].tolist() == sorted(capped.frame["number"].tolist())
    exact = run_read_only(db_url, "SELECT * FROM issue", row_cap=seeded.issues)
    assert not exact.truncated and exact.row_count == seeded.issues
    whole = run_read_only(db_url, "SELECT * FROM issue", row_cap=None)
    assert not whole.truncated and whole.row_count == seeded.issues


def test_errors_are_one_line_and_carry_no_password(db_url: str) -> None:
    with pytest.raises(QueryError, match="nosuch"):
        run_read_only(db_url, "SELECT * FROM nosuch")
    password = normalize_url(db_url).password
    try:
        run_read_only(db_url, "SELECT * FROM nosuch")
    except QueryError as exc:
        assert "\n" not in str(exc)
        assert not password or str(password) not in str(exc)


def test_duplicate_column_names_are_made_unique(db_url: str) -> None:
    assert list(run_read_only(db_url, "SELECT 1 AS a, 2 AS a").frame.columns) == ["a", "a_2"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; SELECT 2",
        "select 'unterminated",
        "REPLACE INTO issue (id) VALUES (1)",
        "SELECT * INTO copy FROM issue",
        "VACUUM",
        "BEGIN",
        "COMMIT",
        "SET statement_timeout = 0",
        "SELECT 1 FOR UPDATE",
        "PRAGMA journal_mode(DELETE)",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "",
        "-- nothing but a comment",
    ],
)
def test_static_check_refusals(sql: str) -> None:
    with pytest.raises(ReadOnlyViolation, match="refused"):
        check_read_only(sql)


def test_static_check_keeps_one_statement_without_trailing_semicolon_or_comment() -> None:
    assert check_read_only("SELECT 1;  -- done") == "SELECT 1"
    assert check_read_only("PRAGMA table_info(issue)") == "PRAGMA table_info(issue)"
    assert check_read_only('SELECT "delete" FROM t') == 'SELECT "delete" FROM t'
    # statement keywords are ordinary names inside a query
    assert check_read_only("SELECT release, comment, load FROM t") == "SELECT release, comment, load FROM t"
