"""Typed help for SQLModel: selects of many columns, and the id of a row already written."""

from __future__ import annotations

from typing import Any, Protocol


class _Row(Protocol):
    id: int | None


def many_columns(*exprs: Any) -> tuple[Any, ...]:
    """Five or more columns for `select`, whose typed overloads stop at four: `select(*many_columns(a, b, …))`."""
    return exprs


def stored_id(row: _Row) -> int:
    """The primary key of a row that was flushed or committed (never None then)."""
    if row.id is None:
        raise RuntimeError(f"{type(row).__name__} has no id yet: flush the session first")
    return row.id
