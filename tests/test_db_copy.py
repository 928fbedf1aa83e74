"""`interop db copy`: SQLite → PostgreSQL → SQLite keeps every table equal, refuses what it must not overwrite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from db.engine import make_engine
from tests.support.databases import copy_sqlite, postgres_problem, scratch_postgres_database
from tests.support.services import skip_or_fail
from tests.support.snapshot import sql_nulls, table_rows


@pytest.fixture
def postgres_target() -> Iterator[str]:
    """An empty PostgreSQL database migrated to the newest revision."""
    from db.migrate import upgrade

    problem = postgres_problem()
    if problem:
        skip_or_fail(problem)
    with scratch_postgres_database("interop_copy") as url:
        upgrade(url, "head")
        yield url


def _invoke(url: str, *args: str):  # type: ignore[no-untyped-def]
    """`interop ARGS` with INTEROP_DATABASE_URL=url, in-process."""
    from typer.testing import CliRunner

    from cli.main import app

    return CliRunner().invoke(app, list(args), env={"INTEROP_DATABASE_URL": url}, catch_exceptions=False)


@pytest.fixture
def seeded(sqlite_template: Path, tmp_path: Path, shared_dir: Path) -> str:
    """A SQLite database holding every kind of data (tests.support.seed.seed_every_kind)."""
    from tests.support.seed import seed_every_kind

    url = copy_sqlite(sqlite_template, tmp_path / "source.db")
    seed_every_kind(url, shared_dir, tmp_path)
    return url


def test_sqlite_to_postgresql_to_sqlite_keeps_every_table_equal(
    seeded: str, postgres_target: str, sqlite_template: Path, tmp_path: Path
) -> None:
    from db.copy import table_checksums

    there = _invoke(seeded, "db", "copy", "--to", postgres_target, "--batch", "7")
    assert there.exit_code == 0, there.output
    assert "row counts and checksums verified" in there.output and "sequences moved" in there.output
    back_url = copy_sqlite(sqlite_template, tmp_path / "back.db")
    back = _invoke(back_url, "db", "copy", "--from", postgres_target)
    assert back.exit_code == 0, back.output

    source, pg, final = (make_engine(u) for u in (seeded, postgres_target, back_url))
    try:
        original = table_rows(source)
        filled = {name for name, rows in original.items() if rows}
        kinds = {"survey_answer", "survey_definition", "issue_event", "coding_value", "final_label"}
        kinds |= {"adjudication_history", "conversion_run", "run_output", "ingest_run"}
        assert kinds <= filled, kinds - filled
        assert table_rows(pg) == original
        assert table_rows(final) == original
        assert sql_nulls(final) == sql_nulls(source) == sql_nulls(pg)
        assert table_checksums(seeded) == table_checksums(postgres_target) == table_checksums(back_url)

        # the sequences were moved past the copied ids: a new row takes the next id
        with pg.begin() as conn:
            top = conn.execute(text("SELECT max(id) FROM issue_event")).scalar_one()
            new = conn.execute(
                text(
                    "INSERT INTO issue_event (issue_id, event_key, event) "
                    "SELECT min(id), 'new', 'labeled' FROM issue RETURNING id"
                )
            ).scalar_one()
        assert new == top + 1
    finally:
        for eng in (source, pg, final):
            eng.dispose()


def _one_error(result) -> str:  # type: ignore[no-untyped-def]
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_refuses_a_target_that_holds_rows_and_writes_nothing(
    sqlite_template: Path, tmp_path: Path, postgres_target: str
) -> None:
    from tests.support.seed import seed_github

    url = copy_sqlite(sqlite_template, tmp_path / "a.db")
    engine = make_engine(postgres_target)
    seed_github(engine, issues_per_repo=2)
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM issue")).scalar_one()
    line = _one_error(_invoke(url, "db", "copy", "--to", postgres_target))
    assert "target database postgresql+psycopg://postgres" in line and "issue (4 rows)" in line
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM issue")).scalar_one() == before
    engine.dispose()


def test_refuses_a_revision_mismatch_and_a_target_without_schema(sqlite_template: Path, tmp_path: Path) -> None:
    from db.migrate import downgrade

    source = copy_sqlite(sqlite_template, tmp_path / "source.db")
    older = copy_sqlite(sqlite_template, tmp_path / "older.db")
    downgrade(older, "-1")
    line = _one_error(_invoke(source, "db", "copy", "--to", older))
    assert "the source at " in line and "interop db upgrade" in line
    line = _one_error(_invoke(source, "db", "copy", "--to", f"sqlite:///{tmp_path / 'blank.db'}"))
    assert "(no schema)" in line
    line = _one_error(_invoke(older, "db", "copy", "--to", source))
    assert "run `interop db upgrade` on it first" in line
    assert _one_error(_invoke(source, "db", "copy")).endswith("(copy it here)")
    assert "same database" in _one_error(_invoke(source, "db", "copy", "--to", source))
    assert inspect(make_engine(source)).get_table_names()
