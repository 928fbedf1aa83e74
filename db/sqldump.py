"""A plain SQL dump for a dialect (`sqlite`, `postgresql`): CREATE TABLE / INDEX, then literal INSERTs.

The file loads into an empty database with the stock client (`sqlite3 x.db < dump.sql`, `psql -f dump.sql`)
in one transaction. The schema is the models' (compiled for the dialect, the same as the Alembic revisions make)
plus `alembic_version`, so the loaded database is at the dumped revision and `interop` can use it as it is.
Values go through the models' column types (UTC timestamps, JSON; SQL NULL and JSON `null` kept apart), rows
in primary-key order; PostgreSQL sequences are set past the dumped ids.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Column, Float, MetaData, String, Table, inspect
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.schema import CreateIndex, CreateTable

from db.errors import InteropError

DIALECTS = ("sqlite", "postgresql")
ROWS_PER_INSERT = 500

__all__ = ["DIALECTS", "DumpError", "dialect_for", "write_dump"]


class DumpError(InteropError):
    """The dump cannot be written as asked (unknown dialect)."""


def dialect_for(name: str) -> Dialect:
    """The SQLAlchemy dialect a dump is compiled for."""
    if name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.dialect()
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import psycopg

        return psycopg.dialect()
    raise DumpError(f"unknown --dialect {name!r}: choose one of {', '.join(DIALECTS)}")


def _alembic_version(meta: MetaData) -> Table:
    return Table("alembic_version", meta, Column("version_num", String(32), primary_key=True))


def _statement(sql: Any, dialect: Dialect, **kw: Any) -> str:
    return str(sql.compile(dialect=dialect, compile_kwargs=kw)).strip() + ";\n"


def _float_literals(dialect: Dialect, row: dict[str, Any], floats: list[str]) -> dict[str, Any]:
    """NaN and ±Infinity as the dialect spells them (SQLite keeps no NaN: it becomes NULL there too)."""
    from sqlalchemy import literal_column, null

    for name in floats:
        value = row[name]
        if isinstance(value, float) and not math.isfinite(value):
            if dialect.name == "postgresql":
                word = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
                row[name] = literal_column(f"'{word}'::double precision")
            else:
                row[name] = null() if math.isnan(value) else literal_column("9e999" if value > 0 else "-9e999")
    return row


def _json_literals(dialect: Dialect, row: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """JSON values as JSON text literals (JSONB on PostgreSQL); JSON `null` as the text `null`, SQL NULL as NULL."""
    from sqlalchemy import JSON, cast, literal
    from sqlalchemy.dialects.postgresql import JSONB

    for name in names:
        value = row[name]
        if value is None:
            continue
        payload = "null" if value is JSON.NULL else json.dumps(value, ensure_ascii=False, allow_nan=False)
        row[name] = cast(literal(payload, String()), JSONB) if dialect.name == "postgresql" else literal(payload)
    return row


def _inserts(conn: Any, table: Table, dialect: Dialect, rows_per_insert: int) -> Iterator[tuple[str, int]]:
    """INSERT statements of `rows_per_insert` rows each, with the values written as literals."""
    from db.copy import json_columns, row_batches

    floats = [c.name for c in table.columns if isinstance(c.type, Float)]
    jsons = json_columns(table)
    for batch in row_batches(conn, table, rows_per_insert):
        if floats:
            batch = [_float_literals(dialect, row, floats) for row in batch]
        if jsons:
            batch = [_json_literals(dialect, row, jsons) for row in batch]
        yield _statement(table.insert().values(batch), dialect, literal_binds=True), len(batch)


def _sequences(tables: list[Table], engine: Engine, conn: Any) -> Iterator[str]:
    """setval(…) past the dumped ids for every single integer primary key (PostgreSQL)."""
    from sqlalchemy import func, select

    for table in tables:
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or pk[0].type.python_type is not int or not pk[0].autoincrement:
            continue
        top = conn.execute(select(func.max(pk[0]))).scalar()
        if top is not None:
            yield f"  PERFORM setval(pg_get_serial_sequence('{table.name}', '{pk[0].name}'), {int(top)}, true);\n"


def write_dump(
    engine: Engine,
    out: TextIO,
    dialect_name: str,
    tables: list[str] | None = None,
    progress: Callable[[str, int], None] | None = None,
    rows_per_insert: int = ROWS_PER_INSERT,
) -> dict[str, int]:
    """Write the dump of ENGINE's database (all tables, or the named ones) to OUT; returns rows per table."""
    from db.copy import typed_tables
    from db.migrate import current_revision

    dialect = dialect_for(dialect_name)
    present = set(inspect(engine).get_table_names())
    chosen = [t for t in typed_tables() if t.name in present and (tables is None or t.name in tables)]
    revision = current_revision(engine)
    version = _alembic_version(MetaData())
    counts: dict[str, int] = {}
    out.write(f"-- Interop Lab SQL dump for {dialect_name}, schema revision {revision or '(none)'}\n")
    out.write("-- load into an EMPTY database: " + _how_to_load(dialect_name) + "\n")
    out.write("BEGIN;\n")
    if revision is not None and tables is None:
        out.write(_statement(CreateTable(version), dialect))
        out.write(_statement(version.insert().values(version_num=revision), dialect, literal_binds=True))
    for table in chosen:
        out.write(_statement(CreateTable(table), dialect))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            out.write(_statement(CreateIndex(index), dialect))
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        for table in chosen:
            counts[table.name] = 0
            for statement, n in _inserts(conn, table, dialect, rows_per_insert):
                out.write(statement)
                counts[table.name] += n
                if progress:
                    progress(table.name, n)
        if dialect_name == "postgresql":
            moves = list(_sequences(chosen, engine, conn))
            if moves:  # a DO block, so psql prints nothing for them
                out.write("DO $$\nBEGIN\n" + "".join(moves) + "END\n$$;\n")
    out.write("COMMIT;\n")
    return counts


def _how_to_load(dialect_name: str) -> str:
    if dialect_name == "sqlite":
        return "sqlite3 -bail NEW.db < THIS.sql"
    return "psql -v ON_ERROR_STOP=1 -d NEWDB -f THIS.sql"


def dump_file(engine: Engine, path: Path, dialect_name: str, **kwargs: Any) -> dict[str, int]:
    """write_dump into PATH (through PATH.partial, renamed at the end: a failed dump leaves no file)."""
    import os

    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="\n") as out:
            counts = write_dump(engine, out, dialect_name, **kwargs)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return counts
