"""`interop export --format sql`: a dump per dialect that the stock client loads into an empty database, equal."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from db.engine import make_engine
from tests.support.databases import postgres_problem, scratch_postgres_database
from tests.support.databases import sqlite_url as sqlite_template_url
from tests.support.services import skip_or_fail
from tests.support.snapshot import schema_of, sql_nulls, table_rows


@pytest.fixture
def seeded(db_url: str, shared_dir: Path, tmp_path: Path) -> str:
    from tests.support.seed import seed_every_kind

    seed_every_kind(db_url, shared_dir, tmp_path)
    return db_url


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    problem = postgres_problem()
    if problem:
        skip_or_fail(problem)
    with scratch_postgres_database("interop_dump") as url:
        yield url


def _export(url: str, out: Path, *args: str) -> Path:
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(
        app, ["export", "--format", "sql", "--out", str(out), *args], env={"INTEROP_DATABASE_URL": url}
    )
    assert result.exit_code == 0, result.output
    assert "load it into an empty database with: " in result.output
    (dump,) = out.glob("*.sql")
    return dump


def _load_sqlite(dump: Path, target: Path) -> str:
    if shutil.which("sqlite3") is None:
        skip_or_fail("the stock sqlite3 client is not installed (Debian: apt-get install sqlite3)")
    with dump.open("rb") as handle:
        subprocess.run(["sqlite3", "-bail", str(target)], stdin=handle, check=True, capture_output=True)
    return f"sqlite:///{target}"


def _load_postgres(dump: Path, url: str) -> str:
    parsed = make_url(url)
    command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(parsed.host), "-p", str(parsed.port or 5432)]
    command += ["-U", str(parsed.username), "-d", str(parsed.database), "-f", str(dump)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    assert done.stdout == "", done.stdout  # nothing printed: the sequence moves are a DO block
    return url


def test_dump_round_trips_through_the_stock_clients_on_both_backends(
    seeded: str, empty_postgres: str, tmp_path: Path, sqlite_template: Path, postgres_session_url: str
) -> None:
    from db.copy import table_checksums
    from db.migrate import current_revision, head_revision

    sqlite_dump = _export(seeded, tmp_path / "s", "--dialect", "sqlite")
    assert sqlite_dump.name == "interop-export.sqlite.sql"
    pg_dump = _export(seeded, tmp_path / "p", "--dialect", "postgresql")
    assert "CREATE TABLE" in pg_dump.read_text() and "JSONB" in pg_dump.read_text()
    loaded = [_load_sqlite(sqlite_dump, tmp_path / "loaded.db"), _load_postgres(pg_dump, empty_postgres)]

    source = make_engine(seeded)
    original, nulls = table_rows(source), sql_nulls(source)
    source.dispose()
    assert sum(map(len, original.values())) > 1000
    for url in loaded:
        engine = make_engine(url)
        assert current_revision(engine) == head_revision()
        assert table_rows(engine) == original
        assert sql_nulls(engine) == nulls
        engine.dispose()
        assert table_checksums(url) == table_checksums(seeded)

    # the loaded schema is the migrated one, constraint and index names included
    migrated = {"sqlite": sqlite_template_url(sqlite_template), "postgresql": postgres_session_url}
    for url in loaded:
        engine, reference = make_engine(url), make_engine(migrated[make_url(url).get_backend_name()])
        assert schema_of(engine) == schema_of(reference)
        engine.dispose()
        reference.dispose()

    # the loaded PostgreSQL database is usable as it is: its sequences continue past the dumped ids
    engine = make_engine(empty_postgres)
    with engine.begin() as conn:
        top = conn.execute(text("SELECT max(id) FROM issue_event")).scalar_one()
        new = conn.execute(
            text(
                "INSERT INTO issue_event (issue_id, event_key, event) SELECT min(id), 'n', 'x' FROM issue RETURNING id"
            )
        ).scalar_one()
    engine.dispose()
    assert new == top + 1


def test_dialect_needs_format_sql_and_a_known_name(cli) -> None:  # type: ignore[no-untyped-def]
    wrong = cli("export", "--format", "csv", "--dialect", "sqlite")
    assert wrong.exit_code == 2 and wrong.output.strip() == "error: --dialect goes with --format sql"
    unknown = cli("export", "--format", "sql", "--dialect", "mysql")
    assert unknown.exit_code == 2
    assert unknown.output.strip() == "error: unknown --dialect 'mysql': choose one of sqlite, postgresql"
