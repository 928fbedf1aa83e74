"""How much of each coder's Label Studio assignment is done: tasks assigned per round and coder."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from db.models.labeling import Coder, LabelRound, LsProject, LsTask


def assigned_tasks(engine: Engine) -> pd.DataFrame:
    """Items assigned to each coder in each round through Label Studio coding projects (push records them)."""
    stmt = (
        select(LabelRound.name, Coder.name, func.count(func.distinct(LsTask.item_id)))
        .select_from(LsTask)
        .join(LsProject, LsProject.id == LsTask.project_id)
        .join(LabelRound, LabelRound.id == LsProject.round_id)
        .join(Coder, Coder.id == LsProject.coder_id)
        .where(LsProject.purpose == "coding")
        .group_by(LabelRound.name, Coder.name)
    )
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(stmt)]
    return pd.DataFrame(rows, columns=["round", "coder", "assigned"])
