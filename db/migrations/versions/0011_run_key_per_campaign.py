"""conversion_run key per campaign: two campaigns that plan the same run each store their own

Revision ID: 0011_run_key_per_campaign
Revises: 0010_ingest_run_process
Create Date: 2026-11-26 10:00:00.000000
"""

from collections.abc import Sequence

from alembic import op
from alembic.util import CommandError

revision: str = "0011_run_key_per_campaign"
down_revision: str | Sequence[str] | None = "0010_ingest_run_process"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KEY = ["model_id", "converter", "converter_version", "exporter", "opset", "input_seed"]
NEW_KEY = ["campaign_id", *OLD_KEY]


def upgrade() -> None:
    # Every stored run is unique under the old key, so it is unique under the wider one too: no data changes.
    with op.batch_alter_table("conversion_run", schema=None) as batch_op:
        batch_op.drop_constraint("uq_conversion_run_key", type_="unique")
        batch_op.create_unique_constraint("uq_conversion_run_key", NEW_KEY)


def downgrade() -> None:
    shared = (
        op.get_bind()
        .exec_driver_sql(
            f"SELECT count(*) FROM (SELECT 1 FROM conversion_run GROUP BY {', '.join(OLD_KEY)} "
            "HAVING count(*) > 1) AS dup"
        )
        .scalar()
    )
    if shared:
        raise CommandError(
            f"cannot go below 0011_run_key_per_campaign: {shared} run key(s) are stored by more "
            "than one campaign, which the older schema cannot hold; delete one campaign's runs first"
        )
    with op.batch_alter_table("conversion_run", schema=None) as batch_op:
        batch_op.drop_constraint("uq_conversion_run_key", type_="unique")
        batch_op.create_unique_constraint("uq_conversion_run_key", OLD_KEY)
