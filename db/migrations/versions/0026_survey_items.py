"""survey items: free-text survey answers as label items, multi-label codebook dimensions (several codes per coding and final label), coders' proposed codes

Revision ID: 0026_survey_items
Revises: 0025_predictions
Create Date: 2026-11-30 03:30:00.000000
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0026_survey_items"
down_revision: str | Sequence[str] | None = "0025_predictions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _issue_codes_sql() -> str:
    """The view's frozen SQL from revision 0015 (these tables are rebuilt on SQLite, so the view is recreated)."""
    spec = importlib.util.spec_from_file_location(
        "_issue_codes_0015", Path(__file__).with_name("0015_issue_codes_view.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.ISSUE_CODES)


def upgrade() -> None:
    op.execute("DROP VIEW IF EXISTS issue_codes")
    with op.batch_alter_table("codebook_dimension", schema=None) as batch_op:
        batch_op.add_column(sa.Column("multi", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("coding", schema=None) as batch_op:
        batch_op.add_column(sa.Column("proposals", db.types.JSONType, nullable=True))
    with op.batch_alter_table("label_item", schema=None) as batch_op:
        batch_op.add_column(sa.Column("survey_answer_id", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(op.f("uq_label_item_survey_answer_id"), ["survey_answer_id"])
        batch_op.create_foreign_key(
            op.f("fk_label_item_survey_answer_id_survey_answer"), "survey_answer", ["survey_answer_id"], ["id"]
        )
    with op.batch_alter_table("coding_value", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_coding_value_coding_id_dimension_id"), type_="unique")
        batch_op.create_unique_constraint(
            op.f("uq_coding_value_coding_id_dimension_id_code_id"), ["coding_id", "dimension_id", "code_id"]
        )
    with op.batch_alter_table("final_label", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_final_label_round_id_item_id_dimension_id"), type_="unique")
        batch_op.create_unique_constraint(
            op.f("uq_final_label_round_id_item_id_dimension_id_code_id"),
            ["round_id", "item_id", "dimension_id", "code_id"],
        )
    op.execute(_issue_codes_sql())


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS issue_codes")
    # several codes per dimension cannot be kept under the old keys: only the lowest code id of each stays
    op.execute(
        "DELETE FROM coding_value WHERE id NOT IN (SELECT min(id) FROM coding_value GROUP BY coding_id, dimension_id)"
    )
    op.execute(
        "DELETE FROM final_label WHERE id NOT IN "
        "(SELECT min(id) FROM final_label GROUP BY round_id, item_id, dimension_id)"
    )
    with op.batch_alter_table("final_label", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_final_label_round_id_item_id_dimension_id_code_id"), type_="unique")
        batch_op.create_unique_constraint(
            op.f("uq_final_label_round_id_item_id_dimension_id"), ["round_id", "item_id", "dimension_id"]
        )
    with op.batch_alter_table("coding_value", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_coding_value_coding_id_dimension_id_code_id"), type_="unique")
        batch_op.create_unique_constraint(op.f("uq_coding_value_coding_id_dimension_id"), ["coding_id", "dimension_id"])
    with op.batch_alter_table("label_item", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_label_item_survey_answer_id_survey_answer"), type_="foreignkey")
        batch_op.drop_constraint(op.f("uq_label_item_survey_answer_id"), type_="unique")
        batch_op.drop_column("survey_answer_id")
    with op.batch_alter_table("coding", schema=None) as batch_op:
        batch_op.drop_column("proposals")
    with op.batch_alter_table("codebook_dimension", schema=None) as batch_op:
        batch_op.drop_column("multi")
    op.execute(_issue_codes_sql())
