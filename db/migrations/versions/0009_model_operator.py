"""model_operator: each operator type a model contains, as rows, for per-operator analyses without JSON parsing

Revision ID: 0009_model_operator
Revises: 0008_run_node_count
Create Date: 2026-11-25 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009_model_operator"
down_revision: str | Sequence[str] | None = "0008_run_node_count"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_operator",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("operator", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["model.id"], name=op.f("fk_model_operator_model_id_model")),
        sa.PrimaryKeyConstraint("model_id", "operator", name=op.f("pk_model_operator")),
    )
    with op.batch_alter_table("model_operator", schema=None) as batch_op:
        batch_op.create_index("ix_model_operator_operator", ["operator", "model_id"], unique=False)
    # Existing models: one row per distinct string in their `operators` JSON list.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "INSERT INTO model_operator (model_id, operator) SELECT DISTINCT m.id, v.value FROM model m, "
            "jsonb_array_elements_text(CASE WHEN jsonb_typeof(m.operators) = 'array' THEN m.operators "
            "ELSE '[]'::jsonb END) AS v(value) WHERE v.value IS NOT NULL"
        )
    else:
        op.execute(
            "INSERT INTO model_operator (model_id, operator) SELECT DISTINCT m.id, j.value FROM model m, "
            "json_each(CASE WHEN json_type(m.operators) = 'array' THEN m.operators ELSE '[]' END) AS j "
            "WHERE j.type = 'text'"
        )


def downgrade() -> None:
    with op.batch_alter_table("model_operator", schema=None) as batch_op:
        batch_op.drop_index("ix_model_operator_operator")
    op.drop_table("model_operator")
