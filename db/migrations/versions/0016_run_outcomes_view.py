"""view run_outcomes: one row per conversion run with its model, converter, opsets, outcome, stage and durations

Revision ID: 0016_run_outcomes_view
Revises: 0014_survey_definition
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_run_outcomes_view"
down_revision: str | Sequence[str] | None = "0015_issue_codes_view"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the pipeline's stages as of this revision (a `<stage>_s` column each: seconds, NULL where it did not run)
STAGES = ("generate", "load", "export", "onnx_check", "ort_session", "ort_run", "compare")


def _json_text(column: str, key: str, dialect: str) -> str:
    if dialect == "postgresql":
        return f"({column} ->> '{key}')"
    return f"json_extract({column}, '$.{key}')"


def _json_float(column: str, key: str, dialect: str) -> str:
    if dialect == "postgresql":
        return f"CAST({column} ->> '{key}' AS DOUBLE PRECISION)"
    return f"CAST(json_extract({column}, '$.{key}') AS REAL)"


def view_sql(dialect: str) -> str:
    """The view's SELECT for `dialect` (JSON is read with ->> on PostgreSQL, json_extract on SQLite)."""
    stages = [f"{_json_float('r.durations', s, dialect)} AS {s}_s" for s in STAGES]
    total = " + ".join(f"COALESCE({_json_float('r.durations', s, dialect)}, 0)" for s in STAGES)
    return f"""
SELECT
    r.id AS run_id,
    c.name AS campaign,
    c.kind AS campaign_kind,
    m.id AS model_id,
    m.name AS model,
    m.source AS source,
    m.framework AS framework,
    {_json_text("m.resolved_params", "kind", dialect)} AS model_kind,
    r.node_count AS node_count,
    r.converter AS converter,
    r.converter_version AS converter_version,
    r.exporter AS exporter,
    r.registry_name AS registry_name,
    r.opset AS requested_opset,
    r.produced_opset AS produced_opset,
    r.input_seed AS input_seed,
    r.n_inputs AS n_inputs,
    r.status AS outcome,
    r.stage AS stage,
    r.error_class AS error_class,
    r.atol AS atol,
    r.rtol AS rtol,
    r.peak_rss_mb AS peak_rss_mb,
    {", ".join(stages)},
    {total} AS total_s,
    r.finished_at AS finished_at
FROM conversion_run r
JOIN campaign c ON c.id = r.campaign_id
JOIN model m ON m.id = r.model_id
"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(f"CREATE VIEW run_outcomes AS {view_sql(dialect)}")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS run_outcomes")
