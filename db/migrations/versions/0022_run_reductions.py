"""run reductions: a mismatching run's first diverging node and reduced model size (run_reduction)

Revision ID: 0022_run_reductions
Revises: 0021_repo_snapshots
Create Date: 2026-11-30 01:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import db.types


revision: str = "0022_run_reductions"
down_revision: str | Sequence[str] | None = "0021_repo_snapshots"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "run_reduction",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("node_name", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("operator", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("node_index", sa.Integer(), nullable=True),
        sa.Column("nodes_before", sa.Integer(), nullable=False),
        sa.Column("nodes_after", sa.Integer(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("atol", sa.Float(), nullable=False),
        sa.Column("rtol", sa.Float(), nullable=False),
        sa.Column("out_dir", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("reduced_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["conversion_run.id"], name=op.f("fk_run_reduction_run_id_conversion_run")),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_run_reduction")),
    )
    with op.batch_alter_table("run_reduction", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_reduction_operator"), ["operator"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("run_reduction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_reduction_operator"))
    op.drop_table("run_reduction")
