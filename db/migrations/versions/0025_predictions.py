"""predictions: a model's suggested code per round, item and dimension (prediction), kept apart from codings

Revision ID: 0025_predictions
Revises: 0024_comment_mining
Create Date: 2026-11-30 03:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import db.types


revision: str = "0025_predictions"
down_revision: str | Sequence[str] | None = "0024_comment_mining"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prediction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("dimension_id", sa.Integer(), nullable=False),
        sa.Column("code_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("model_version", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["code_id"], ["codebook_code.id"], name=op.f("fk_prediction_code_id_codebook_code")),
        sa.ForeignKeyConstraint(
            ["dimension_id"], ["codebook_dimension.id"], name=op.f("fk_prediction_dimension_id_codebook_dimension")
        ),
        sa.ForeignKeyConstraint(["item_id"], ["label_item.id"], name=op.f("fk_prediction_item_id_label_item")),
        sa.ForeignKeyConstraint(["round_id"], ["label_round.id"], name=op.f("fk_prediction_round_id_label_round")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prediction")),
        sa.UniqueConstraint(
            "round_id",
            "item_id",
            "dimension_id",
            "model_version",
            name=op.f("uq_prediction_round_id_item_id_dimension_id_model_version"),
        ),
    )
    with op.batch_alter_table("prediction", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prediction_dimension_id"), ["dimension_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_prediction_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_prediction_model_version"), ["model_version"], unique=False)
        batch_op.create_index(batch_op.f("ix_prediction_round_id"), ["round_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("prediction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prediction_round_id"))
        batch_op.drop_index(batch_op.f("ix_prediction_model_version"))
        batch_op.drop_index(batch_op.f("ix_prediction_item_id"))
        batch_op.drop_index(batch_op.f("ix_prediction_dimension_id"))

    op.drop_table("prediction")
