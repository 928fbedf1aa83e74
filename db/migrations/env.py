"""Alembic environment: SQLModel metadata as the target, batch mode on SQLite, URL from settings."""

from __future__ import annotations

from typing import Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import JSON
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import db.models  # noqa: F401  (registers every table)
from db.engine import make_engine
from db.types import UTCDateTime

config = context.config
target_metadata = SQLModel.metadata


def _render_item(type_: str, obj: object, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render our column types by import path so revisions stay importable on both backends."""
    if type_ != "type":
        return False
    if isinstance(obj, UTCDateTime):
        return "db.types.UTCDateTime()"
    if isinstance(obj, JSON):
        return "db.types.JSONType"
    if isinstance(obj, AutoString):
        length = f"length={obj.length}" if obj.length else ""
        return f"sqlmodel.sql.sqltypes.AutoString({length})"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=_render_item,
        compare_type=True,
        # SQLite's DDL is transactional too: one transaction for all revisions, as on PostgreSQL, so a revision
        # that fails (or refuses) leaves the database at the revision the command started from
        transactional_ddl=True,
    )


def _migrate(connection: Connection) -> None:
    """Run the revisions; on SQLite with foreign keys unenforced meanwhile, and checked before the commit.

    Batch mode rebuilds a table by copy, drop and rename, and SQLite refuses to drop a table other rows
    reference while it enforces foreign keys. The pragma only works outside a transaction, so it is set first."""
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()  # ends SQLAlchemy's implicit transaction, so Alembic's own one commits the revisions
    try:
        _configure(connection)
        with context.begin_transaction():
            if sqlite:  # Python's sqlite3 opens a transaction only before DML: begin it here, before any DDL
                connection.exec_driver_sql("BEGIN")
            before = context.get_context().get_current_heads()
            context.run_migrations()
            if sqlite and context.get_context().get_current_heads() != before:
                _check_foreign_keys(connection)
    finally:
        if sqlite:
            connection.rollback()  # nothing is pending after a commit; after a failure, nothing may stay pending
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def _check_foreign_keys(connection: Connection) -> None:
    bad = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if bad:
        table, _rowid, parent, _fk = bad[0]
        raise RuntimeError(
            f"the migration left {len(bad)} row(s) whose foreign key points nowhere "
            f"(first: a {table} row referencing {parent})"
        )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or None)
    with engine.connect() as conn:
        _migrate(conn)
    engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
