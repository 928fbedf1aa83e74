"""issue comments (from timeline `commented` entries, mined by REST or GraphQL)

Revision ID: 0017_issue_comments
Revises: 0014_survey_definition
Create Date: 2026-11-30 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import db.types

revision: str = "0017_issue_comments"
down_revision: str | Sequence[str] | None = "0016_run_outcomes_view"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "issue_comment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("comment_key", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("github_id", sa.BigInteger(), nullable=True),
        sa.Column("author", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("author_association", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("body", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("updated_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("html_url", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("raw", db.types.JSONType, nullable=True),
        sa.ForeignKeyConstraint(["issue_id"], ["issue.id"], name=op.f("fk_issue_comment_issue_id_issue")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issue_comment")),
        sa.UniqueConstraint("issue_id", "comment_key", name=op.f("uq_issue_comment_issue_id_comment_key")),
    )
    with op.batch_alter_table("issue_comment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issue_comment_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_issue_comment_issue_id"), ["issue_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("issue_comment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issue_comment_issue_id"))
        batch_op.drop_index(batch_op.f("ix_issue_comment_created_at"))
    op.drop_table("issue_comment")
