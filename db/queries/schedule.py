"""The schedule read model: each scheduled job's last outcome (the CLI's `schedule list` and the Overview)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from db.models.github_mining import ScheduleOutcome

COLUMNS = ["job", "outcome", "detail", "run_ids", "started_at", "duration_seconds", "owner"]


def last_outcomes(engine: Engine) -> pd.DataFrame:
    """One row per job that has fired: its latest outcome (ran / failed / skipped), detail, runs, duration."""
    t = ScheduleOutcome.__table__  # type: ignore[attr-defined]
    latest = select(t.c.job, func.max(t.c.id).label("id")).group_by(t.c.job).subquery()
    stmt = select(*(t.c[c] for c in COLUMNS)).join(latest, latest.c.id == t.c.id).order_by(t.c.job)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return pd.DataFrame([dict(r._mapping) for r in rows], columns=COLUMNS)
