"""comment mining: deleted comments, when an issue's comments were last fully listed, the comment stream cursor

Revision ID: 0024_comment_mining
Revises: 0023_sheet_item_text
Create Date: 2026-11-30 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import db.types

revision: str = "0024_comment_mining"
down_revision: str | Sequence[str] | None = "0023_sheet_item_text"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "github_comment_cursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("since", db.types.UTCDateTime(), nullable=True),
        sa.Column("etag", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("last_run_at", db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["repository_id"], ["repository.id"], name=op.f("fk_github_comment_cursor_repository_id_repository")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_github_comment_cursor")),
        sa.UniqueConstraint("repository_id", name=op.f("uq_github_comment_cursor_repository_id")),
    )
    # plain ADD COLUMN (nullable): a batch rebuild of `issue` would break the views that read it on SQLite
    op.add_column("issue_comment", sa.Column("deleted_at", db.types.UTCDateTime(), nullable=True))
    op.add_column("issue", sa.Column("comments_listed_at", db.types.UTCDateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("issue", "comments_listed_at")  # SQLite >= 3.35 drops a plain column in place
    op.drop_column("issue_comment", "deleted_at")
    op.drop_table("github_comment_cursor")
