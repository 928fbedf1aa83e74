"""survey definitions (.qsf, versioned), definition facts per question, numeric answers, derived values

Revision ID: 0014_survey_definition
Revises: 0013_run_provenance
Create Date: 2026-11-29 20:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import db.types

revision: str = "0014_survey_definition"
down_revision: str | Sequence[str] | None = "0013_run_provenance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "survey_definition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("qualtrics_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("questions", sa.Integer(), nullable=False),
        sa.Column("spec", db.types.JSONType, nullable=False),
        sa.Column("loaded_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["survey_id"], ["survey.id"], name=op.f("fk_survey_definition_survey_id_survey")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_definition")),
        sa.UniqueConstraint("survey_id", "content_hash", name=op.f("uq_survey_definition_survey_id_content_hash")),
        sa.UniqueConstraint("survey_id", "version", name=op.f("uq_survey_definition_survey_id_version")),
    )
    with op.batch_alter_table("survey_definition", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_survey_definition_survey_id"), ["survey_id"], unique=False)

    with op.batch_alter_table("survey", schema=None) as batch_op:
        batch_op.add_column(sa.Column("export_layout", db.types.JSONType, nullable=True))

    # New NOT NULL columns arrive nullable, are filled for the rows already stored, then tightened.
    with op.batch_alter_table("survey_question", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind_source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column("qtype", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column("definition_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("parent_qid", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
        batch_op.add_column(sa.Column("details", db.types.JSONType, nullable=True))
    # Kinds stored before definitions existed came from the overrides file or were guessed from the answers.
    op.execute(
        "UPDATE survey_question SET kind_source = CASE WHEN kind_reason = 'set in the overrides file' "
        "THEN 'overrides' ELSE 'guessed' END"
    )
    op.execute("UPDATE survey_question SET details = '{}'")
    with op.batch_alter_table("survey_question", schema=None) as batch_op:
        batch_op.alter_column("kind_source", existing_type=sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False)
        batch_op.alter_column("details", existing_type=db.types.JSONType, nullable=False)
        batch_op.create_index(batch_op.f("ix_survey_question_definition_id"), ["definition_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_survey_question_definition_id_survey_definition"),
            "survey_definition",
            ["definition_id"],
            ["id"],
        )

    with op.batch_alter_table("survey_answer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("value", sa.Float(), nullable=True))

    op.create_table(
        "survey_derived_value",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["question_id"], ["survey_question.id"], name=op.f("fk_survey_derived_value_question_id_survey_question")
        ),
        sa.ForeignKeyConstraint(
            ["response_id"], ["survey_response.id"], name=op.f("fk_survey_derived_value_response_id_survey_response")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_derived_value")),
        sa.UniqueConstraint(
            "response_id", "question_id", "name", name=op.f("uq_survey_derived_value_response_id_question_id_name")
        ),
    )
    with op.batch_alter_table("survey_derived_value", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_survey_derived_value_question_id"), ["question_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_survey_derived_value_response_id"), ["response_id"], unique=False)


def downgrade() -> None:
    # Below this revision a survey has no definition and answers are choices or text only: numbers, ranks and
    # derived values have nowhere to go. Refuse rather than drop them silently.
    bind = op.get_bind()
    kept = bind.exec_driver_sql(
        "SELECT (SELECT count(*) FROM survey_definition) + (SELECT count(*) FROM survey_derived_value) + "
        "(SELECT count(*) FROM survey_answer WHERE value IS NOT NULL) + "
        "(SELECT count(*) FROM survey_question WHERE kind NOT IN ('single', 'multi', 'text'))"
    ).scalar()
    if kept:
        from alembic.util import CommandError

        raise CommandError(
            "cannot go below 0014_survey_definition: surveys imported with a definition (.qsf) are stored; "
            "delete those surveys first (their definitions, numeric answers and derived values need this schema)"
        )
    with op.batch_alter_table("survey_derived_value", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_derived_value_response_id"))
        batch_op.drop_index(batch_op.f("ix_survey_derived_value_question_id"))
    op.drop_table("survey_derived_value")
    with op.batch_alter_table("survey_answer", schema=None) as batch_op:
        batch_op.drop_column("value")
    with op.batch_alter_table("survey_question", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_survey_question_definition_id_survey_definition"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_survey_question_definition_id"))
        batch_op.drop_column("details")
        batch_op.drop_column("parent_qid")
        batch_op.drop_column("definition_id")
        batch_op.drop_column("qtype")
        batch_op.drop_column("kind_source")
    with op.batch_alter_table("survey", schema=None) as batch_op:
        batch_op.drop_column("export_layout")
    with op.batch_alter_table("survey_definition", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_definition_survey_id"))
    op.drop_table("survey_definition")
