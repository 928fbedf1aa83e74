"""One read-only SQLite query in a child process, so the parent can kill work stuck inside one VM step.

Standard library only: the parent starts it as `python -I -S sqlite_worker.py`, writes one JSON request
(path, sql, timeout_s, batch) on its stdin and reads length-prefixed pickled frames from its stdout:
("columns", names), then ("rows", batch) as the query advances, then ("end",) or ("error", kind, message).
The pipe is the flow control: the child waits while the parent does not read, so neither side holds more
than a batch. A watchdog thread interrupts the query at the deadline; the parent kills the process if the
interrupt cannot land (a VM step that runs for seconds, e.g. a huge LIKE).
"""

from __future__ import annotations

import contextlib
import json
import pickle
import sqlite3
import struct
import sys
import threading
import urllib.parse
from typing import Any, BinaryIO

#: PRAGMAs that take an argument yet only read.
READ_PRAGMAS = frozenset(
    {
        "TABLE_INFO",
        "TABLE_XINFO",
        "TABLE_LIST",
        "INDEX_LIST",
        "INDEX_INFO",
        "INDEX_XINFO",
        "FOREIGN_KEY_LIST",
        "FOREIGN_KEY_CHECK",
        "INTEGRITY_CHECK",
        "QUICK_CHECK",
    }
)
#: Functions that reach files or load code (most are absent from Python's SQLite; denied all the same).
DENIED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})
_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}


def authorizer(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
    """Allow reading only; PRAGMAs only without a value (or the table-describing ones)."""
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    if action in _ALLOWED:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg2 is None or (arg1 or "").upper() in READ_PRAGMAS):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


#: Table-valued functions SQLite builds as virtual tables on first use, which the authorizer would refuse
#: (it sees the schema being extended): built once, before the authorizer is set, so queries can use them.
TABLE_FUNCTIONS = (
    "json_each('[]')",
    "json_tree('[]')",
    *(f"pragma_{name.lower()}('sqlite_master')" for name in sorted(READ_PRAGMAS)),
)


def open_read_only(path: str) -> sqlite3.Connection:
    """A `mode=ro` connection with query_only and the authorizer (table-valued functions ready)."""
    conn = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=ro", uri=True, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA query_only=ON")
    for function in TABLE_FUNCTIONS:
        # Absent from this SQLite build (e.g. JSON left out)? Then queries using it fail as they would anyway.
        with contextlib.suppress(sqlite3.Error):
            conn.execute(f"SELECT * FROM {function} LIMIT 0").fetchall()
    conn.set_authorizer(authorizer)
    return conn


def send(out: BinaryIO, frame: tuple[Any, ...]) -> None:
    data = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(struct.pack(">Q", len(data)))
    out.write(data)
    out.flush()


def run(request: dict[str, Any], out: BinaryIO) -> None:
    """Run the request's statement and stream its rows as frames."""
    try:
        conn = open_read_only(request["path"])
    except sqlite3.Error as exc:
        send(out, ("error", "open", str(exc)))
        return
    timeout = request.get("timeout_s")
    if timeout is not None:
        watchdog = threading.Timer(max(float(timeout), 0.0), conn.interrupt)
        watchdog.daemon = True
        watchdog.start()
    try:
        cursor = conn.execute(request["sql"])
        send(out, ("columns", [d[0] for d in cursor.description or []]))
        while rows := cursor.fetchmany(int(request["batch"])):
            send(out, ("rows", rows))
        send(out, ("end",))
    except (sqlite3.Error, sqlite3.Warning) as exc:
        send(out, ("error", type(exc).__name__, str(exc)))


def main() -> int:
    request = json.loads(sys.stdin.buffer.readline())
    with contextlib.suppress(BrokenPipeError):  # the parent had enough rows (or its deadline passed)
        run(request, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
