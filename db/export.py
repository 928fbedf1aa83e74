"""Export whole tables or one read-only query as CSV, Parquet or SQLite, streamed in chunks (no row cap).

Every value goes through Arrow: table columns get their Arrow type from the SQL column type (JSON becomes
JSON text, timestamps UTC), query columns from their first non-empty values. Files are written under a
`.partial` name and renamed at the end, so a failed export never leaves a half-written file behind.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import MetaData, Table, inspect, select
from sqlalchemy.engine import URL, Engine
from sqlalchemy.types import DateTime, TypeDecorator, TypeEngine

from db.engine import make_engine, normalize_url
from db.errors import ExportError
from db.readonly import DEFAULT_TIMEOUT_S, QueryError, read_only_rows, unique_columns

FORMATS = ("csv", "parquet", "sqlite")
#: Whole tables can also go to a plain SQL dump (db.sqldump) for a dialect.
TABLE_FORMATS = (*FORMATS, "sql")
CHUNK_ROWS = 50_000
SQLITE_EXPORT_FILE = "interop-export.sqlite"
SQL_EXPORT_FILE = "interop-export.{dialect}.sql"
#: Bookkeeping of the schema tool, left out unless asked for by name.
SKIPPED_BY_DEFAULT = frozenset({"alembic_version"})

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class Exported:
    """One written table: its name, how many rows, and the file that holds it."""

    name: str
    rows: int
    path: Path


# --- Arrow types and values ----------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def arrow_type_for(sql_type: TypeEngine[Any]) -> pa.DataType:
    """The Arrow type a SQL column exports as (JSON and unknown types as text)."""
    base = sql_type.impl_instance if isinstance(sql_type, TypeDecorator) else sql_type
    try:
        python_type = base.python_type
    except NotImplementedError:
        return pa.string()
    if python_type is bool:
        return pa.bool_()
    if python_type is int:
        return pa.int64()
    if python_type in (float, decimal.Decimal):
        return pa.float64()
    if python_type is dt.datetime:
        aware = isinstance(sql_type, TypeDecorator) or (isinstance(base, DateTime) and base.timezone)
        return pa.timestamp("us", tz="UTC") if aware else pa.timestamp("us")
    if python_type is dt.date:
        return pa.date32()
    if python_type is dt.time:
        return pa.time64("us")
    if python_type is bytes:
        return pa.binary()
    return pa.string()


def _array(values: list[Any], typ: pa.DataType | None, column: str) -> pa.Array:
    values = [_jsonable(v) for v in values]
    try:
        return pa.array(values, type=typ, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        if typ is not None and pa.types.is_string(typ):
            return pa.array([None if v is None else str(v) for v in values], type=typ)
        raise ExportError(
            f"column {column!r} mixes value types ({typ} expected); CAST it in the query to one type"
        ) from None


def _infer_schema(columns: list[str], rows: list[tuple[Any, ...]]) -> pa.Schema:
    """Arrow types from a first batch of query rows; columns with no value yet become text."""
    fields = []
    for i, name in enumerate(columns):
        typ = _array([r[i] for r in rows], None, name).type
        fields.append(pa.field(name, pa.string() if pa.types.is_null(typ) else typ))
    return pa.schema(fields)


def _batch(schema: pa.Schema, rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    arrays = [_array([r[i] for r in rows], f.type, f.name) for i, f in enumerate(schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# --- sinks ---------------------------------------------------------------------------------------------


class Sink(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...
    def close(self) -> None: ...


class CsvSink:
    """A CSV file with a header row; timestamps in ISO 8601."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._writer = pacsv.CSVWriter(str(path), schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()


class ParquetSink:
    """A Parquet file, one row group per chunk."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._writer = pq.ParquetWriter(str(path), schema, compression="zstd")

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()


def _sqlite_decl(typ: pa.DataType) -> str:
    if pa.types.is_integer(typ) or pa.types.is_boolean(typ):
        return "INTEGER"
    if pa.types.is_floating(typ):
        return "REAL"
    if pa.types.is_binary(typ):
        return "BLOB"
    if pa.types.is_timestamp(typ):
        return "TIMESTAMP"
    return "TEXT"


def _sqlite_value(value: Any) -> Any:
    """Dates and times as the CSV export writes them (`2026-11-29 04:00:13.781472Z`), so both exports agree."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds") + "Z"
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return value


class SqliteSink:
    """One table in a SQLite file (several tables share the file); timestamps as ISO 8601 text in UTC."""

    def __init__(self, path: Path, table: str, schema: pa.Schema) -> None:
        self._conn = sqlite3.connect(path)
        self._table = table
        quoted = ", ".join(f'"{f.name}" {_sqlite_decl(f.type)}' for f in schema)
        self._conn.execute(f'DROP TABLE IF EXISTS "{table}"')
        self._conn.execute(f'CREATE TABLE "{table}" ({quoted})')
        self._insert = f'INSERT INTO "{table}" VALUES ({", ".join("?" for _ in schema)})'

    def write(self, batch: pa.RecordBatch) -> None:
        columns = [[_sqlite_value(v) for v in col.to_pylist()] for col in batch.columns]
        self._conn.executemany(self._insert, zip(*columns, strict=True))

    def close(self) -> None:
        self._conn.commit()
        self._conn.close()


def _sink(fmt: str, path: Path, table: str, schema: pa.Schema) -> Sink:
    if fmt == "csv":
        return CsvSink(path, schema)
    if fmt == "parquet":
        return ParquetSink(path, schema)
    return SqliteSink(path, table, schema)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def _write(
    fmt: str,
    path: Path,
    table: str,
    schema: pa.Schema | None,
    columns: list[str],
    batches: Iterable[list[tuple[Any, ...]]],
    progress: Progress | None,
) -> int:
    """Stream row batches into one sink; the schema comes from the first batch when not given."""
    sink: Sink | None = None
    total = 0
    for rows in batches:
        if schema is None:
            schema = _infer_schema(columns, rows)
        if sink is None:
            sink = _sink(fmt, path, table, schema)
        sink.write(_batch(schema, rows))
        total += len(rows)
        if progress:
            progress(table, len(rows))
    if sink is None:  # no rows at all: still write the header / schema
        sink = _sink(fmt, path, table, schema or pa.schema([pa.field(c, pa.string()) for c in columns]))
    sink.close()
    return total


# --- whole tables --------------------------------------------------------------------------------------


def _made_dir(out_dir: Path) -> Path | None:
    """Create OUT_DIR; returns it if this call created it, so a failed export can take it away again."""
    existed = out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    return None if existed else out_dir


def _drop_if_empty(made: Path | None) -> None:
    if made is not None and made.is_dir() and not any(made.iterdir()):
        made.rmdir()


def table_names(engine: Engine) -> list[str]:
    """Every table in the database, in the models' dependency order, then any others by name."""
    from sqlmodel import SQLModel

    import db.models  # noqa: F401  (registers every model)

    present = set(inspect(engine).get_table_names())
    ordered = [t.name for t in SQLModel.metadata.sorted_tables if t.name in present]
    return ordered + sorted(present - set(ordered))


def _table(engine: Engine, name: str) -> Table:
    """The model's Table when db/ knows it (typed columns), else reflected from the database."""
    from sqlmodel import SQLModel

    known = SQLModel.metadata.tables.get(name)
    return known if known is not None else Table(name, MetaData(), autoload_with=engine)


def _table_batches(engine: Engine, table: Table, chunk: int) -> Iterator[list[tuple[Any, ...]]]:
    order = list(table.primary_key.columns) or list(table.columns)[:1]
    with engine.connect() as conn:
        options: dict[str, Any] = {"stream_results": True, "yield_per": chunk}
        if engine.dialect.name == "postgresql":
            options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        result = conn.execution_options(**options).execute(select(table).order_by(*order))
        for part in result.partitions(chunk):
            yield [tuple(row) for row in part]


def export_tables(
    url: str | URL,
    out_dir: Path,
    fmt: str,
    tables: list[str] | None = None,
    chunk: int = CHUNK_ROWS,
    progress: Progress | None = None,
    dialect: str | None = None,
) -> list[Exported]:
    """Write each table (default: all but alembic_version) to OUT_DIR as <table>.csv/.parquet, one SQLite file,
    or one SQL dump for DIALECT (default: the database's own; alembic_version included when all are dumped)."""
    if fmt != "sql":
        _check_format(fmt)
    engine = make_engine(normalize_url(url))
    made = None
    try:
        available = table_names(engine)
        wanted = tables or [t for t in available if t not in SKIPPED_BY_DEFAULT]
        unknown = [t for t in wanted if t not in available]
        if unknown:
            raise ExportError(f"no such table: {', '.join(unknown)} (tables: {', '.join(available)})")
        made = _made_dir(out_dir)
        if fmt == "sql":
            return _export_sql(engine, out_dir, dialect or engine.dialect.name, tables, progress)
        done: list[Exported] = []
        sqlite_file = out_dir / SQLITE_EXPORT_FILE
        if fmt == "sqlite":
            _partial(sqlite_file).unlink(missing_ok=True)
        for name in wanted:
            table = _table(engine, name)
            schema = pa.schema([pa.field(c.name, arrow_type_for(c.type)) for c in table.columns])
            final = sqlite_file if fmt == "sqlite" else out_dir / f"{name}.{fmt}"
            target = _partial(final)
            rows = _write(fmt, target, name, schema, [], _table_batches(engine, table, chunk), progress)
            if fmt != "sqlite":
                os.replace(target, final)
            done.append(Exported(name, rows, final))
        if fmt == "sqlite":
            os.replace(_partial(sqlite_file), sqlite_file)
        return done
    except BaseException:
        for leftover in out_dir.glob("*.partial") if out_dir.exists() else []:
            leftover.unlink(missing_ok=True)
        _drop_if_empty(made)
        raise
    finally:
        engine.dispose()


def _export_sql(
    engine: Engine, out_dir: Path, dialect: str, tables: list[str] | None, progress: Progress | None
) -> list[Exported]:
    from db.sqldump import DumpError, dump_file

    path = out_dir / SQL_EXPORT_FILE.format(dialect=dialect)
    try:
        counts = dump_file(engine, path, dialect, tables=tables, progress=progress)
    except DumpError as exc:
        raise ExportError(str(exc)) from None
    return [Exported(name, rows, path) for name, rows in counts.items()]


# --- one query -----------------------------------------------------------------------------------------


def export_query(
    url: str | URL,
    sql: str,
    out_dir: Path,
    fmt: str,
    name: str = "query",
    timeout_s: float | None = DEFAULT_TIMEOUT_S * 20,
    chunk: int = CHUNK_ROWS,
    progress: Progress | None = None,
) -> Exported:
    """Run one read-only statement (as the SQL console does, but without a row cap) into OUT_DIR/<name>.<fmt>."""
    _check_format(fmt)
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ExportError(f"--name {name!r}: use letters, digits, '-' and '_' only")
    made = _made_dir(out_dir)
    final = out_dir / f"{name}.{fmt}"
    target = _partial(final)
    target.unlink(missing_ok=True)
    try:
        with read_only_rows(url, sql, timeout_s, chunk) as stream:
            columns = unique_columns(stream.columns)
            if not columns:
                raise QueryError("the statement returns no columns")
            rows = _write(fmt, target, name.replace("-", "_"), None, columns, stream.batches, progress)
        os.replace(target, final)
    except BaseException:
        target.unlink(missing_ok=True)
        _drop_if_empty(made)
        raise
    return Exported(name, rows, final)


# --- in-memory results (the SQL console's downloads) ---------------------------------------------------


def frame_to_arrow(frame: Any) -> pa.Table:
    """A console result as an Arrow table, typed like `export query` types it (JSON values as text)."""
    columns = [str(c) for c in frame.columns]
    rows = list(frame.itertuples(index=False, name=None))
    rows = [tuple(None if _is_missing(v) else v for v in row) for row in rows]
    schema = _infer_schema(columns, rows)
    return pa.Table.from_batches([_batch(schema, rows)], schema=schema)


def _is_missing(value: Any) -> bool:
    try:
        return value is None or (not isinstance(value, dict | list | str | bytes) and bool(value != value))
    except (TypeError, ValueError):
        return False


def frame_to_bytes(frame: Any, fmt: str) -> bytes:
    """CSV or Parquet bytes of a console result, for a download button."""
    import io

    table = frame_to_arrow(frame)
    buffer = io.BytesIO()
    if fmt == "parquet":
        pq.write_table(table, buffer, compression="zstd")
    elif fmt == "csv":
        pacsv.write_csv(table, buffer)
    else:
        raise ExportError(f"unknown download format {fmt!r}")
    return buffer.getvalue()
