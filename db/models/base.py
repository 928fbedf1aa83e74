"""Conventions every table follows: named constraints (so SQLite batch migrations work), UTC times."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Table
from sqlmodel import Field, SQLModel

from db.types import JSONType, UTCDateTime, utcnow

#: Deterministic constraint names; Alembic batch mode on SQLite needs them to alter tables.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION


def json_field(nullable: bool = True, default: Any = None, **kwargs: Any) -> Any:
    """A JSON column (JSONB on PostgreSQL) for raw payloads and parameter dicts."""
    factory = (lambda: default.copy()) if isinstance(default, dict | list) else (lambda: default)
    return Field(default_factory=factory, sa_column=Column(JSONType, nullable=nullable), **kwargs)


def utc_field(nullable: bool = True, now: bool = False, index: bool = False) -> Any:
    """A timezone-aware UTC timestamp column; `now=True` defaults it to the insert time."""
    return Field(
        default_factory=utcnow if now else (lambda: None),
        sa_column=Column(UTCDateTime(), nullable=nullable, index=index),
    )


__all__ = ["Field", "SQLModel", "datetime", "json_field", "utc_field"]


def core_table(model: type[SQLModel]) -> Table:
    """The Core table of a model class, for query modules written in SQLAlchemy Core (its columns are typed as
    SQL expressions, unlike the class attributes, which type as their Python values)."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table
