"""Dialect-aware bulk upserts (INSERT … ON CONFLICT DO UPDATE) so re-runs never duplicate rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable

CHUNK = 500


def upsert_rows(
    session: Session, model: Any, rows: Sequence[dict[str, Any]], keys: Sequence[str], update: Sequence[str]
) -> None:
    """Insert `rows` into `model`'s table; rows whose natural key `keys` exists get the `update` columns replaced."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):  # pragma: no cover - only the two supported backends
        raise NotImplementedError(f"upsert on {dialect}")
    table = model.__table__
    for start in range(0, len(rows), CHUNK):
        chunk = list(rows[start : start + CHUNK])
        stmt = (
            _postgresql(table, chunk, keys, update) if dialect == "postgresql" else _sqlite(table, chunk, keys, update)
        )
        session.execute(stmt)


def _postgresql(table: Any, rows: list[dict[str, Any]], keys: Sequence[str], update: Sequence[str]) -> Executable:
    from sqlalchemy.dialects.postgresql import insert

    stmt = insert(table).values(rows)
    if update:
        return stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in update})
    return stmt.on_conflict_do_nothing(index_elements=list(keys))


def _sqlite(table: Any, rows: list[dict[str, Any]], keys: Sequence[str], update: Sequence[str]) -> Executable:
    from sqlalchemy.dialects.sqlite import insert

    stmt = insert(table).values(rows)
    if update:
        return stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in update})
    return stmt.on_conflict_do_nothing(index_elements=list(keys))
