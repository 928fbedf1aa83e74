"""Read-only SQL views made by Alembic revisions, described as tables so queries can select from them.

They live on their own MetaData: `SQLModel.metadata` holds only real tables, so autogenerate never tries
to create a view as a table.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table

from db.types import UTCDateTime

VIEWS = MetaData()

#: One row per valid coding of an item × dimension (`value_source` 'coding', with its `coder`) and one per
#: final label (`value_source` 'final', with `decided_by`); revision 0015_issue_codes_view.
issue_codes = Table(
    "issue_codes",
    VIEWS,
    Column("round", String),
    Column("item_id", Integer),
    Column("item_kind", String),
    Column("item_ref", String),
    Column("issue_id", Integer),
    Column("repository", String),
    Column("issue_number", Integer),
    Column("dimension", String),
    Column("dimension_position", Integer),
    Column("value_source", String),
    Column("coder", String),
    Column("decided_by", String),
    Column("code", Integer),
    Column("label", String),
    Column("coded_at", UTCDateTime),
)
