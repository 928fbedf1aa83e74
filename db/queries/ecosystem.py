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


ROLE_ORDER = ("framework", "format", "converter", "runtime", "compiler")
OVERVIEW_COLUMNS = [
    "role",
    "full_name",
    "stars",
    "stars_gained",
    "days_observed",
    "forks",
    "open_issues",
    "open_prs",
    "releases_last_year",
    "latest_release",
    "latest_release_at",
    "onnx",
    "license",
    "language",
    "snapshot_date",
]


def ecosystem_overview(engine: Engine) -> pd.DataFrame:
    """The study's ecosystem overview as of the newest snapshots: each found repository by role (frameworks,
    format, converters, runtimes, compilers), its popularity, growth since its first snapshot and ONNX support."""
    latest = latest_snapshots(engine)
    latest = latest[latest["found"].astype(bool)]
    if latest.empty:
        return pd.DataFrame(columns=OVERVIEW_COLUMNS)
    points = history(engine, tuple(latest["full_name"]))
    first = points.groupby("full_name").agg(first_stars=("stars", "first"), first_at=("taken_at", "first"))
    frame = latest.merge(first, left_on="full_name", right_index=True, how="left")
    frame["stars_gained"] = (frame["stars"] - frame["first_stars"]).astype("Int64")
    frame["days_observed"] = (frame["taken_at"] - frame["first_at"]).dt.days.astype("Int64")
    releases = _releases(engine, tuple(frame["full_name"]))
    frame["releases_last_year"] = [
        sum(1 for when in releases.get(name, []) if (taken - when).days <= 365 and when <= taken)
        for name, taken in zip(frame["full_name"], frame["taken_at"], strict=True)
    ]
    frame["snapshot_date"] = frame["taken_at"].dt.date
    rank = {role: i for i, role in enumerate(ROLE_ORDER)}
    frame["_role"] = frame["role"].map(lambda r: rank.get(r, len(rank)))
    frame = frame.sort_values(["_role", "role", "stars"], ascending=[True, True, False], na_position="last")
    return frame[OVERVIEW_COLUMNS].reset_index(drop=True)


def _releases(engine: Engine, repos: tuple[str, ...]) -> dict[str, list[pd.Timestamp]]:
    """Release dates in each repository's newest found snapshot."""
    t = core_table(RepoSnapshot)
    newest = (
        select(func.max(t.c.id).label("id"))
        .where(t.c.found.is_(True), t.c.full_name.in_(list(repos)))
        .group_by(t.c.full_name)
    ).subquery()
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.full_name, t.c.releases).join(newest, newest.c.id == t.c.id)).all()
    dates: dict[str, list[pd.Timestamp]] = {}
    for name, releases in rows:
        for release in releases or []:
            when = release.get("published_at") if isinstance(release, dict) else None
            if when:
                stamp = pd.Timestamp(when)
                dates.setdefault(name, []).append(stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp)
    return dates
