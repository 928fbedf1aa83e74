"""Alembic environment: SQLModel metadata as the target, batch mode on SQLite, URL from settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import JSON
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import db.models  # noqa: F401  (registers every table)
from db.engine import make_engine
from db.types import UTCDateTime

config = context.config
target_metadata = SQLModel.metadata


def _render_item(type_: str, obj: object, autogen_context) -> str | bool:  # type: ignore[no-untyped-def]
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
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or None)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
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
