"""The overview read model: rows per table grouped by area, how fresh each miner's data is, the latest runs,
each scheduled job's last outcome.

Every function takes one `OverviewFilter`; the app's Overview and SQL pages (and the tests' expectations) call
these, in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import and_, func, inspect, literal, select, true, union_all
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import db.models  # noqa: F401  (registers every model)
from db.models.ingest import IngestRun, RunStatus

#: Area shown for each models module (modules added later show under their own name).
AREAS = {
    "ingest": "Bookkeeping",
    "github": "GitHub issues",
    "github_mining": "GitHub issues",
    "survey": "Survey",
    "labeling": "Labeling",
    "experiments": "Experiments",
    "ecosystem": "Ecosystem",
}


@dataclass(frozen=True)
class OverviewFilter:
    """Which tables and runs: areas (empty: all), run kinds (empty: all), and how many recent runs."""

    areas: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    limit: int = 20


def table_areas() -> dict[str, str]:
    """Table name → area, from the module each model lives in (db/models/<area>.py)."""
    out: dict[str, str] = {}
    for mapper in SQLModel._sa_registry.mappers:
        table = getattr(mapper, "local_table", None)
        if table is None:
            continue
        module = mapper.class_.__module__.rsplit(".", 1)[-1]
        out[table.name] = AREAS.get(module, module.replace("_", " ").title())
    return out


def area_counts(engine: Engine, flt: OverviewFilter | None = None) -> pd.DataFrame:
    """One row per table present in the database (of the filter's areas): area, table, rows (exact counts)."""
    flt = flt or OverviewFilter()
    present = set(inspect(engine).get_table_names())
    areas = table_areas()
    tables = [
        t
        for t in SQLModel.metadata.sorted_tables
        if t.name in present and (not flt.areas or areas.get(t.name, "Other") in flt.areas)
    ]
    rows = []
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":  # SQLite's count(*) fast path needs a bare count: no literal, no union
            results = [(t.name, conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in tables]
        elif tables:  # a server: one round trip for every count
            counts = [select(literal(t.name), func.count()).select_from(t) for t in tables]
            results = list(conn.execute(union_all(*counts)))
        else:
            results = []
        for name, n in results:
            rows.append({"area": areas.get(name, "Other"), "table": name, "rows": int(n)})
    frame = pd.DataFrame(rows, columns=["area", "table", "rows"])
    return frame.sort_values(["area", "table"], kind="stable").reset_index(drop=True)


def _kinds(run: Any, flt: OverviewFilter) -> Any:
    return run.c.kind.in_(list(flt.kinds)) if flt.kinds else true()


def miner_freshness(engine: Engine, flt: OverviewFilter | None = None) -> pd.DataFrame:
    """Per run kind: runs, last successful finish, last failure with its error, and runs still going.

    A run whose process died without closing it (`abandoned`) counts as a failure at the time it started."""
    flt = flt or OverviewFilter()
    run = IngestRun.__table__  # type: ignore[attr-defined]
    failure = run.c.status.in_([RunStatus.failed.value, RunStatus.abandoned.value])
    summary = (
        select(
            run.c.kind,
            func.count().label("runs"),
            func.max(run.c.finished_at).filter(run.c.status == RunStatus.ok.value).label("last_success_at"),
            func.max(func.coalesce(run.c.finished_at, run.c.started_at)).filter(failure).label("last_failure_at"),
            func.count().filter(run.c.status == RunStatus.running.value).label("running"),
            func.max(run.c.started_at).label("last_started_at"),
        )
        .where(_kinds(run, flt))
        .group_by(run.c.kind)
        .subquery()
    )
    latest_failed = select(run.c.kind, func.max(run.c.id).label("id")).where(failure).group_by(run.c.kind).subquery()
    failed = run.alias("failed")
    stmt = (
        select(summary, failed.c.error.label("last_error"))
        .outerjoin(latest_failed, latest_failed.c.kind == summary.c.kind)
        .outerjoin(failed, and_(failed.c.id == latest_failed.c.id))
        .order_by(summary.c.kind)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    frame = pd.DataFrame(
        [dict(r) for r in rows],
        columns=[
            "kind",
            "runs",
            "last_success_at",
            "last_failure_at",
            "running",
            "last_started_at",
            "last_error",
        ],
    )
    for column in ("last_success_at", "last_failure_at", "last_started_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


RUN_COLUMNS = ["id", "kind", "status", "started_at", "finished_at", "duration_s", "counts", "error"]


def recent_runs(engine: Engine, flt: OverviewFilter | None = None) -> pd.DataFrame:
    """The newest `flt.limit` ingest_run rows (of the filter's kinds): kind, status, when, how long, counts, error."""
    flt = flt or OverviewFilter()
    run = IngestRun.__table__  # type: ignore[attr-defined]
    stmt = select(run).where(_kinds(run, flt)).order_by(run.c.started_at.desc(), run.c.id.desc()).limit(flt.limit)
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    records = [
        {
            **{k: r[k] for k in ("id", "kind", "status", "started_at", "finished_at", "error")},
            "duration_s": (r["finished_at"] - r["started_at"]).total_seconds() if r["finished_at"] else None,
            "counts": ", ".join(f"{k}={v}" for k, v in sorted((r["counts"] or {}).items())) or None,
        }
        for r in rows
    ]
    frame = pd.DataFrame(records, columns=RUN_COLUMNS)
    for column in ("started_at", "finished_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def schedule_outcomes(engine: Engine) -> pd.DataFrame:
    """Each scheduled job's last outcome (ran / failed / skipped), as `interop schedule list` shows it: the one
    schedule read model, `db.queries.schedule.last_outcomes`, not a copy."""
    from db.queries.schedule import last_outcomes

    return last_outcomes(engine)


def table_columns(engine: Engine, flt: OverviewFilter | None = None) -> pd.DataFrame:
    """Every table (of the filter's areas) and its columns with their SQL types, for writing console queries."""
    flt = flt or OverviewFilter()
    inspector = inspect(engine)
    areas = table_areas()
    rows = [
        {"table": name, "column": col["name"], "type": str(col["type"]), "nullable": bool(col.get("nullable", True))}
        for name in sorted(inspector.get_table_names())
        if not flt.areas or areas.get(name, "Other") in flt.areas
        for col in inspector.get_columns(name)
    ]
    return pd.DataFrame(rows, columns=["table", "column", "type", "nullable"])


def schema_state(engine: Engine) -> dict[str, str | None]:
    """The database's schema revision and the newest one this code knows (they differ until `db upgrade`)."""
    from db.migrate import current_revision, head_revision

    return {"current": current_revision(engine), "head": head_revision()}
