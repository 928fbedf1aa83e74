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


def table_rows(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every table's rows in primary-key order, read through the models' types (aware times, parsed JSON)."""
    out = {}
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            order = list(table.primary_key.columns) or list(table.columns)
            out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*order))]
    return out


def sql_nulls(engine: Engine) -> dict[str, int]:
    """Per JSON column, how many rows hold SQL NULL (as opposed to JSON `null`)."""
    from db.copy import json_columns, typed_tables

    out = {}
    with engine.connect() as conn:
        for table in typed_tables():
            for name in json_columns(table):
                out[f"{table.name}.{name}"] = conn.execute(
                    text(f'SELECT count(*) FROM "{table.name}" WHERE "{name}" IS NULL')
                ).scalar_one()
    return out


def schema_of(engine: Engine) -> dict[str, dict[str, object]]:
    """Each table's columns (name, type, nullable; in any order), primary key, unique constraints, indexes and
    foreign keys, with their names: two databases with equal schemas give equal results."""
    found = inspect(engine)
    out: dict[str, dict[str, object]] = {}
    for name in sorted(found.get_table_names()):
        out[name] = {
            "columns": sorted((c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(name)),
            "pk": found.get_pk_constraint(name)["constrained_columns"],
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in found.get_unique_constraints(name)),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in found.get_indexes(name)
            ),
            "fks": sorted(
                (f["name"], tuple(f["constrained_columns"]), f["referred_table"], f["options"].get("ondelete"))
                for f in found.get_foreign_keys(name)
            ),
        }
    return out
