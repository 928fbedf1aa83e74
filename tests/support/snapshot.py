"""A digest of every table's content, to prove that a refused input changed nothing (a failed run's row aside)."""

from __future__ import annotations

import hashlib

from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import db.models  # noqa: F401  (registers every table on SQLModel.metadata)


def table_digests(engine: Engine, *, skip: tuple[str, ...] = ("ingest_run",)) -> dict[str, str]:
    """sha256 of each table's rows in primary-key order (plus the Alembic revision), keyed by table name."""
    out: dict[str, str] = {}
    with engine.connect() as conn:
        present = set(inspect(conn).get_table_names())
        for table in SQLModel.metadata.sorted_tables:
            if table.name in skip or table.name not in present:
                continue
            order = list(table.primary_key.columns) or list(table.columns)
            rows = conn.execute(select(table).order_by(*order)).all()
            out[table.name] = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
        if "alembic_version" in present:
            out["alembic_version"] = str(conn.execute(text("SELECT version_num FROM alembic_version")).all())
    return out


def new_ingest_runs(engine: Engine, before: int) -> list[tuple[str, str]]:
    """(kind, status) of the ingest_run rows added after id `before`."""
    from db.models.ingest import IngestRun

    with engine.connect() as conn:
        rows = conn.execute(select(IngestRun.kind, IngestRun.status).where(IngestRun.id > before)).all()
    return [(str(k), str(s)) for k, s in rows]


def last_ingest_run_id(engine: Engine) -> int:
    from sqlalchemy import func

    from db.models.ingest import IngestRun

    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(IngestRun.id), 0))).scalar_one())
