"""PostgreSQL roles for tests: a reader made by `create_reader`, a table owner, a superuser.

Roles are cluster-wide and other people run tests on the same server at the same time, so every role has a
unique name and is dropped afterwards (with its grants, which DROP OWNED removes database by database)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from db.engine import normalize_url
from db.reader import create_reader, pg_conninfo


def unique_role(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def admin_exec(url: str | URL, statement: sql.Composable | str, autocommit: bool = True) -> None:
    with psycopg.connect(pg_conninfo(normalize_url(url)), autocommit=autocommit) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


def drop_role(admin_url: str | URL, role: str, databases: list[str] | None = None) -> None:
    """Drop `role` after removing what it owns or was granted in each database still there."""
    admin = normalize_url(admin_url)
    with psycopg.connect(pg_conninfo(admin), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
            return
        existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
    for database in [admin.database, *(databases or [])]:
        if database in existing:
            with psycopg.connect(pg_conninfo(admin.set(database=database)), autocommit=True) as conn:
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    admin_exec(admin, sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@contextmanager
def temporary_reader(admin_url: str | URL, passfile_dir: Path, prefix: str = "interop_reader") -> Iterator[str]:
    """A reader role on the database of `admin_url` (made the way `interop db create-reader` makes it)."""
    admin = normalize_url(admin_url)
    role = unique_role(prefix)
    setup = create_reader(admin, role, passfile=passfile_dir / f"{role}.pgpass")
    try:
        yield setup.url
    finally:
        drop_role(admin, role)


@contextmanager
def temporary_role(admin_url: str | URL, prefix: str, attributes: str = "") -> Iterator[str]:
    """A login role (`attributes` e.g. 'SUPERUSER'), dropped at the end; yields a URL of the admin's database
    connecting as it (with a password, so it works on servers that ask for one)."""
    admin = normalize_url(admin_url)
    role = unique_role(prefix)
    password = secrets.token_urlsafe(16)
    admin_exec(
        admin,
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} " + attributes).format(sql.Identifier(role), sql.Literal(password)),
    )
    try:
        yield admin.set(username=role, password=password).render_as_string(hide_password=False)
    finally:
        drop_role(admin, role)


def role_of(url: str | URL) -> str:
    return str(normalize_url(url).username)


@dataclass
class OwnedDatabase:
    """A scratch database whose tables belong to a non-superuser owner, who ran the migrations."""

    admin_url: str  # the test server's admin (a superuser), on this database
    owner_url: str
    database: str


@contextmanager
def owned_database(prefix: str = "interop_owned") -> Iterator[OwnedDatabase]:
    """Create an owner role and a database it owns, migrate it as the owner; drop both at the end."""
    from db.migrate import upgrade
    from tests.support.databases import postgres_admin_url, scratch_postgres_database

    with (  # the database goes first, then its owner
        temporary_role(postgres_admin_url(), f"{prefix}_owner") as owner_cluster_url,
        scratch_postgres_database(prefix) as admin_url,
    ):
        database = str(normalize_url(admin_url).database)
        admin_exec(
            admin_url,
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(database), sql.Identifier(role_of(owner_cluster_url))
            ),
        )
        owner_url = normalize_url(owner_cluster_url).set(database=database).render_as_string(hide_password=False)
        upgrade(owner_url, "head")
        yield OwnedDatabase(admin_url, owner_url, database)
