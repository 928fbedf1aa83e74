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
    with op.batch_alter_table("issue", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sheet_title", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("sheet_description", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    # issues known only from a sheet got the sheet's title as their title: keep it as the sheet's too
    op.execute("UPDATE issue SET sheet_title = title WHERE NOT hydrated AND title IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("issue", schema=None) as batch_op:
        batch_op.drop_column("sheet_description")
        batch_op.drop_column("sheet_title")
