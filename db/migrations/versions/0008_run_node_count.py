"""conversion_run.node_count: the model's node count on each run, for join-free outcome breakdowns

Revision ID: 0008_run_node_count
Revises: 0007_experiments_indexes
Create Date: 2026-11-25 22:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_run_node_count"
down_revision: str | Sequence[str] | None = "0007_experiments_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversion_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("node_count", sa.Integer(), nullable=True))
    # Existing runs take their model's count (a model's node count never changes after it is stored).
    op.execute(
        "UPDATE conversion_run SET node_count = "
        "(SELECT model.node_count FROM model WHERE model.id = conversion_run.model_id)"
    )
    with op.batch_alter_table("conversion_run", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conversion_run_breakdown",
            ["converter", "exporter", "node_count", "opset", "status", "campaign_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("conversion_run", schema=None) as batch_op:
        batch_op.drop_index("ix_conversion_run_breakdown")
        batch_op.drop_column("node_count")
