"""The schema is only ever built by Alembic revisions, and they match the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import db.models  # noqa: F401
from db.engine import make_engine
from db.migrate import current_revision, downgrade, head_revision, upgrade


def _tables(url: str) -> set[str]:
    eng = make_engine(url)
    try:
        return set(inspect(eng).get_table_names()) - {"alembic_version"}
    finally:
        eng.dispose()


def test_upgrade_from_empty_then_base_then_head_again(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    model_tables = {t.name for t in SQLModel.metadata.sorted_tables}
    assert _tables(empty_db_url) == model_tables
    downgrade(empty_db_url, "base")
    assert _tables(empty_db_url) == set()
    upgrade(empty_db_url)
    assert _tables(empty_db_url) == model_tables
    eng = make_engine(empty_db_url)
    assert current_revision(eng) == head_revision()
    eng.dispose()


def test_autogenerate_finds_no_difference_between_models_and_revisions(empty_db_url: str) -> None:
    upgrade(empty_db_url)
    eng = make_engine(empty_db_url)
    with eng.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, SQLModel.metadata)
    eng.dispose()
    assert diff == []


def test_there_is_exactly_one_head() -> None:
    from alembic.script import ScriptDirectory

    from db.migrate import alembic_config

    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1
