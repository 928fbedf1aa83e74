"""Engines and sessions: SQLite tuned for concurrent miners (WAL, FKs, busy timeout), PostgreSQL via psycopg 3."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlmodel import Session, create_engine

from db.config import ConfigError, get_settings
from db.masking import mask_url as _mask


def normalize_url(url: str | URL) -> URL:
    """Route plain `postgresql://` URLs to psycopg 3 (SQLAlchemy's default driver is psycopg2)."""
    try:
        parsed = make_url(url)
    except ValueError as exc:  # SQLAlchemy's int(port) on `host:abc`; ArgumentError is handled by the CLI
        port = re.search(r"invalid literal for int\(\) with base 10: ('.*')", str(exc))
        what = f"port {port.group(1)} is not a number" if port else " ".join(str(exc).split())
        raise ConfigError(f"the database URL {_mask(url)} cannot be used: {what}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def mask_url(url: str | URL) -> str:
    """The URL with every credential (password, secret query parameters) replaced by ***, safe to print and log."""
    if isinstance(url, str):
        with suppress(ConfigError, ArgumentError):  # an unusable URL is still shown masked, as written
            url = normalize_url(url)
    return _mask(url)


def _sqlite_pragmas(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Large GROUP BYs (the explorer's aggregates over millions of runs) sort with a helper thread.
        cursor.execute("PRAGMA threads=2")
        cursor.close()

    return on_connect


def make_engine(url: str | URL | None = None, **kwargs: object) -> Engine:
    """A new engine for `url` (default: the configured database), with per-backend connection setup."""
    settings = get_settings()
    parsed = normalize_url(url or settings.database_url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas(settings.sqlite_busy_timeout_ms))
        return engine
    return create_engine(parsed, pool_pre_ping=True, **kwargs)


@lru_cache(maxsize=8)
def get_engine(url: str | None = None) -> Engine:
    """A cached engine per URL, for long-lived processes (CLI commands, the app)."""
    return make_engine(url)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error (imports are all-or-nothing)."""
    with Session(engine or get_engine(get_settings().database_url)) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
