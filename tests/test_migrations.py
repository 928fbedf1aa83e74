"""The schema is only ever built by Alembic revisions, and they match the models exactly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
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
    rows = _rows_after_upgrade(
        empty_db_url,
        "0007_experiments_indexes",
        [
            "INSERT INTO campaign (id, name, kind, spec, environment, created_at) "
            "VALUES (1, 'old', 'live', '{}', '{}', '2026-01-01 00:00:00')",
            "INSERT INTO model (id, model_key, source, framework, name, params, node_count, created_at) "
            "VALUES (1, 'a', 's', 'torch', 'a', '{}', 7, '2026-01-01 00:00:00'), "
            "(2, 'b', 's', 'torch', 'b', '{}', NULL, '2026-01-01 00:00:00')",
            "INSERT INTO conversion_run (campaign_id, model_id, converter, converter_version, exporter, "
            "opset, input_seed, n_inputs, status, durations, finished_at) VALUES "
            "(1, 1, 'torch.onnx', '1', 'torchscript', 17, 0, 1, 'passed', '{}', '2026-01-01 00:00:00'), "
            "(1, 2, 'torch.onnx', '1', 'torchscript', 17, 0, 1, 'failed', '{}', '2026-01-01 00:00:00')",
        ],
        "SELECT model_id, node_count FROM conversion_run ORDER BY model_id",
    )
    assert rows == [(1, 7), (2, None)]


def test_model_operator_revision_turns_each_models_operator_list_into_rows(empty_db_url: str) -> None:
    rows = _rows_after_upgrade(
        empty_db_url,
        "0008_run_node_count",
        [
            "INSERT INTO model (id, model_key, source, framework, name, params, operators, created_at) "
            "VALUES (1, 'a', 's', 'torch', 'a', '{}', '[\"Add\", \"Relu\", \"Add\"]', "
            "'2026-01-01 00:00:00'), (2, 'b', 's', 'torch', 'b', '{}', NULL, '2026-01-01 00:00:00'), "
            "(3, 'c', 's', 'torch', 'c', '{}', '{\"not\": \"a list\"}', '2026-01-01 00:00:00')",
        ],
        "SELECT model_id, operator FROM model_operator ORDER BY model_id, operator",
    )
    assert rows == [(1, "Add"), (1, "Relu")]


_OLD_RUNS = [
    "INSERT INTO campaign (id, name, kind, spec, environment, created_at) VALUES "
    "(1, 'a', 'live', '{}', '{}', '2026-01-01 00:00:00'), (2, 'b', 'live', '{}', '{}', '2026-01-01 00:00:00')",
    "INSERT INTO model (id, model_key, source, framework, name, params, created_at) "
    "VALUES (1, 'm', 's', 'torch', 'm', '{}', '2026-01-01 00:00:00')",
    "INSERT INTO conversion_run (id, campaign_id, model_id, converter, converter_version, exporter, "
    "opset, input_seed, n_inputs, status, durations, finished_at) VALUES "
    "(1, 1, 1, 'torch.onnx', '1', 'torchscript', 17, 0, 1, 'passed', '{}', '2026-01-01 00:00:00'), "
    "(2, 2, 1, 'torch.onnx', '1', 'torchscript', 17, 1, 1, 'failed', '{}', '2026-01-01 00:00:00')",
    # outputs reference the runs: SQLite's table rebuild must keep them attached
    "INSERT INTO run_output (run_id, input_index, output_index, shape_match, dtype_match, n_elements, ref_nan, "
    "ref_inf, onnx_nan, onnx_inf, nonfinite_mismatch) VALUES (1, 0, 0, true, true, 4, 0, 0, 0, 0, 0)",
]
#: campaign 1's run (model 1, seed 0) again, under another campaign and id
_RUN = (
    "INSERT INTO conversion_run (id, campaign_id, model_id, converter, converter_version, exporter, opset, "
    "input_seed, n_inputs, status, durations, finished_at) VALUES ({id}, {campaign}, 1, 'torch.onnx', '1', "
    "'torchscript', 17, 0, 1, 'passed', '{{}}', '2026-01-01 00:00:00')"
)


def test_run_key_per_campaign_keeps_existing_runs_and_lets_a_second_campaign_store_the_same_run(
    empty_db_url: str,
) -> None:
    rows = _rows_after_upgrade(
        empty_db_url,
        "0010_ingest_run_process",
        _OLD_RUNS,
        "SELECT r.id, r.campaign_id, r.input_seed, r.status, o.n_elements FROM conversion_run r "
        "LEFT JOIN run_output o ON o.run_id = r.id ORDER BY r.id",
    )
    assert rows == [(1, 1, 0, "passed", 4), (2, 2, 1, "failed", None)]
    eng = make_engine(empty_db_url)
    try:
        with eng.begin() as conn:
            conn.execute(text(_RUN.format(id=3, campaign=2)))  # campaign 1's key, now stored by campaign 2 as well
        with pytest.raises(IntegrityError), eng.begin() as conn:
            conn.execute(text(_RUN.format(id=4, campaign=1)))  # within one campaign the key is still unique
    finally:
        eng.dispose()


def test_run_key_downgrade_refuses_runs_the_old_key_cannot_hold_then_goes_back(empty_db_url: str) -> None:
    _rows_after_upgrade(empty_db_url, "0010_ingest_run_process", _OLD_RUNS, "SELECT 1")
    downgrade(empty_db_url, "0011_run_key_per_campaign")  # later revisions are not what this test is about
    eng = make_engine(empty_db_url)
    try:
        with eng.begin() as conn:
            conn.execute(text(_RUN.format(id=3, campaign=2)))
        with pytest.raises(CommandError, match="1 run key"):
            downgrade(empty_db_url, "0010_ingest_run_process")
        assert current_revision(eng) == "0011_run_key_per_campaign"
        with eng.begin() as conn:
            conn.execute(text("DELETE FROM conversion_run WHERE campaign_id = 2 AND input_seed = 0"))
        downgrade(empty_db_url, "0010_ingest_run_process")
        assert current_revision(eng) == "0010_ingest_run_process"
        with pytest.raises(IntegrityError), eng.begin() as conn:
            conn.execute(text(_RUN.format(id=3, campaign=2)))  # the old key spans campaigns again
    finally:
        eng.dispose()


def test_run_provenance_revision_reads_kept_onnx_files_and_leaves_the_rest_unknown(empty_db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Runs whose produced model is kept get its opset, IR version and producer; the others stay NULL."""
    import onnx
    from onnx import TensorProto, helper

    location = tmp_path / "models" / "m"
    (location / "onnx").mkdir(parents=True)
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="pytorch")
    model.producer_version, model.ir_version = "2.13.0+cpu", 10
    onnx.save(model, str(location / "onnx" / "torch.onnx-dynamo-2.13.0+cpu-opset11.onnx"))
    (location / "onnx" / "torch.onnx-torchscript-2.13.0+cpu-opset11.onnx").write_bytes(b"damaged")
    run = (
        "INSERT INTO conversion_run (id, campaign_id, model_id, converter, converter_version, exporter, opset, "
        "input_seed, n_inputs, status, durations, finished_at) VALUES ({id}, {campaign}, {model}, '{conv}', "
        "'2.13.0+cpu', '{exp}', 11, 0, 1, 'passed', '{{}}', '2026-01-01 00:00:00')"
    )
    rows = _rows_after_upgrade(
        empty_db_url,
        "0011_run_key_per_campaign",
        [
            "INSERT INTO campaign (id, name, kind, spec, environment, created_at) VALUES "
            "(1, 'live', 'live', '{\"converters\": [\"torch.onnx-dynamo\", \"torch.onnx-torchscript\"]}', '{}', "
            "'2026-01-01 00:00:00'), (2, 'study', 'historical', '{}', '{}', '2026-01-01 00:00:00'), "
            "(3, 'other', 'live', '{\"converters\": [\"tf2onnx\"]}', '{}', '2026-01-01 00:00:00')",
            "INSERT INTO model (id, model_key, source, framework, name, params, location, created_at) VALUES "
            f"(1, 'a', 's', 'torch', 'a', '{{}}', '{location}', '2026-01-01 00:00:00'), "
            "(2, 'b', 's', 'torch', 'b', '{}', NULL, '2026-01-01 00:00:00')",
            run.format(id=1, campaign=1, model=1, conv="torch.onnx", exp="dynamo"),  # file kept: read
            run.format(id=2, campaign=1, model=1, conv="torch.onnx", exp="torchscript"),  # damaged file: unknown
            run.format(id=3, campaign=1, model=2, conv="torch.onnx", exp="dynamo"),  # no files at all: unknown
            run.format(id=4, campaign=2, model=1, conv="torch.onnx", exp="dynamo"),  # historical: no registry name
            run.format(id=5, campaign=3, model=1, conv="torch.onnx", exp="dynamo"),  # not in its spec: not guessed
        ],
        "SELECT id, registry_name, produced_opset, onnx_ir_version, onnx_producer, onnx_producer_version, "
        "onnx_path, parameters FROM conversion_run ORDER BY id",
    )
    kept = str(location / "onnx" / "torch.onnx-dynamo-2.13.0+cpu-opset11.onnx")
    assert rows == [
        (1, "torch.onnx-dynamo", 18, 10, "pytorch", "2.13.0+cpu", kept, None),
        (2, "torch.onnx-torchscript", None, None, None, None, None, None),
        (3, "torch.onnx-dynamo", None, None, None, None, None, None),
        (4, None, None, None, None, None, None, None),
        (5, None, None, None, None, None, None, None),
    ]
    downgrade(empty_db_url, "0011_run_key_per_campaign")  # and back: the columns go, the runs stay
    eng = make_engine(empty_db_url)
    try:
        with eng.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM conversion_run")).scalar() == 5
        assert "produced_opset" not in {c["name"] for c in inspect(eng).get_columns("conversion_run")}
    finally:
        eng.dispose()


def test_survey_definition_revision_keeps_stored_kinds_and_refuses_to_drop_definitions(empty_db_url: str) -> None:
    rows = _rows_after_upgrade(
        empty_db_url,
        "0011_run_key_per_campaign",
        [
            "INSERT INTO survey (id, name, exclusion_rules, created_at, updated_at) "
            "VALUES (1, 's', '[]', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
            "INSERT INTO survey_question (id, survey_id, qid, position, text, kind, kind_reason, choices, "
            "text_columns) VALUES (1, 1, 'Q1', 0, 'a', 'single', 'set in the overrides file', '[]', '{}'), "
            "(2, 1, 'Q2', 1, 'b', 'text', '3 distinct values in 3 answers (free text)', '[]', '{}')",
        ],
        "SELECT qid, kind_source, qtype, definition_id, parent_qid FROM survey_question ORDER BY qid",
    )
    assert rows == [("Q1", "overrides", None, None, None), ("Q2", "guessed", None, None, None)]
    eng = make_engine(empty_db_url)
    try:
        with eng.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO survey_definition (id, survey_id, version, content_hash, questions, spec, loaded_at) "
                    "VALUES (1, 1, 1, 'h', 3, '{}', '2026-01-01 00:00:00')"
                )
            )
        with pytest.raises(CommandError, match="surveys imported with a definition"):
            downgrade(empty_db_url, "0011_run_key_per_campaign")
        # Refused at 0014: the whole downgrade is one transaction on both backends, so nothing is undone.
        assert current_revision(eng) == head_revision()
        with eng.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM survey_definition")).scalar_one() == 1
            conn.execute(text("DELETE FROM survey_definition"))
        downgrade(empty_db_url, "0011_run_key_per_campaign")
        assert current_revision(eng) == "0011_run_key_per_campaign"
        with eng.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM survey_question")).scalar_one() == 2
    finally:
        eng.dispose()


def test_adjudication_history_starts_with_the_final_labels_already_stored(empty_db_url: str) -> None:
    rows = _rows_after_upgrade(
        empty_db_url,
        "0011_run_key_per_campaign",
        [
            "INSERT INTO codebook (id, name, created_at) VALUES (1, 'b', '2026-01-01 00:00:00')",
            "INSERT INTO codebook_version (id, codebook_id, version, content_hash, spec, loaded_at) "
            "VALUES (1, 1, 1, 'h', '{}', '2026-01-01 00:00:00')",
            "INSERT INTO codebook_dimension (id, version_id, key, position, required) VALUES (1, 1, 'cause', 0, true)",
            "INSERT INTO codebook_code (id, dimension_id, code, label, aliases, unused) "
            "VALUES (1, 1, 2, 'Incompatibility', '[]', false)",
            "INSERT INTO label_round (id, name, codebook_version_id, source, params, created_at) "
            "VALUES (1, 'r', 1, 'sheet', '{}', '2026-01-01 00:00:00')",
            "INSERT INTO label_item (id, kind, ref) VALUES (1, 'survey_answer', 'q1#1')",
            "INSERT INTO final_label (id, round_id, item_id, dimension_id, code_id, decided_by, detail, decided_at) "
            """VALUES (1, 1, 1, 1, 1, 'sheet', '{"file": "F.xlsx"}', '2026-02-03 04:05:06')""",
        ],
        "SELECT h.action, h.code_id, h.decided_by, h.previous_code_id, h.note, f.note, h.decided_at "
        "FROM adjudication_history h JOIN final_label f ON f.item_id = h.item_id",
    )
    assert [r[:6] for r in rows] == [("new", 1, "sheet", None, None, None)]
    assert str(rows[0][6]).startswith("2026-02-03 04:05:06")
    downgrade(empty_db_url, "0011_run_key_per_campaign")
    assert "adjudication_history" not in _tables(empty_db_url)


def test_run_outcomes_view_is_created_by_its_revision_and_dropped_by_its_downgrade(empty_db_url: str) -> None:
    upgrade(empty_db_url, "head")
    eng = make_engine(empty_db_url)
    try:
        assert "run_outcomes" in inspect(eng).get_view_names()
        with eng.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM run_outcomes")).scalar_one() == 0
        downgrade(empty_db_url, "0014_survey_definition")
        assert "run_outcomes" not in inspect(eng).get_view_names()
        upgrade(empty_db_url, "head")
        assert "run_outcomes" in inspect(eng).get_view_names()
    finally:
        eng.dispose()
