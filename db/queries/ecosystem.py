"""The ecosystem read model: each repository's latest snapshot and its history over snapshots (the CLI's
summary line, the Ecosystem page and the report read these)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from db.models.base import core_table
from db.models.ecosystem import RepoSnapshot

LATEST_COLUMNS = [
    "full_name",
    "role",
    "found",
    "stars",
    "forks",
    "watchers",
    "open_issues",
    "open_prs",
    "onnx",
    "license",
    "language",
    "default_branch",
    "latest_release",
    "latest_release_at",
    "topics",
    "description",
    "taken_at",
    "snapshots",
]
HISTORY_COLUMNS = ["full_name", "snapshot_date", "taken_at", "run_id", "stars", "forks", "watchers", "open_issues"]


def latest_snapshots(engine: Engine, onnx_only: bool = False) -> pd.DataFrame:
    """One row per repository ever snapshotted: its newest snapshot (found or not) and how many it has, most
    starred first; `onnx_only` keeps those naming ONNX in that snapshot."""
    t = core_table(RepoSnapshot)
    latest = (
        select(t.c.full_name, func.max(t.c.id).label("id"), func.count().label("snapshots"))
        .group_by(t.c.full_name)
        .subquery()
    )
    stmt = select(*(t.c[c] for c in LATEST_COLUMNS[:-1]), latest.c.snapshots).join(latest, latest.c.id == t.c.id)
    if onnx_only:
        stmt = stmt.where(t.c.onnx.is_(True))
    stmt = stmt.order_by(t.c.found.desc(), t.c.stars.desc(), t.c.full_name)
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    frame = pd.DataFrame([dict(r) for r in rows], columns=LATEST_COLUMNS)
    for column in ("taken_at", "latest_release_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def history(engine: Engine, repos: tuple[str, ...] = ()) -> pd.DataFrame:
    """Every found snapshot of the given repositories (empty: all), oldest first: the points of a growth chart."""
    t = core_table(RepoSnapshot)
    stmt = select(*(t.c[c] for c in HISTORY_COLUMNS)).where(t.c.found.is_(True))
    if repos:
        stmt = stmt.where(t.c.full_name.in_(list(repos)))
    stmt = stmt.order_by(t.c.full_name, t.c.taken_at, t.c.id)
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    frame = pd.DataFrame([dict(r) for r in rows], columns=HISTORY_COLUMNS)
    frame["taken_at"] = pd.to_datetime(frame["taken_at"], utc=True)
    return frame
