"""Fixtures every test uses: real databases on both backends, the shared study data, Label Studio."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from tests.support.databases import (
    copy_sqlite,
    postgres_problem,
    scratch_postgres_database,
    sqlite_url,
    truncate_all,
)
from tests.support.services import skip_or_fail

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("sqlite", "postgresql")

# Keep the user's interop.toml / .env out of the tests.
os.environ.setdefault("INTEROP_CONFIG", str(ROOT / "tests" / "support" / "empty-interop.toml"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# ... and the credentials of a server `interop labelstudio start` ran in this checkout.
os.environ.setdefault("INTEROP_STATE_DIR", tempfile.mkdtemp(prefix="interop-state-"))
os.environ.pop("INTEROP_READER_DATABASE_URL", None)


def _migrate(url: str) -> None:
    from db.migrate import upgrade

    upgrade(url, "head")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    _migrate(sqlite_url(path))
    return path


@pytest.fixture(scope="session")
def postgres_session_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the whole run, dropped at the end."""
    problem = postgres_problem()
    if problem:
        skip_or_fail(problem)
    with scratch_postgres_database() as url:
        _migrate(url)
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Runs the test once per database backend."""
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a clean database at schema head, on the backend of this test instance."""
    if backend == "sqlite":
        return copy_sqlite(request.getfixturevalue("sqlite_template"), tmp_path / "test.db")
    url = request.getfixturevalue("postgres_session_url")
    truncate_all(url)
    return url


@pytest.fixture
def empty_db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database (no schema at all), for migration tests."""
    if backend == "sqlite":
        yield sqlite_url(tmp_path / "empty.db")
        return
    problem = postgres_problem()
    if problem:
        skip_or_fail(problem)
    with scratch_postgres_database("interop_empty") as url:
        yield url


@pytest.fixture(scope="session")
def postgres_reader_url(postgres_session_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A reader role, made as `interop db create-reader` makes it, on the session database; dropped at the end."""
    from tests.support.readers import temporary_reader

    with temporary_reader(postgres_session_url, tmp_path_factory.mktemp("pgpass")) as url:
        yield url


@pytest.fixture
def reader_url(backend: str, db_url: str, request: pytest.FixtureRequest) -> str:
    """What user SQL runs with: the SQLite file itself (opened read-only), or the reader role on PostgreSQL."""
    return db_url if backend == "sqlite" else str(request.getfixturevalue("postgres_reader_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    from db.engine import make_engine

    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as s:
        yield s


@pytest.fixture
def configured_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Points INTEROP_DATABASE_URL at the test database, as a user would for the CLI."""
    monkeypatch.setenv("INTEROP_DATABASE_URL", db_url)
    return db_url


@pytest.fixture
def configured_reader(configured_db: str, reader_url: str, backend: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """INTEROP_READER_DATABASE_URL set as a team on PostgreSQL sets it (SQLite needs none)."""
    if backend == "postgresql":
        monkeypatch.setenv("INTEROP_READER_DATABASE_URL", reader_url)
    return reader_url


@pytest.fixture
def cli(configured_db: str):  # type: ignore[no-untyped-def]
    """Invoke `interop ARGS…` in-process against the test database; returns the click Result."""
    from typer.testing import CliRunner

    from cli.main import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's console 250 columns wide, so its tables print one line per row."""
    from cli.common import console

    monkeypatch.setattr(console, "width", 250)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` (study data, GitHub replays, codebook); skips cleanly where it is absent."""
    candidates = [os.environ.get("INTEROP_SHARED_DIR"), ROOT.parent / "shared", ROOT / "shared"]
    for cand in candidates:
        if cand and (Path(cand) / "data" / "paper-artifact").is_dir():
            return Path(cand)
    skip_or_fail("../shared (study data) is not beside this checkout; set INTEROP_SHARED_DIR")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def label_studio() -> Iterator[object]:
    """A started, real Label Studio server (own venv, throwaway data), stopped by PID at the end."""
    from tests.support.labelstudio import LabelStudioServer, LabelStudioUnavailable

    server = LabelStudioServer()
    try:
        server.start()
    except LabelStudioUnavailable as exc:
        skip_or_fail(str(exc).splitlines()[0])
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ls_client(label_studio):  # type: ignore[no-untyped-def]
    """A `label_studio_sdk.LabelStudio` client connected to the test server as its admin."""
    return label_studio.client()
