"""The schema is only ever built by Alembic revisions, and they match the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
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


def _rows_after_upgrade(url: str, revision: str, inserts: list[str], query: str) -> list[tuple]:
    """Migrate to `revision`, write rows the old way, upgrade to head, and read back what the data migration made."""
    upgrade(url, revision)
    eng = make_engine(url)
    with eng.begin() as conn:
        for statement in inserts:
            conn.execute(text(statement))
    eng.dispose()
    upgrade(url)
    eng = make_engine(url)
    with eng.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(query))]
    eng.dispose()
    return rows


def test_node_count_revision_copies_each_models_count_onto_existing_runs(empty_db_url: str) -> None:
    rows = _rows_after_upgrade(empty_db_url, "0007_experiments_indexes", [
        "INSERT INTO campaign (id, name, kind, spec, environment, created_at) "
        "VALUES (1, 'old', 'live', '{}', '{}', '2026-01-01 00:00:00')",
        "INSERT INTO model (id, model_key, source, framework, name, params, node_count, created_at) "
        "VALUES (1, 'a', 's', 'torch', 'a', '{}', 7, '2026-01-01 00:00:00'), "
        "(2, 'b', 's', 'torch', 'b', '{}', NULL, '2026-01-01 00:00:00')",
        "INSERT INTO conversion_run (campaign_id, model_id, converter, converter_version, exporter, "
        "opset, input_seed, n_inputs, status, durations, finished_at) VALUES "
        "(1, 1, 'torch.onnx', '1', 'torchscript', 17, 0, 1, 'passed', '{}', '2026-01-01 00:00:00'), "
        "(1, 2, 'torch.onnx', '1', 'torchscript', 17, 0, 1, 'failed', '{}', '2026-01-01 00:00:00')",
    ], "SELECT model_id, node_count FROM conversion_run ORDER BY model_id")  # fmt: skip
    assert rows == [(1, 7), (2, None)]


def test_model_operator_revision_turns_each_models_operator_list_into_rows(empty_db_url: str) -> None:
    rows = _rows_after_upgrade(empty_db_url, "0008_run_node_count", [
        "INSERT INTO model (id, model_key, source, framework, name, params, operators, created_at) "
        "VALUES (1, 'a', 's', 'torch', 'a', '{}', '[\"Add\", \"Relu\", \"Add\"]', "
        "'2026-01-01 00:00:00'), (2, 'b', 's', 'torch', 'b', '{}', NULL, '2026-01-01 00:00:00'), "
        "(3, 'c', 's', 'torch', 'c', '{}', '{\"not\": \"a list\"}', '2026-01-01 00:00:00')",
    ], "SELECT model_id, operator FROM model_operator ORDER BY model_id, operator")  # fmt: skip
    assert rows == [(1, "Add"), (1, "Relu")]
