"""Typed help for SQLModel's `select`, whose typed overloads stop at four columns."""

from __future__ import annotations

from typing import Any


def many_columns(*exprs: Any) -> tuple[Any, ...]:
    """Five or more columns for `select`: `select(*many_columns(a, b, c, d, e))` (rows are plain tuples)."""
    return exprs
