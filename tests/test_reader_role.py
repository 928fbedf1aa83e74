"""`interop db create-reader` and the console's check that its PostgreSQL role can only read."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from cli.main import app
from db.engine import normalize_url
from db.reader import pg_conninfo, reader_problems
from db.readonly import UnsafeReader, run_read_only
from tests.support.databases import postgres_problem
from tests.support.readers import (
    OwnedDatabase,
    admin_exec,
    drop_role,
    owned_database,
    role_of,
    temporary_role,
    unique_role,
)
from tests.support.services import skip_or_fail


@pytest.fixture(scope="module")
def owned() -> Iterator[OwnedDatabase]:
    problem = postgres_problem()
    if problem:
        skip_or_fail(problem)
    with owned_database("interop_reader_test") as database:
        yield database


@pytest.fixture
def role(owned: OwnedDatabase) -> Iterator[str]:
    name = unique_role("interop_reader")
    yield name
    drop_role(owned.admin_url, name, [owned.database])


def interop(monkeypatch: pytest.MonkeyPatch, *args: str, input: str | None = None, **env: str) -> tuple[int, str]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)
    return result.exit_code, result.output


def printed_url(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("INTEROP_READER_DATABASE_URL=")).split("=", 1)[
        1
    ]


def test_create_reader_makes_a_role_that_can_only_read(
    owned: OwnedDatabase, role: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passfile = tmp_path / "pgpass"
    code, output = interop(
        monkeypatch,
        "db",
        "create-reader",
        "--name",
        role,
        "--passfile",
        str(passfile),
        "--statement-timeout",
        "30",
        INTEROP_DATABASE_URL=owned.admin_url,
    )
    assert code == 0, output
    assert f"reader role {role} created" in output and "future tables of" in output
    url = printed_url(output)
    assert normalize_url(url).username == role and normalize_url(url).password is None
    # the password is in the password file (mode 0600, where libpq finds it) and nowhere on the screen
    assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
    line = next(entry for entry in passfile.read_text().splitlines() if f":{role}:" in entry)
    password = line.rsplit(":", 1)[1]
    assert len(password) >= 24 and password not in output

    with psycopg.connect(pg_conninfo(normalize_url(owned.admin_url))) as conn:
        config = conn.execute("SELECT rolconfig FROM pg_roles WHERE rolname = %s", (role,)).fetchone()[0]  # type: ignore[index]
        assert "default_transaction_read_only=on" in config and "statement_timeout=30000" in config
        unreadable = conn.execute(
            """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm')
                 AND NOT has_table_privilege(%s, c.oid, 'SELECT')""",
            (role,),
        ).fetchall()
        assert unreadable == []
        assert not conn.execute("SELECT has_schema_privilege(%s, 'public', 'CREATE')", (role,)).fetchone()[0]  # type: ignore[index]
    with psycopg.connect(pg_conninfo(normalize_url(url))) as conn:
        assert reader_problems(conn) == []
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"  # type: ignore[index]

    # a table the owner adds later (a new migration) is readable through the default privileges
    admin_exec(owned.owner_url, "CREATE TABLE later_table (x int)")
    try:
        admin_exec(owned.owner_url, "INSERT INTO later_table VALUES (42)")
        assert run_read_only(url, "SELECT x FROM later_table").frame["x"].tolist() == [42]
    finally:
        admin_exec(owned.owner_url, "DROP TABLE later_table")

    # the console and `export query` use it
    code, output = interop(
        monkeypatch,
        "export",
        "query",
        "SELECT count(*) AS n FROM issue",
        "--out",
        str(tmp_path / "out"),
        INTEROP_DATABASE_URL=owned.owner_url,
        INTEROP_READER_DATABASE_URL=url,
    )
    assert code == 0, output

    # running it again brings the role back in line; the password changes unless kept
    code, output = interop(
        monkeypatch,
        "db",
        "create-reader",
        "--name",
        role,
        "--passfile",
        str(passfile),
        INTEROP_DATABASE_URL=owned.admin_url,
    )
    assert code == 0 and f"reader role {role} updated" in output
    assert password not in passfile.read_text()
    kept = passfile.read_text()
    code, output = interop(
        monkeypatch, "db", "create-reader", "--name", role, "--passfile", str(passfile), "--keep-password"
    )
    assert code == 0 and "left as it was" in output and passfile.read_text() == kept


def test_create_reader_takes_a_password_from_stdin(
    owned: OwnedDatabase, role: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passfile = tmp_path / "pgpass"
    code, output = interop(
        monkeypatch,
        "db",
        "create-reader",
        "--name",
        role,
        "--passfile",
        str(passfile),
        "--password-stdin",
        input="a-team-secret:with\\colon\n",
        INTEROP_DATABASE_URL=owned.admin_url,
    )
    assert code == 0, output
    assert "a-team-secret" not in output
    assert passfile.read_text().rstrip("\n").endswith(f":{role}:a-team-secret\\:with\\\\colon")


def test_create_reader_refusals(
    owned: OwnedDatabase, role: str, sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def error(*args: str, url: str) -> str:
        code, output = interop(monkeypatch, "db", "create-reader", *args, INTEROP_DATABASE_URL=url)
        lines = [line for line in output.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), output
        return lines[0]

    passfile = ("--passfile", str(tmp_path / "pgpass"))
    assert "is for PostgreSQL" in error(*passfile, url=f"sqlite:///{sqlite_template}")
    assert "use lowercase letters" in error("--name", "Robert'); DROP TABLE issue;--", *passfile, url=owned.admin_url)
    admin_role = role_of(owned.admin_url)
    assert "is the role of INTEROP_DATABASE_URL itself" in error("--name", admin_role, *passfile, url=owned.admin_url)
    with temporary_role(owned.admin_url, "interop_super", "SUPERUSER") as superuser_url:
        said = error("--name", role_of(superuser_url), *passfile, url=owned.admin_url)
        assert "already exists and is a superuser" in said
    # the owner may not create roles: it is told what it needs, and nothing is left half-made
    message = error("--name", role, *passfile, url=owned.owner_url)
    assert "may not set up a reader" in message and "CREATEROLE" in message
    with psycopg.connect(pg_conninfo(normalize_url(owned.admin_url))) as conn:
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None
    assert not (tmp_path / "pgpass").exists()


@pytest.fixture
def reader(owned: OwnedDatabase, role: str, tmp_path: Path) -> str:
    from db.reader import create_reader

    return create_reader(normalize_url(owned.admin_url), role, passfile=tmp_path / "pgpass").url


@pytest.mark.parametrize(
    ("grant", "revoke", "said"),
    [
        ("GRANT INSERT ON issue TO {r}", "REVOKE INSERT ON issue FROM {r}", r"may INSERT on public\.issue"),
        (
            "GRANT UPDATE (title) ON issue TO {r}",
            "REVOKE UPDATE (title) ON issue FROM {r}",
            r"may UPDATE on public\.issue",
        ),
        ("GRANT TRUNCATE ON ingest_run TO {r}", "REVOKE TRUNCATE ON ingest_run FROM {r}", "may TRUNCATE"),
        (
            "GRANT USAGE ON SEQUENCE issue_id_seq TO {r}",
            "REVOKE USAGE ON SEQUENCE issue_id_seq FROM {r}",
            r"may use or set sequence public\.issue_id_seq",
        ),
        ("GRANT CREATE ON SCHEMA public TO {r}", "REVOKE CREATE ON SCHEMA public FROM {r}", "may CREATE in schema"),
        ("GRANT CREATE ON DATABASE {db} TO {r}", "REVOKE CREATE ON DATABASE {db} FROM {r}", "may CREATE in database"),
        (
            "GRANT EXECUTE ON FUNCTION pg_read_file(text) TO {r}",
            "REVOKE EXECUTE ON FUNCTION pg_read_file(text) FROM {r}",
            r"may execute pg_read_file\(text\)",
        ),
        ("GRANT pg_write_all_data TO {r}", "REVOKE pg_write_all_data FROM {r}", "pg_write_all_data"),
        ("GRANT pg_read_server_files TO {r}", "REVOKE pg_read_server_files FROM {r}", "pg_read_server_files"),
        ("GRANT {owner} TO {r}", "REVOKE {owner} FROM {r}", "owns"),
        ("ALTER ROLE {r} CREATEDB", "ALTER ROLE {r} NOCREATEDB", "has CREATEDB"),
        ("ALTER ROLE {r} SUPERUSER", "ALTER ROLE {r} NOSUPERUSER", "is a superuser"),
        (
            "SELECT lo_from_bytea(4242424, 'x'); GRANT UPDATE ON LARGE OBJECT 4242424 TO {r}",
            "SELECT lo_unlink(4242424)",
            "may write large object 4242424",
        ),
    ],
)
def test_console_refuses_a_role_that_could_do_more_than_read(
    owned: OwnedDatabase, reader: str, grant: str, revoke: str, said: str
) -> None:
    names = {
        "r": sql.Identifier(role_of(reader)).as_string(None),
        "owner": sql.Identifier(role_of(owned.owner_url)).as_string(None),
        "db": sql.Identifier(owned.database).as_string(None),
    }
    assert run_read_only(reader, "SELECT count(*) AS n FROM issue").row_count == 1
    admin_exec(owned.admin_url, grant.format(**names))
    try:
        with pytest.raises(
            UnsafeReader, match=rf"^refused: the SQL console's PostgreSQL role '{role_of(reader)}' .*{said}"
        ):
            run_read_only(reader, "SELECT 1")
    finally:
        admin_exec(owned.admin_url, revoke.format(**names))
    assert run_read_only(reader, "SELECT 1 AS one").frame["one"].tolist() == [1]


def test_interop_info_names_the_reader_without_its_password(
    owned: OwnedDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = normalize_url(owned.admin_url).set(username="someone", password="hunter2-secret")
    code, output = interop(
        monkeypatch,
        "info",
        INTEROP_DATABASE_URL=owned.owner_url,
        INTEROP_READER_DATABASE_URL=reader.render_as_string(hide_password=False),
    )
    assert code == 0 and "SQL console reader" in output and "someone:***@" in output
    assert "hunter2-secret" not in output
    monkeypatch.delenv("INTEROP_READER_DATABASE_URL")
    code, output = interop(monkeypatch, "info")
    assert "not set: the SQL console refuses" in output


@pytest.mark.parametrize(
    ("reader", "said"),
    [("notaurl", "INTEROP_READER_DATABASE_URL is not a usable database URL"), ("mysql://u@h/db", "not mysql")],
)
def test_a_reader_url_that_cannot_be_used_is_one_error_line(
    reader: str, said: str, sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = interop(
        monkeypatch,
        "export",
        "query",
        "SELECT 1",
        "--out",
        str(tmp_path / "out"),
        INTEROP_DATABASE_URL=f"sqlite:///{sqlite_template}",
        INTEROP_READER_DATABASE_URL=reader,
    )
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and said in lines[0], output
    code, output = interop(monkeypatch, "info")
    assert code == 0 and ("not a usable database URL" in output or "mysql" in output)
