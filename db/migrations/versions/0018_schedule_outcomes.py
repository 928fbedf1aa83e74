"""schedule outcomes: every firing of a scheduled job (ran with its runs, failed, skipped)

Revision ID: 0018_schedule_outcomes
Revises: 0017_issue_comments
Create Date: 2026-11-30 01:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import db.types

revision: str = "0018_schedule_outcomes"
down_revision: str | Sequence[str] | None = "0017_issue_comments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "schedule_outcome",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("run_ids", db.types.JSONType, nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("started_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("finished_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_outcome")),
    )
    with op.batch_alter_table("schedule_outcome", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_schedule_outcome_job"), ["job"], unique=False)
        batch_op.create_index(batch_op.f("ix_schedule_outcome_started_at"), ["started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("schedule_outcome", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedule_outcome_started_at"))
        batch_op.drop_index(batch_op.f("ix_schedule_outcome_job"))
    op.drop_table("schedule_outcome")
