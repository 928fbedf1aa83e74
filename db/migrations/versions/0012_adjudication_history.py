"""adjudication_history (every decision on a final label, with the previous value) and final_label.note

Revision ID: 0012_adjudication_history
Revises: 0011_run_key_per_campaign
Create Date: 2026-11-29 20:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import db.types

revision: str = "0012_adjudication_history"
down_revision: str | Sequence[str] | None = "0011_run_key_per_campaign"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "adjudication_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("dimension_id", sa.Integer(), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("code_id", sa.Integer(), nullable=True),
        sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("previous_code_id", sa.Integer(), nullable=True),
        sa.Column("previous_decided_by", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("previous_note", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("detail", db.types.JSONType, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", db.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "(action = 'new') = (previous_code_id IS NULL)", name=op.f("ck_adjudication_history_new_has_no_previous")
        ),
        sa.CheckConstraint(
            "(action = 'withdrawn') = (code_id IS NULL)", name=op.f("ck_adjudication_history_withdrawn_has_no_code")
        ),
        sa.CheckConstraint(
            "action IN ('new', 'changed', 'withdrawn')", name=op.f("ck_adjudication_history_action_known")
        ),
        sa.ForeignKeyConstraint(
            ["code_id"], ["codebook_code.id"], name=op.f("fk_adjudication_history_code_id_codebook_code")
        ),
        sa.ForeignKeyConstraint(
            ["dimension_id"],
            ["codebook_dimension.id"],
            name=op.f("fk_adjudication_history_dimension_id_codebook_dimension"),
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["label_item.id"], name=op.f("fk_adjudication_history_item_id_label_item")
        ),
        sa.ForeignKeyConstraint(
            ["previous_code_id"],
            ["codebook_code.id"],
            name=op.f("fk_adjudication_history_previous_code_id_codebook_code"),
        ),
        sa.ForeignKeyConstraint(
            ["round_id"], ["label_round.id"], name=op.f("fk_adjudication_history_round_id_label_round")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["ingest_run.id"], name=op.f("fk_adjudication_history_run_id_ingest_run")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adjudication_history")),
    )
    with op.batch_alter_table("adjudication_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_adjudication_history_dimension_id"), ["dimension_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_adjudication_history_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_adjudication_history_round_id"), ["round_id"], unique=False)

    with op.batch_alter_table("final_label", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=True))

    # The final labels already stored are their own first decision: the history starts complete.
    op.execute(
        "INSERT INTO adjudication_history (round_id, item_id, dimension_id, action, code_id, decided_by, detail, "
        "decided_at) SELECT round_id, item_id, dimension_id, 'new', code_id, decided_by, detail, decided_at "
        "FROM final_label ORDER BY id"
    )


def downgrade() -> None:
    with op.batch_alter_table("final_label", schema=None) as batch_op:
        batch_op.drop_column("note")

    with op.batch_alter_table("adjudication_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_adjudication_history_round_id"))
        batch_op.drop_index(batch_op.f("ix_adjudication_history_item_id"))
        batch_op.drop_index(batch_op.f("ix_adjudication_history_dimension_id"))

    op.drop_table("adjudication_history")
