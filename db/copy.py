"""Copy a whole database to an empty one on another backend (SQLite ⇄ PostgreSQL), verified at the end.

Each table is copied in primary-key order, in batches inside one transaction of the target, with its primary
keys kept; PostgreSQL sequences are then moved past the copied ids. Values go through the models' column
types (UTC timestamps, JSON), and SQL NULL and JSON `null` stay apart. At the end every table's row count and
checksum (a digest of its normalized row values, computed in Python the same way on both backends) must agree.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import hashlib
import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, Column, MetaData, Table, func, inspect, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, Connection, Engine

from db.engine import make_engine, mask_url, normalize_url
from db.errors import InteropError

BATCH_ROWS = 10_000
#: Schema bookkeeping: the target's own migration sets it, so it is compared rather than copied.
BOOKKEEPING = frozenset({"alembic_version"})

#: (table, rows copied so far in it, rows it holds in the source)
Progress = Callable[[str, int, int], None]

__all__ = [
    "BATCH_ROWS",
    "CopyError",
    "CopyReport",
    "TableCopy",
    "copy_database",
    "json_columns",
    "row_batches",
    "table_checksums",
    "typed_tables",
]


class CopyError(InteropError):
    """The copy cannot start or did not verify (non-empty target, revision mismatch, different rows)."""


@dataclass(frozen=True)
class TableCopy:
    """One copied table: rows, the checksum both sides agree on, and the seconds its copy took."""

    name: str
    rows: int
    checksum: str
    seconds: float


@dataclass
class CopyReport:
    """What `interop db copy` did: from where to where, at which revision, table by table."""

    source: str
    target: str
    revision: str | None
    tables: list[TableCopy] = field(default_factory=list)
    sequences: int = 0
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


# --- the tables, typed for a faithful copy ---------------------------------------------------------------


def _is_json(column: Column[Any]) -> bool:
    typ = column.type
    return isinstance(typ, JSON) or any(isinstance(v, JSON) for v in getattr(typ, "_variant_mapping", {}).values())


def typed_tables() -> list[Table]:
    """The models' tables in dependency order, with JSON columns that keep SQL NULL apart from JSON `null`."""
    from sqlmodel import SQLModel

    from db.models import NAMING_CONVENTION  # importing db.models registers every table

    meta = MetaData(naming_convention=NAMING_CONVENTION)
    tables = []
    for table in SQLModel.metadata.sorted_tables:
        copy = table.to_metadata(meta)
        for column in copy.columns:
            if _is_json(column):
                column.type = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
        tables.append(copy)
    return tables


def json_columns(table: Table) -> list[str]:
    return [c.name for c in table.columns if _is_json(c)]


def _order(table: Table) -> list[Column[Any]]:
    return list(table.primary_key.columns) or list(table.columns)


def _select(table: Table) -> Any:
    """Every column, plus `col IS NULL` for each JSON column (reading alone cannot tell SQL NULL from `null`)."""
    flags = [table.c[name].is_(None).label(f"__null_{name}") for name in json_columns(table)]
    return select(*table.columns, *flags).order_by(*_order(table))


def row_batches(conn: Connection, table: Table, batch: int) -> Iterator[list[dict[str, Any]]]:
    """The table's rows as insert parameters, batch by batch; JSON `null` marked as JSON.NULL."""
    names = [c.name for c in table.columns]
    json_cols = json_columns(table)
    result = conn.execution_options(stream_results=True, yield_per=batch).execute(_select(table))
    for part in result.partitions(batch):
        rows = []
        for raw in part:
            row = dict(zip(names, raw[: len(names)], strict=True))
            for i, name in enumerate(json_cols):
                if row[name] is None and not raw[len(names) + i]:
                    row[name] = JSON.NULL
            rows.append(row)
        yield rows


# --- checksums: the same digest of the same values on either backend ------------------------------------


def _norm(value: Any) -> Any:
    """A value in a backend-independent form (aware UTC times, floats by their exact bits, JSON canonical)."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is float:
        return {"float": "nan"} if math.isnan(value) else {"float": value.hex()}
    if kind is dt.datetime:
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return {"ts": aware.astimezone(dt.UTC).isoformat(timespec="microseconds")}
    if kind is dict or kind is list:
        return {"json": value}  # the row's json.dumps(sort_keys=True) makes it canonical
    if value is JSON.NULL:
        return {"json": None}
    if isinstance(value, enum.Enum):
        return _norm(value.value)
    if isinstance(value, decimal.Decimal):
        return {"decimal": str(value)}
    if isinstance(value, dt.date | dt.time):
        return {"t": value.isoformat()}
    if isinstance(value, bytes | memoryview):
        return {"bytes": bytes(value).hex()}
    return {"other": str(value)}


_PLAIN = frozenset({type(None), bool, int, str})


def _row_digest(row: dict[str, Any], names: list[str]) -> int:
    payload = json.dumps([_norm(row[n]) for n in names], sort_keys=True, separators=(",", ":"), default=str)
    return int.from_bytes(hashlib.sha256(payload.encode()).digest()[:16], "big")


class _Checksum:
    """The sum of each row's digest: independent of the order rows come in (collations differ by backend)."""

    def __init__(self) -> None:
        self.total = 0
        self.rows = 0

    def add(self, row: dict[str, Any], names: list[str]) -> None:
        self.total = (self.total + _row_digest(row, names)) % (1 << 128)
        self.rows += 1

    def hexdigest(self) -> str:
        return f"{self.total:032x}"


def _checksum(conn: Connection, table: Table, batch: int) -> tuple[int, str]:
    names = [c.name for c in table.columns]
    digest = _Checksum()
    for rows in row_batches(conn, table, batch):
        for row in rows:
            digest.add(row, names)
    return digest.rows, digest.hexdigest()


def table_checksums(url: str | URL, batch: int = BATCH_ROWS) -> dict[str, tuple[int, str]]:
    """Each table's (rows, checksum), as `copy_database` verifies them; for comparing two databases."""
    engine = make_engine(normalize_url(url))
    try:
        present = set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            return {t.name: _checksum(conn, t, batch) for t in typed_tables() if t.name in present}
    finally:
        engine.dispose()


# --- checks before anything is written -----------------------------------------------------------------


def _revision(engine: Engine) -> str | None:
    from db.migrate import current_revision

    return current_revision(engine)


def _counts(engine: Engine, tables: list[Table]) -> dict[str, int]:
    present = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in tables
            if t.name in present
        }


def _check(source: Engine, target: Engine, tables: list[Table], target_label: str) -> tuple[str | None, dict[str, int]]:
    """The revision both are at and the source's row counts; CopyError when the copy must not start."""
    from db.migrate import head_revision

    head = head_revision()
    src_rev = _revision(source)
    if src_rev is None:
        raise CopyError(f"the source database {mask_url(source.url)} has no schema: nothing to copy")
    if src_rev != head:
        raise CopyError(
            f"the source database {mask_url(source.url)} is at revision {src_rev}, this code at {head}: "
            "run `interop db upgrade` on it first"
        )
    dst_rev = _revision(target)
    if dst_rev != src_rev:
        shown = dst_rev or "(no schema)"
        raise CopyError(
            f"the target database {target_label} is at revision {shown}, the source at {src_rev}: "
            f"run `INTEROP_DATABASE_URL={target_label} interop db upgrade` on the empty target first"
        )
    missing = [t.name for t in tables if t.name not in set(inspect(target).get_table_names())]
    if missing:
        raise CopyError(f"the target database {target_label} lacks table(s) {', '.join(missing)}")
    filled = {name: n for name, n in _counts(target, tables).items() if n}
    if filled:
        listed = ", ".join(f"{name} ({n:,} row{'' if n == 1 else 's'})" for name, n in sorted(filled.items()))
        raise CopyError(f"the target database {target_label} is not empty: {listed}; copy only into an empty database")
    return src_rev, _counts(source, tables)


# --- the copy ------------------------------------------------------------------------------------------


def _reset_sequences(conn: Connection, tables: list[Table]) -> int:
    """Move each PostgreSQL sequence behind a single integer primary key past the largest copied id."""
    done = 0
    for table in tables:
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or pk[0].type.python_type is not int:
            continue
        seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": pk[0].name}).scalar()
        if seq is None:
            continue
        top = conn.execute(select(func.max(pk[0]))).scalar()
        conn.execute(text("SELECT setval(:s, :v, :called)"), {"s": seq, "v": top or 1, "called": top is not None})
        done += 1
    return done


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One read transaction over the whole copy (REPEATABLE READ, read-only on PostgreSQL; a WAL snapshot on
    SQLite), so rows written meanwhile by a miner cannot leave a child without its parent."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            if engine.dialect.name == "sqlite":  # pysqlite begins only before writes: begin the read here
                conn.exec_driver_sql("BEGIN")
            yield conn


def _copy_table(
    reading: Connection,
    target: Engine,
    table: Table,
    batch: int,
    totals: dict[str, int],
    progress: Progress | None,
    report: CopyReport,
) -> TableCopy:
    """Copy one table in batches inside one target transaction, then verify its count and checksum there."""
    import time

    t0 = time.perf_counter()
    names = [c.name for c in table.columns]
    digest = _Checksum()
    total = totals.get(table.name, 0)
    if progress:
        progress(table.name, 0, total)
    with target.begin() as writing:
        for rows in row_batches(reading, table, batch):
            writing.execute(table.insert(), rows)
            for row in rows:
                digest.add(row, names)
            if progress:
                progress(table.name, digest.rows, total)
        if target.dialect.name == "postgresql":
            report.sequences += _reset_sequences(writing, [table])
    with target.connect() as check:
        rows_there, sum_there = _checksum(check, table, batch)
    if (rows_there, sum_there) != (digest.rows, digest.hexdigest()):
        raise CopyError(
            f"table {table.name} did not verify: {digest.rows:,} rows read (checksum "
            f"{digest.hexdigest()[:12]}), {rows_there:,} in the target (checksum {sum_there[:12]})"
        )
    return TableCopy(table.name, digest.rows, digest.hexdigest(), time.perf_counter() - t0)


def _empty(target: Engine, tables: list[Table]) -> None:
    """Take back what a failed copy committed, so the target is empty again and a re-run can start."""
    with target.begin() as conn:
        for table in reversed(tables):
            conn.execute(table.delete())


def copy_database(
    source_url: str | URL,
    target_url: str | URL,
    batch: int = BATCH_ROWS,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy every table of SOURCE into the empty TARGET (same schema revision), then verify counts and checksums."""
    import time

    source_url, target_url = normalize_url(source_url), normalize_url(target_url)
    if source_url.render_as_string(hide_password=False) == target_url.render_as_string(hide_password=False):
        raise CopyError("the source and the target are the same database")
    label = mask_url(target_url)
    source, target = make_engine(source_url), make_engine(target_url)
    tables = typed_tables()
    started = time.perf_counter()
    try:
        revision, totals = _check(source, target, tables, label)
        report = CopyReport(mask_url(source_url), label, revision)
        copied: list[Table] = []
        try:
            with _snapshot(source) as reading:  # one consistent view of the source for every table
                for table in tables:
                    copied.append(table)
                    report.tables.append(_copy_table(reading, target, table, batch, totals, progress, report))
        except BaseException:
            _empty(target, copied)
            raise
        report.seconds = time.perf_counter() - started
        return report
    finally:
        source.dispose()
        target.dispose()
