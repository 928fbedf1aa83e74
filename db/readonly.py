"""Run user SQL safely: SQLite opened read-only, PostgreSQL in a READ ONLY transaction, both time-limited.

Three layers refuse writes: a static check with a clear message (db.sqlguard), the connection itself
(SQLite `mode=ro` + `query_only` + an authorizer; PostgreSQL `BEGIN READ ONLY`), and a time limit
(SQLite progress handler; PostgreSQL `statement_timeout` plus a client-side deadline between fetches).
"""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import URL

from db.engine import normalize_url
from db.sqlguard import READ_PRAGMAS, ReadOnlyViolation, check_read_only

DEFAULT_ROW_CAP = 10_000
DEFAULT_TIMEOUT_S = 15.0
FETCH_SIZE = 5_000

__all__ = [
    "DEFAULT_ROW_CAP",
    "DEFAULT_TIMEOUT_S",
    "QueryError",
    "QueryResult",
    "QueryTimeout",
    "ReadOnlyViolation",
    "read_only_rows",
    "run_read_only",
]


class QueryTimeout(Exception):
    """The query ran past its time limit and was stopped."""


class QueryError(Exception):
    """The database rejected the query (syntax, unknown table, …); one line, no secrets."""


@dataclass(frozen=True)
class QueryResult:
    """What the console shows: the rows (at most `row_cap`), whether more existed, and how long it took."""

    frame: pd.DataFrame
    truncated: bool
    row_cap: int | None
    elapsed_s: float
    sql: str

    @property
    def row_count(self) -> int:
        return len(self.frame)


@dataclass
class RowStream:
    """Column names and an iterator of row batches of one running read-only query."""

    columns: list[str]
    batches: Iterator[list[tuple[Any, ...]]]


def unique_columns(names: list[str]) -> list[str]:
    """`id, id` → `id, id_2`: CSV/Parquet/SQLite exports need distinct column names."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        base = name or "column"
        count = seen.get(base, 0) + 1
        seen[base] = count
        out.append(base if count == 1 else f"{base}_{count}")
    return out


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:500]


# --- SQLite --------------------------------------------------------------------------------------------

_SQLITE_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
_SQLITE_DENIED_FUNCTIONS = {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}


def _sqlite_authorizer(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
    """Allow reading only; PRAGMAs only without a value (or the table-describing ones)."""
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _SQLITE_DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    if action in _SQLITE_ALLOWED:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg2 is None or (arg1 or "").upper() in READ_PRAGMAS):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def sqlite_path(url: URL) -> Path:
    """The database file of a SQLite URL (read-only access needs an existing file)."""
    if not url.database or url.database == ":memory:":
        raise QueryError("an in-memory SQLite database cannot be opened read-only; use a file")
    path = Path(url.database).expanduser().resolve()
    if not path.exists():
        raise QueryError(f"no SQLite database at {path}: run `interop db upgrade` first")
    return path


def open_sqlite_read_only(url: URL, timeout_s: float | None) -> tuple[sqlite3.Connection, list[float]]:
    """A `mode=ro` connection with query_only, the authorizer, and a deadline the progress handler checks."""
    uri = f"file:{urllib.parse.quote(str(sqlite_path(url)))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA query_only=ON")
    conn.set_authorizer(_sqlite_authorizer)
    deadline = [float("inf")]
    if timeout_s:
        conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline[0] else 0, 2_000)
    return conn, deadline


@contextmanager
def _sqlite_stream(url: URL, sql: str, timeout_s: float | None, batch: int) -> Iterator[RowStream]:
    conn, deadline = open_sqlite_read_only(url, timeout_s)
    try:
        if timeout_s:
            deadline[0] = time.monotonic() + timeout_s
        try:
            cur = conn.execute(sql)
        except sqlite3.Error as exc:
            raise _sqlite_error(exc, timeout_s) from None
        columns = [d[0] for d in cur.description or []]

        def batches() -> Iterator[list[tuple[Any, ...]]]:
            while True:
                try:
                    rows = cur.fetchmany(batch)
                except sqlite3.Error as exc:
                    raise _sqlite_error(exc, timeout_s) from None
                if not rows:
                    return
                yield rows

        yield RowStream(columns, batches())
    finally:
        conn.close()


def _sqlite_error(exc: sqlite3.Error, timeout_s: float | None) -> Exception:
    message = _one_line(exc)
    if "interrupted" in message:
        return QueryTimeout(f"stopped: the query ran longer than {timeout_s:g} s")
    if "not authorized" in message or "readonly" in message or "read-only" in message:
        return ReadOnlyViolation(f"refused by the database: {message} (the console is read-only)")
    return QueryError(message)


# --- PostgreSQL ----------------------------------------------------------------------------------------


def _pg_conninfo(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def _pg_stream(url: URL, sql: str, timeout_s: float | None, batch: int) -> Iterator[RowStream]:
    import psycopg

    try:
        conn = psycopg.connect(_pg_conninfo(url), connect_timeout=10, application_name="interop-readonly")
    except psycopg.Error as exc:
        raise QueryError(f"cannot connect: {_one_line(exc)}") from None
    conn.read_only = True
    deadline = time.monotonic() + timeout_s if timeout_s else float("inf")
    try:
        try:
            with conn.cursor() as setup:
                setup.execute(f"SET statement_timeout = {int((timeout_s or 0) * 1000)}")
                setup.execute("SET lock_timeout = 5000")
            first_word = sql.lstrip("( \n\t").split(None, 1)[0].upper() if sql.strip() else ""
            server_side = first_word in ("SELECT", "WITH", "VALUES", "TABLE")
            cur = conn.cursor(name="interop_ro", withhold=False) if server_side else conn.cursor()
            cur.execute(sql)  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise _pg_error(exc, timeout_s) from None
        columns = [d.name for d in cur.description or []]

        def batches() -> Iterator[list[tuple[Any, ...]]]:
            while True:
                if time.monotonic() > deadline:
                    raise QueryTimeout(f"stopped: the query ran longer than {timeout_s:g} s")
                try:
                    rows = cur.fetchmany(batch)
                except psycopg.Error as exc:
                    raise _pg_error(exc, timeout_s) from None
                if not rows:
                    return
                yield rows

        yield RowStream(columns, batches())
    finally:
        try:
            conn.rollback()
        finally:
            conn.close()


def _pg_error(exc: Exception, timeout_s: float | None) -> Exception:
    from psycopg import errors

    if isinstance(exc, errors.QueryCanceled):
        return QueryTimeout(f"stopped: the query ran longer than {timeout_s:g} s")
    if isinstance(exc, errors.ReadOnlySqlTransaction | errors.InsufficientPrivilege):
        return ReadOnlyViolation(f"refused by the database: {_one_line(exc)} (the console is read-only)")
    return QueryError(_one_line(exc))


# --- public API ----------------------------------------------------------------------------------------


@contextmanager
def read_only_rows(
    url: str | URL, sql: str, timeout_s: float | None = DEFAULT_TIMEOUT_S, batch: int = FETCH_SIZE
) -> Iterator[RowStream]:
    """Check and run one read-only statement; yields its columns and row batches (streamed, not capped)."""
    statement = check_read_only(sql)
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        streamer = _sqlite_stream(parsed, statement, timeout_s, batch)
    elif backend == "postgresql":
        streamer = _pg_stream(parsed, statement, timeout_s, batch)
    else:
        raise QueryError(f"read-only queries are supported on SQLite and PostgreSQL, not {backend}")
    with streamer as stream:
        yield stream


def run_read_only(
    url: str | URL, sql: str, row_cap: int | None = DEFAULT_ROW_CAP, timeout_s: float | None = DEFAULT_TIMEOUT_S
) -> QueryResult:
    """The console's entry point: at most `row_cap` rows, `truncated` when the query had more."""
    started = time.monotonic()
    rows: list[tuple[Any, ...]] = []
    truncated = False
    batch = min(FETCH_SIZE, row_cap + 1) if row_cap else FETCH_SIZE
    with read_only_rows(url, sql, timeout_s, batch) as stream:
        for chunk in stream.batches:
            rows.extend(chunk)
            if row_cap is not None and len(rows) > row_cap:
                truncated = True
                del rows[row_cap:]
                break
        columns = unique_columns(stream.columns)
    frame = pd.DataFrame.from_records(rows, columns=columns) if columns else pd.DataFrame()
    return QueryResult(frame, truncated, row_cap, time.monotonic() - started, sql)
