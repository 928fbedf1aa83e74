"""Migrated, isolated test databases on SQLite (temp files) and PostgreSQL (a database per test run)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from db.engine import normalize_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_admin_url() -> URL:
    """INTEROP_TEST_POSTGRES_URL, else this machine's trust-auth server."""
    return normalize_url(os.environ.get("INTEROP_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL)


def postgres_problem() -> str | None:
    """None when PostgreSQL answers, else why not (one line)."""
    try:
        eng = create_engine(postgres_admin_url(), connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(text("SELECT 1"))
        eng.dispose()
        return None
    except Exception as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()
        return f"PostgreSQL at {postgres_admin_url().render_as_string()} is unreachable: {first[0] if first else exc}"


@contextmanager
def scratch_postgres_database(prefix: str = "interop_test") -> Iterator[str]:
    """Create an empty database for the duration of the block, then drop it."""
    admin = postgres_admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    eng = create_engine(admin, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with eng.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        eng.dispose()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def copy_sqlite(template: Path, target: Path) -> str:
    """A fresh database file from a migrated template (much faster than migrating every test)."""
    shutil.copyfile(template, target)
    return sqlite_url(target)


def truncate_all(url: str) -> None:
    """Empty every table but alembic_version, so each PostgreSQL test starts clean."""
    from sqlmodel import SQLModel

    import db.models  # noqa: F401

    eng = create_engine(make_url(url))
    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    if names:
        with eng.begin() as conn:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    eng.dispose()
