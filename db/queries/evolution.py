"""The read side of "failures against ONNX's evolution": issues per repository and month (all, and coded failures
per category), and how many issues have no date at all (known only from a coding sheet until mined)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from db.models.github import Issue, Repository
from db.models.labeling import CodebookCode, CodebookDimension, FinalLabel, LabelItem, LabelRound

ISSUE = Issue.__table__  # type: ignore[attr-defined]
REPO = Repository.__table__  # type: ignore[attr-defined]


def _frame(engine: Engine, stmt: object, columns: list[str]) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(stmt)]  # type: ignore[call-overload]
    return pd.DataFrame(rows, columns=columns)


def _months(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Creation times -> `month` (YYYY-MM, UTC) and a count per `keys` × month."""
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "month", "issues"])
    stamps = pd.to_datetime(frame["created_at"], utc=True)
    frame = frame.assign(month=stamps.dt.strftime("%Y-%m"))
    out = frame.groupby([*keys, "month"], as_index=False).size().rename(columns={"size": "issues"})
    return out.sort_values([*keys, "month"], ignore_index=True)


def issue_dates(engine: Engine) -> pd.DataFrame:
    """Per repository: stored issues, those with a creation date (mined), and those without (sheet-only)."""
    dated = func.count(ISSUE.c.created_at)
    stmt = (
        select(REPO.c.full_name, func.count(ISSUE.c.id), dated)
        .select_from(ISSUE.join(REPO, REPO.c.id == ISSUE.c.repository_id))
        .group_by(REPO.c.full_name)
        .order_by(REPO.c.full_name)
    )
    frame = _frame(engine, stmt, ["repository", "issues", "dated"])
    frame["undated"] = frame["issues"] - frame["dated"]
    return frame


def monthly_issues(engine: Engine, repositories: list[str] | None = None) -> pd.DataFrame:
    """Issues opened per repository and month (only issues with a creation date)."""
    stmt = (
        select(REPO.c.full_name, ISSUE.c.created_at)
        .select_from(ISSUE.join(REPO, REPO.c.id == ISSUE.c.repository_id))
        .where(ISSUE.c.created_at.is_not(None))
    )
    if repositories:
        stmt = stmt.where(REPO.c.full_name.in_(repositories))
    return _months(_frame(engine, stmt, ["repository", "created_at"]), ["repository"])


def monthly_coded(engine: Engine, dimension: str = "cause", round_name: str | None = None) -> pd.DataFrame:
    """Coded failures per repository × category (the final label of `dimension`) × month of the issue's creation
    (issues with a creation date only)."""
    stmt = (
        select(col(Repository.full_name), col(CodebookCode.label), col(Issue.created_at))
        .select_from(FinalLabel)
        .join(LabelRound, col(LabelRound.id) == col(FinalLabel.round_id))
        .join(LabelItem, col(LabelItem.id) == col(FinalLabel.item_id))
        .join(Issue, col(Issue.id) == col(LabelItem.issue_id))
        .join(Repository, col(Repository.id) == col(Issue.repository_id))
        .join(CodebookDimension, col(CodebookDimension.id) == col(FinalLabel.dimension_id))
        .join(CodebookCode, col(CodebookCode.id) == col(FinalLabel.code_id))
        .where(col(CodebookDimension.key) == dimension, col(Issue.created_at).is_not(None))
    )
    if round_name:
        stmt = stmt.where(col(LabelRound.name) == round_name)
    frame = _frame(engine, stmt, ["repository", "category", "created_at"])
    return _months(frame, ["repository", "category"])
