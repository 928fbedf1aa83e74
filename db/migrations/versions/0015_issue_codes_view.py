"""view issue_codes: one row per coded item × dimension × coder, and one per final label

Revision ID: 0015_issue_codes_view
Revises: 0014_survey_definition
Create Date: 2026-11-30 00:30:00.000000

The SQL is frozen here (a revision never imports code that changes later); `db/models/views.py` describes
the same columns for reads. A later revision that rebuilds a table the view reads (`coding`, `final_label`,
`label_item`, …) drops the view first and creates it again afterwards.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015_issue_codes_view"
down_revision: str | Sequence[str] | None = "0014_survey_definition"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ITEM = """
    lr.name AS round,
    li.id AS item_id,
    li.kind AS item_kind,
    li.ref AS item_ref,
    li.issue_id AS issue_id,
    r.full_name AS repository,
    i.number AS issue_number,
    d.key AS dimension,
    d.position AS dimension_position"""

JOINS = """
    JOIN label_item li ON li.id = {alias}.item_id
    LEFT JOIN issue i ON i.id = li.issue_id
    LEFT JOIN repository r ON r.id = i.repository_id"""

ISSUE_CODES = f"""
CREATE VIEW issue_codes AS
SELECT {ITEM},
    'coding' AS value_source,
    cd.name AS coder,
    NULL AS decided_by,
    cc.code AS code,
    cc.label AS label,
    COALESCE(c.updated_at, c.created_at, c.stored_at) AS coded_at
FROM coding_value cv
    JOIN coding c ON c.id = cv.coding_id
    JOIN label_round lr ON lr.id = c.round_id
    JOIN coder cd ON cd.id = c.coder_id{JOINS.format(alias="c")}
    JOIN codebook_dimension d ON d.id = cv.dimension_id
    JOIN codebook_code cc ON cc.id = cv.code_id
WHERE c.valid
UNION ALL
SELECT {ITEM},
    'final' AS value_source,
    NULL AS coder,
    f.decided_by AS decided_by,
    cc.code AS code,
    cc.label AS label,
    f.decided_at AS coded_at
FROM final_label f
    JOIN label_round lr ON lr.id = f.round_id{JOINS.format(alias="f")}
    JOIN codebook_dimension d ON d.id = f.dimension_id
    JOIN codebook_code cc ON cc.id = f.code_id
"""


def upgrade() -> None:
    op.execute(ISSUE_CODES)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS issue_codes")
