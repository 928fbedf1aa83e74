"""How much of each coder's Label Studio assignment is done: tasks assigned per round and coder."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from db.models.labeling import Coder, LabelRound, LsProject, LsTask


def assigned_tasks(engine: Engine) -> pd.DataFrame:
    """Items assigned to each coder in each round through Label Studio coding projects (push records them)."""
    stmt = (
        select(col(LabelRound.name), col(Coder.name), func.count(func.distinct(col(LsTask.item_id))))
        .select_from(LsTask)
        .join(LsProject, col(LsProject.id) == col(LsTask.project_id))
        .join(LabelRound, col(LabelRound.id) == col(LsProject.round_id))
        .join(Coder, col(Coder.id) == col(LsProject.coder_id))
        .where(col(LsProject.purpose) == "coding")
        .group_by(LabelRound.name, Coder.name)
    )
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(stmt)]
    return pd.DataFrame(rows, columns=["round", "coder", "assigned"])
