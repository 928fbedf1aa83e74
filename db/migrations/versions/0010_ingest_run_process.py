"""ingest_run.host and .pid: which process owns a running row, so rows of killed processes can be closed

Revision ID: 0010_ingest_run_process
Revises: 0009_model_operator
Create Date: 2026-11-25 22:35:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010_ingest_run_process"
down_revision: str | Sequence[str] | None = "0009_model_operator"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.add_column(sa.Column("pid", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ingest_run", schema=None) as batch_op:
        batch_op.drop_column("pid")
        batch_op.drop_column("host")
