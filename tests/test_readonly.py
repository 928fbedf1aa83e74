"""The read-only query runner: refusals with the true reason, one statement, limits, row caps (both backends)."""

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
from db.sqlguard import Statement, check_read_only
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
def test_writes_are_refused_with_a_clear_message(kind: str, engine: Engine, reader_url: str, tmp_path: Path) -> None:
    seed_github(engine, 5)
    before = _counts(engine)
    with pytest.raises(ReadOnlyViolation, match="refused"):
        run_read_only(reader_url, WRITES[kind].format(tmp=tmp_path))
    assert _counts(engine) == before
    assert not (tmp_path / "other.db").exists()


@pytest.mark.parametrize("kind", ["insert", "update", "delete", "drop", "create", "multiple", "cte-write"])
@pytest.mark.parametrize("as_kind", ["query", "unparsed"])
def test_the_database_itself_refuses_writes_the_check_would_let_pass(
    kind: str, as_kind: str, engine: Engine, reader_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last word: with the parser's check switched off, the connection (reader role, read-only
    transaction, one statement through the extended protocol or SQLite's read-only open) still refuses."""
    import db.readonly

    seed_github(engine, 5)
    before = _counts(engine)
    monkeypatch.setattr(db.readonly, "check_read_only", lambda sql, dialect: Statement(sql, as_kind))
    with pytest.raises((ReadOnlyViolation, QueryError)), read_only_rows(reader_url, WRITES[kind]) as stream:
        list(stream.batches)
    assert _counts(engine) == before


def test_sqlite_attach_and_pragma_writes_refused_by_the_connection(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ATTACH and PRAGMA are SQLite statements: this runs once, on a copy of the migrated SQLite template."""
    import db.readonly
    from tests.support.databases import copy_sqlite

    db_url = copy_sqlite(sqlite_template, tmp_path / "ro.db")

    monkeypatch.setattr(db.readonly, "check_read_only", lambda sql, dialect: Statement(sql, "unparsed"))
    for sql in (f"ATTACH DATABASE '{tmp_path}/x.db' AS x", "PRAGMA user_version = 3", "PRAGMA query_only = 0"):
        with pytest.raises(ReadOnlyViolation, match="not authorized"), read_only_rows(db_url, sql) as stream:
            list(stream.batches)
    with (
        pytest.raises(ReadOnlyViolation, match="one statement at a time"),
        read_only_rows(db_url, "SELECT 1; DELETE FROM issue") as stream,
    ):
        list(stream.batches)
    assert not (tmp_path / "x.db").exists()
    assert run_read_only(db_url, "PRAGMA user_version").frame.iloc[0, 0] == 0


def test_reading_statements_pass(engine: Engine, reader_url: str, backend: str) -> None:
    seeded = seed_github(engine, 5)
    per_repo = (
        "SELECT r.full_name, count(*) AS n FROM issue i "
        "JOIN repository r ON r.id = i.repository_id GROUP BY r.full_name ORDER BY 1;"
    )
    result = run_read_only(reader_url, per_repo)
    assert dict(zip(result.frame["full_name"], result.frame["n"], strict=True)) == seeded.per_repo
    explain = "EXPLAIN QUERY PLAN SELECT * FROM issue" if backend == "sqlite" else "EXPLAIN SELECT * FROM issue"
    assert run_read_only(reader_url, explain).row_count >= 1
    # words that look like writes inside strings, quoted names and functions are fine
    tricky = "SELECT 'DROP TABLE x; DELETE' AS s, replace(title, 'a', 'b') AS t, updated_at FROM issue"
    ok = run_read_only(reader_url, tricky)
    assert ok.row_count == seeded.issues and ok.frame["s"].iloc[0] == "DROP TABLE x; DELETE"
    # a leading comment no longer changes how the statement is sent (nor how many rows are held)
    commented = run_read_only(reader_url, "/* per state */ SELECT state, count(*) AS n FROM issue GROUP BY state")
    assert commented.frame["n"].sum() == seeded.issues


def test_long_query_is_stopped(reader_url: str, backend: str) -> None:
    endless = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
        if backend == "sqlite"
        else "SELECT count(*) FROM generate_series(1, 1000000000) a"
    )
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match="longer than 1 s"):
        run_read_only(reader_url, endless, timeout_s=1)
    assert time.monotonic() - started < 3
    if backend == "postgresql":
        with pytest.raises(QueryTimeout):
            run_read_only(reader_url, "SELECT pg_sleep(10)", timeout_s=0.5)
    # the next query runs normally
    assert run_read_only(reader_url, "SELECT 1 AS one").frame["one"].tolist() == [1]


def test_row_cap_and_truncated_flag(engine: Engine, reader_url: str) -> None:
    seeded = seed_github(engine, 20)
    capped = run_read_only(reader_url, "SELECT * FROM issue ORDER BY id", row_cap=7)
    assert capped.truncated and capped.row_count == 7
    assert capped.frame["number"].tolist() == sorted(capped.frame["number"].tolist())
    exact = run_read_only(reader_url, "SELECT * FROM issue", row_cap=seeded.issues)
    assert not exact.truncated and exact.row_count == seeded.issues
    whole = run_read_only(reader_url, "SELECT * FROM issue", row_cap=None)
    assert not whole.truncated and whole.row_count == seeded.issues
    streamed = []
    with read_only_rows(reader_url, "SELECT id FROM issue ORDER BY id", batch=3) as stream:
        streamed = [len(chunk) for chunk in stream.batches]
    assert sum(streamed) == seeded.issues and max(streamed) == 3


def test_errors_are_one_line_and_carry_no_password(reader_url: str) -> None:
    with pytest.raises(QueryError, match="nosuch"):
        run_read_only(reader_url, "SELECT * FROM nosuch")
    password = normalize_url(reader_url).password
    try:
        run_read_only(reader_url, "SELECT * FROM nosuch")
    except QueryError as exc:
        assert "\n" not in str(exc)
        assert not password or str(password) not in str(exc)


def test_duplicate_column_names_are_made_unique(reader_url: str) -> None:
    assert list(run_read_only(reader_url, "SELECT 1 AS a, 2 AS a").frame.columns) == ["a", "a_2"]


# --- the parser's early refusals (no database) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "dialect", "reason"),
    [
        ("SELECT 1; SELECT 2", "sqlite", "2 statements given"),
        ("/**/SELECT e'\\''; COMMIT; DELETE FROM t; --'", "postgres", r"3 statements given \(SELECT …; COMMIT …"),
        ("EXPLAIN SELECT e'\\''; COMMIT; DELETE FROM t; --'", "postgres", "3 statements given"),
        ("REPLACE INTO issue (id) VALUES (1)", "sqlite", "REPLACE writes to the database"),
        ("SELECT * INTO copy FROM issue", "postgres", r"SELECT … INTO creates a table"),
        ("VACUUM", "sqlite", "VACUUM rewrites the database"),
        ("VACUUM INTO '/tmp/x.db'", "sqlite", "VACUUM INTO writes a copy"),
        ("BEGIN", "postgres", "BEGIN controls transactions"),
        ("COMMIT", "postgres", "COMMIT controls transactions"),
        ("SET statement_timeout = 0", "postgres", "SET changes the session"),
        ("SET ROLE postgres", "postgres", "SET changes the session"),
        ("SELECT 1 FOR UPDATE", "postgres", "FOR UPDATE/SHARE locks rows"),
        ("PRAGMA journal_mode=DELETE", "sqlite", r"PRAGMA journal_mode = … changes a setting"),
        ("PRAGMA journal_mode(DELETE)", "sqlite", r"PRAGMA journal_mode\(…\) changes a setting"),
        ("SELECT set_config('default_transaction_read_only', 'off', false)", "postgres", r"set_config\(\) changes"),
        ("SELECT pg_catalog.set_config('statement_timeout', '0', false)", "postgres", r"set_config\(\) changes"),
        ("SELECT \"pg_read_file\"('/etc/hostname')", "postgres", r"pg_read_file\(\) reads or writes files"),
        ("SELECT ARRAY[lo_import('/etc/hostname')]", "postgres", r"lo_import\(\) reads or writes files"),
        ("SELECT nextval('issue_id_seq')", "postgres", r"nextval\(\) advances a sequence"),
        ("SELECT pg_advisory_lock(1)", "postgres", "advisory lock"),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "postgres", "DELETE inside the query writes"),
        ("EXPLAIN ANALYZE DELETE FROM t", "postgres", "EXPLAIN ANALYZE DELETE …: DELETE writes to the database"),
        ("DO $$BEGIN DELETE FROM t; END$$", "postgres", "DO changes the session or runs code"),
        ("COPY (SELECT 1) TO PROGRAM 'id'", "postgres", "COPY reads or writes files"),
        ("ATTACH DATABASE 'x.db' AS x", "sqlite", "ATTACH opens another database file"),
        ("SHOW tables", "sqlite", "SHOW statements are not allowed"),
        ("PRAGMA user_version", "postgres", "PRAGMA statements are not allowed"),
        ("", "sqlite", "no SQL statement given"),
        ("-- nothing but a comment", "postgres", "no SQL statement given"),
        ("LISTEN channel", "postgres", "LISTEN changes the session"),
    ],
)
def test_parser_refusals_give_the_true_reason(sql: str, dialect: str, reason: str) -> None:
    with pytest.raises(ReadOnlyViolation, match=f"^refused: .*{reason}"):
        check_read_only(sql, dialect)


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_parser_keeps_one_statement_without_trailing_semicolon_or_comment(dialect: str) -> None:
    assert check_read_only("SELECT 1;  -- done", dialect) == Statement("SELECT 1", "query")
    assert check_read_only('SELECT "delete" FROM t', dialect).text == 'SELECT "delete" FROM t'
    assert check_read_only("/* why */ SELECT 1 AS merge", dialect) == Statement("SELECT 1 AS merge", "query")
    # statement keywords are ordinary names inside a query
    assert check_read_only("SELECT release, comment, load FROM t", dialect).kind == "query"
    assert check_read_only("(SELECT 1) UNION ALL (SELECT 2)", dialect).kind == "query"
    assert check_read_only("VALUES (1), (2)", dialect).kind == "query"


def test_parser_statement_kinds_per_dialect() -> None:
    assert check_read_only("PRAGMA table_info(issue)", "sqlite") == Statement("PRAGMA table_info(issue)", "pragma")
    assert check_read_only("EXPLAIN QUERY PLAN SELECT 1", "sqlite").kind == "explain"
    assert check_read_only("EXPLAIN (ANALYZE, FORMAT JSON) SELECT 1;", "postgres") == Statement(
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT 1", "explain"
    )
    assert check_read_only("SHOW statement_timeout", "postgres").kind == "show"
    assert check_read_only("TABLE issue", "postgres").kind == "query"
    assert check_read_only("SELECT $a$x;y$a$ AS s, e'it''s' AS t", "postgres").text == (
        "SELECT $a$x;y$a$ AS s, e'it''s' AS t"
    )


def test_text_the_parser_cannot_read_goes_to_the_server_as_one_statement() -> None:
    """A parse failure opens no hole: the text is sent whole as one statement, and the server judges it."""
    assert check_read_only("select 'unterminated", "postgres") == Statement("select 'unterminated", "unparsed")
    odd = check_read_only("SELECT * FROM t WINDOW w AS (ORDER BY a) QUALIFY", "postgres")
    assert odd.kind in ("unparsed", "query")
