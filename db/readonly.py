"""Run user SQL so that the database, not a string check, is the last word.

- PostgreSQL: only as a reader role (db.reader says whether a role only reads; an owner, a superuser or a
  role with any write privilege is refused before the query is sent), in a READ ONLY transaction that is
  always rolled back, with exactly one statement sent through the extended protocol (a server-side cursor,
  or for EXPLAIN/SHOW a streamed prepared execute), so `…; COMMIT; …` is a syntax error on the server.
- SQLite: the file opened `mode=ro` with query_only and an authorizer, in a child process (db.sqlite_worker).
- Limits the query cannot lift: the deadline is enforced from outside the query (PostgreSQL statement_timeout
  in the connection options plus a client-side cancel; SQLite interrupt() plus killing the child), and rows
  are fetched in batches with the cap applied while fetching, so memory stays bounded on every path.
- db.sqlguard refuses early, with the true reason, what the database would refuse anyway.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import pickle
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd
from sqlalchemy.engine import URL

from db import sqlite_worker
from db.engine import mask_url, normalize_url
from db.errors import InteropError, first_line
from db.reader import pg_conninfo, reader_problems
from db.sqlguard import ReadOnlyViolation, Statement, check_read_only, dialect_of

DEFAULT_ROW_CAP = 10_000
DEFAULT_TIMEOUT_S = 15.0
FETCH_SIZE = 5_000
#: How long after the deadline a SQLite child that did not stop on interrupt() is killed.
KILL_GRACE_S = 0.25
#: The PostgreSQL lock wait (ms): a query waiting on a lock gives up instead of queueing behind writers.
LOCK_TIMEOUT_MS = 5_000
READER_SETTING = "INTEROP_READER_DATABASE_URL"
READER_HELP = (
    f"set {READER_SETTING} to a role that can only read (`interop db create-reader` makes one and prints the URL)"
)

__all__ = [
    "DEFAULT_ROW_CAP",
    "DEFAULT_TIMEOUT_S",
    "QueryError",
    "QueryResult",
    "QueryTimeout",
    "ReadOnlyViolation",
    "UnsafeReader",
    "console_url",
    "read_only_rows",
    "run_read_only",
]


class QueryTimeout(InteropError):
    """The query ran past its time limit and was stopped."""


class QueryError(InteropError):
    """The database rejected the query (syntax, unknown table, …); one line, no secrets."""


class UnsafeReader(QueryError):
    """No reader is configured, or the configured PostgreSQL role could do more than read: nothing is run."""


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


def console_url(database_url: str | None = None, reader_url: str | None = None) -> str:
    """The URL user SQL runs with: the reader when one is configured; on SQLite the store itself (opened
    read-only); on PostgreSQL without a reader, UnsafeReader saying how to set one up."""
    if database_url is None and reader_url is None:
        from db.config import get_settings

        settings = get_settings()
        database_url, reader_url = settings.database_url, settings.reader_database_url
    if reader_url:
        from sqlalchemy.exc import ArgumentError

        try:
            backend = normalize_url(reader_url).get_backend_name()
        except ArgumentError as exc:
            raise QueryError(f"{READER_SETTING} is not a usable database URL: {' '.join(str(exc).split())}") from None
        if backend not in ("sqlite", "postgresql"):
            raise QueryError(f"{READER_SETTING} must name a PostgreSQL (or SQLite) database, not {backend}")
        return reader_url
    assert database_url is not None
    if normalize_url(database_url).get_backend_name() == "sqlite":
        return database_url
    raise UnsafeReader(f"refused: the SQL console needs a read-only PostgreSQL role: {READER_HELP}")


def _timeout_message(timeout_s: float | None) -> str:
    return f"stopped: the query ran longer than {timeout_s:g} s" if timeout_s else "stopped: the query was cancelled"


# --- SQLite --------------------------------------------------------------------------------------------


def sqlite_path(url: URL) -> Path:
    """The database file of a SQLite URL (read-only access needs an existing file)."""
    if not url.database or url.database == ":memory:":
        raise QueryError("an in-memory SQLite database cannot be opened read-only; use a file")
    path = Path(url.database).expanduser().resolve()
    if not path.exists():
        raise QueryError(f"no SQLite database at {path}: run `interop db upgrade` first")
    return path


def _read_frame(pipe: IO[bytes]) -> tuple[Any, ...] | None:
    """One frame from the worker, or None when it ended (or was killed) before sending one."""
    header = pipe.read(8)
    if len(header) < 8:
        return None
    (size,) = struct.unpack(">Q", header)
    data = pipe.read(size)
    if len(data) < size:
        return None
    frame: tuple[Any, ...] = pickle.loads(data)  # from our own child: primitive values only
    return frame


def _sqlite_error(kind: str, message: str, timeout_s: float | None) -> Exception:
    if "interrupted" in message:
        return QueryTimeout(_timeout_message(timeout_s))
    if "one statement at a time" in message:
        return ReadOnlyViolation(f"refused by the database: {message} (the console runs exactly one statement)")
    if "not authorized" in message or "readonly" in message or "read-only" in message:
        return ReadOnlyViolation(f"refused by the database: {message} (the console only reads)")
    if kind == "open":
        return QueryError(f"cannot open the SQLite database read-only: {message}")
    return QueryError(message.splitlines()[0][:500] if message else kind)


@contextmanager
def _sqlite_stream(url: URL, statement: Statement, timeout_s: float | None, batch: int) -> Iterator[RowStream]:
    """Run the statement in a db.sqlite_worker child; kill it at the deadline (plus a short grace)."""
    path = sqlite_path(url)
    started = time.monotonic()
    deadline = started + timeout_s if timeout_s else None
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", sqlite_worker.__file__],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        proc.kill()

    killer = threading.Timer(timeout_s + KILL_GRACE_S, kill) if timeout_s else None
    assert proc.stdin is not None and proc.stdout is not None
    try:
        if killer:
            killer.daemon = True
            killer.start()
        request = {"path": str(path), "sql": statement.text, "timeout_s": timeout_s, "batch": batch}
        with contextlib.suppress(BrokenPipeError):  # a worker that died at once is reported below
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.close()

        def next_frame() -> tuple[Any, ...]:
            if deadline is not None and time.monotonic() > deadline:
                raise QueryTimeout(_timeout_message(timeout_s))
            frame = _read_frame(proc.stdout)  # type: ignore[arg-type]
            if frame is None:
                if killed.is_set() or (deadline is not None and time.monotonic() > deadline):
                    raise QueryTimeout(_timeout_message(timeout_s))
                proc.wait()
                detail = proc.stderr.read(2000).decode(errors="replace").strip() if proc.stderr else ""
                last = detail.splitlines()[-1] if detail else f"exit code {proc.returncode}"
                raise QueryError(f"the query process ended unexpectedly: {last}")
            if frame[0] == "error":
                raise _sqlite_error(frame[1], frame[2], timeout_s)
            return frame

        first = next_frame()
        columns = list(first[1]) if first[0] == "columns" else []

        def batches() -> Iterator[list[tuple[Any, ...]]]:
            while True:
                frame = next_frame()
                if frame[0] != "rows":
                    return
                yield [tuple(row) for row in frame[1]]

        yield RowStream(columns, batches())
    finally:
        if killer:
            killer.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe:
                with contextlib.suppress(OSError):
                    pipe.close()


# --- PostgreSQL ----------------------------------------------------------------------------------------


def _pg_error(exc: Exception, timeout_s: float | None, cancelled: bool) -> Exception:
    from psycopg import errors

    if cancelled or isinstance(exc, errors.QueryCanceled):
        return QueryTimeout(_timeout_message(timeout_s))
    if isinstance(exc, errors.ReadOnlySqlTransaction | errors.InsufficientPrivilege):
        return ReadOnlyViolation(f"refused by the database: {first_line(exc)} (the console only reads)")
    if "cannot insert multiple commands" in str(exc):
        return ReadOnlyViolation(f"refused by the database: {first_line(exc)} (the console runs exactly one statement)")
    return QueryError(first_line(exc))


def _unsafe_message(role: str, problems: list[str]) -> str:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"refused: the SQL console's PostgreSQL role {role!r} {problems[0]}{more}; it must only read: {READER_HELP}"


def _pg_connect(url: URL, timeout_s: float | None) -> Any:
    import psycopg

    options = f"-c default_transaction_read_only=on -c lock_timeout={LOCK_TIMEOUT_MS}"
    if timeout_s:
        options += f" -c statement_timeout={max(int(timeout_s * 1000), 1)}"
    try:
        conn = psycopg.connect(
            pg_conninfo(url), connect_timeout=10, application_name="interop-sql-console", options=options
        )
    except psycopg.Error as exc:
        raise QueryError(f"cannot connect as the reader {mask_url(url)}: {first_line(exc)}") from None
    conn.read_only = True  # BEGIN READ ONLY; never committed (closing the connection rolls back)
    return conn


def _pg_rows(conn: Any, statement: Statement, batch: int) -> tuple[Any, Callable[[], list[tuple[Any, ...]]]]:
    """Send the one statement with the extended protocol; (cursor, fetch-next-batch)."""
    import psycopg

    if statement.kind == "query":
        cursor = conn.cursor(name="interop_console")  # DECLARE … CURSOR FOR <statement>, one prepared execute
        cursor.execute(statement.text)
        return cursor, lambda: cursor.fetchmany(batch)
    # EXPLAIN, SHOW, or text the parser could not read: a cursor cannot hold them, so stream the rows
    # (a prepared execute too, never the simple protocol that runs several statements).
    cursor = conn.cursor()
    size = batch if psycopg.capabilities.has_stream_chunked() else 1
    rows = cursor.stream(statement.text, size=size)
    first = list(itertools.islice(rows, batch))  # the description is known once rows (or the end) arrive
    pending = [first]

    def fetch() -> list[tuple[Any, ...]]:
        return pending.pop() if pending else list(itertools.islice(rows, batch))

    return cursor, fetch


@contextmanager
def _pg_stream(url: URL, sql: str, timeout_s: float | None, batch: int) -> Iterator[RowStream]:
    """Connect as the reader, refuse a role that could do more than read, then run one statement."""
    import psycopg

    started = time.monotonic()
    conn = _pg_connect(url, timeout_s)
    cancelled = threading.Event()

    def cancel() -> None:
        cancelled.set()
        # The connection may be closing; the deadline checks between fetches hold all the same.
        with contextlib.suppress(Exception):
            conn.cancel_safe(timeout=3)

    watchdog = threading.Timer(max(timeout_s - (time.monotonic() - started), 0), cancel) if timeout_s else None
    try:
        if watchdog:
            watchdog.daemon = True
            watchdog.start()
        try:
            problems = reader_problems(conn)
        except psycopg.Error as exc:
            raise _pg_error(exc, timeout_s, cancelled.is_set()) from None
        if problems:
            raise UnsafeReader(_unsafe_message(conn.info.user, problems))
        statement = check_read_only(sql, "postgres")
        try:
            cursor, fetch = _pg_rows(conn, statement, batch)
        except psycopg.Error as exc:
            raise _pg_error(exc, timeout_s, cancelled.is_set()) from None
        columns = [d.name for d in cursor.description or []]

        def batches() -> Iterator[list[tuple[Any, ...]]]:
            while True:
                if timeout_s and (cancelled.is_set() or time.monotonic() - started > timeout_s):
                    raise QueryTimeout(_timeout_message(timeout_s))
                try:
                    chunk = fetch()
                except psycopg.Error as exc:
                    raise _pg_error(exc, timeout_s, cancelled.is_set()) from None
                if not chunk:
                    return
                yield chunk

        yield RowStream(columns, batches())
    finally:
        if watchdog:
            watchdog.cancel()
        conn.close()  # ends the READ ONLY transaction without committing (and any session-level lock)


# --- public API ----------------------------------------------------------------------------------------


@contextmanager
def read_only_rows(
    url: str | URL, sql: str, timeout_s: float | None = DEFAULT_TIMEOUT_S, batch: int = FETCH_SIZE
) -> Iterator[RowStream]:
    """Check and run one read-only statement; yields its columns and row batches (streamed, not capped).

    On PostgreSQL `url` must be a reader role (see db.reader): any other role is refused with UnsafeReader."""
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise QueryError(f"read-only queries are supported on SQLite and PostgreSQL, not {backend}")
    if backend == "sqlite":
        streamer = _sqlite_stream(parsed, check_read_only(sql, dialect_of(backend)), timeout_s, batch)
    else:  # the role is checked first: an unsafe one runs nothing, whatever the statement
        streamer = _pg_stream(parsed, sql, timeout_s, batch)
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
