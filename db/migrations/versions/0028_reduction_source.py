"""run reductions against the source framework: comparison basis, cause verdict, matched values (run_reduction)

Revision ID: 0028_reduction_source
Revises: 0026_survey_items
Create Date: 2026-11-30 03:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0028_reduction_source"
down_revision: str | Sequence[str] | None = "0026_survey_items"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("run_reduction", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("basis", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default="reference")
        )
        batch_op.add_column(sa.Column("cause", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column("matched_values", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("run_reduction", schema=None) as batch_op:
        batch_op.drop_column("matched_values")
        batch_op.drop_column("cause")
        batch_op.drop_column("basis")
