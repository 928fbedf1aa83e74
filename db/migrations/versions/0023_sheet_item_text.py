"""sheet item text: the coding sheets' Title and Description of an issue (issue.sheet_title, sheet_description)

Revision ID: 0023_sheet_item_text
Revises: 0022_run_reductions
Create Date: 2026-11-30 03:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0023_sheet_item_text"
down_revision: str | Sequence[str] | None = "0022_run_reductions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ADD COLUMN on both backends (a batch copy of `issue` on SQLite would break the views that read it)
    op.add_column("issue", sa.Column("sheet_title", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column("issue", sa.Column("sheet_description", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    # issues known only from a sheet got the sheet's title as their title: keep it as the sheet's too
    op.execute("UPDATE issue SET sheet_title = title WHERE NOT hydrated AND title IS NOT NULL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite ≥ 3.35 drops a column in place; a batch copy of `issue` would break the views that read it
        op.execute("ALTER TABLE issue DROP COLUMN sheet_description")
        op.execute("ALTER TABLE issue DROP COLUMN sheet_title")
        return
    op.drop_column("issue", "sheet_description")
    op.drop_column("issue", "sheet_title")
