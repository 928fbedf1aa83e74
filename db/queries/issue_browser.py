"""The Issues page's reads: filtered issue lists, issues over time, and one issue with its timeline.

Filters are plain keyword arguments (repository, labels, state, sample, text) so they can live in a URL
and key a cache. Aggregations run in SQL; only the page of rows shown is fetched.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Boolean, ColumnElement, Select, and_, case, exists, func, literal, or_, select
from sqlalchemy.engine import Engine

from db.models.github import Issue, IssueEvent, IssueSample, IssueSampleMember, Repository
from db.models.github_mining import DEFAULT_FIX_RULE_VERSION, IssueFixLink
from db.models.labeling import CodebookCode, CodebookDimension, FinalLabel, LabelItem

ISSUE = Issue.__table__  # type: ignore[attr-defined]
REPO = Repository.__table__  # type: ignore[attr-defined]
EVENT = IssueEvent.__table__  # type: ignore[attr-defined]
SAMPLE = IssueSample.__table__  # type: ignore[attr-defined]
MEMBER = IssueSampleMember.__table__  # type: ignore[attr-defined]
FIX = IssueFixLink.__table__  # type: ignore[attr-defined]

LIST_COLUMNS = [
    "repository",
    "number",
    "title",
    "state",
    "labels",
    "author",
    "created_at",
    "closed_at",
    "comment_count",
    "hydrated",
    "html_url",
]


def _has_any_label(engine: Engine, labels: list[str]) -> ColumnElement[bool]:
    """The issue's JSON label list contains one of `labels` (JSONB ?| on PostgreSQL, json_each on SQLite)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY, TEXT

        return ISSUE.c.labels.op("?|", return_type=Boolean)(literal(labels, ARRAY(TEXT)))
    each = func.json_each(ISSUE.c.labels).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value.in_(labels)))


def _filtered(
    engine: Engine,
    stmt: Select[Any],
    repository: str | None = None,
    labels: list[str] | None = None,
    state: str | None = None,
    sample: str | None = None,
    text: str | None = None,
    fix_linked: bool | None = None,
    rule_version: str = DEFAULT_FIX_RULE_VERSION,
) -> Select[Any]:
    """Apply the page's filters to a statement that selects from issue JOIN repository."""
    if repository:
        stmt = stmt.where(REPO.c.full_name == repository)
    if labels:
        stmt = stmt.where(_has_any_label(engine, list(labels)))
    if state:
        stmt = stmt.where(ISSUE.c.state == state)
    if sample:
        members = select(MEMBER.c.issue_id).join(SAMPLE, SAMPLE.c.id == MEMBER.c.sample_id)
        stmt = stmt.where(ISSUE.c.id.in_(members.where(SAMPLE.c.name == sample)))
    if fix_linked is not None:
        linked = select(FIX.c.issue_id).where(FIX.c.rule_version == rule_version, FIX.c.fix_linked.is_(True))
        stmt = stmt.where(ISSUE.c.id.in_(linked) if fix_linked else ISSUE.c.id.not_in(linked))
    if text:
        pattern = f"%{text.lower()}%"
        stmt = stmt.where(or_(func.lower(ISSUE.c.title).like(pattern), func.lower(ISSUE.c.body).like(pattern)))
    return stmt


def _base() -> Any:
    return ISSUE.join(REPO, REPO.c.id == ISSUE.c.repository_id)


def filter_options(engine: Engine) -> dict[str, list[str]]:
    """Values the filters offer: repositories, labels in use, states, sample names."""
    with engine.connect() as conn:
        repos = conn.execute(select(REPO.c.full_name).order_by(REPO.c.full_name)).scalars().all()
        states = conn.execute(select(ISSUE.c.state).where(ISSUE.c.state.is_not(None)).distinct()).scalars().all()
        samples = conn.execute(select(SAMPLE.c.name).order_by(SAMPLE.c.name)).scalars().all()
        if engine.dialect.name == "postgresql":
            label = func.jsonb_array_elements_text(ISSUE.c.labels).table_valued("value")
        else:
            label = func.json_each(ISSUE.c.labels).table_valued("value")
        labels = (
            conn.execute(
                select(label.c.value).select_from(ISSUE).join(label, literal(True)).distinct().order_by(label.c.value)
            )
            .scalars()
            .all()
        )
    return {
        "repositories": list(repos),
        "labels": [str(x) for x in labels],
        "states": sorted(states),
        "samples": list(samples),
    }


def issue_list(engine: Engine, limit: int = 100, offset: int = 0, **filters: Any) -> tuple[int, pd.DataFrame]:
    """(number of matching issues, one page of them, newest first)."""
    count = _filtered(engine, select(func.count()).select_from(_base()), **filters)
    rows = _filtered(
        engine,
        select(REPO.c.full_name.label("repository"), *(ISSUE.c[c] for c in LIST_COLUMNS[1:])).select_from(_base()),
        **filters,
    )
    rows = rows.order_by(ISSUE.c.created_at.desc(), ISSUE.c.id.desc()).limit(limit).offset(offset)
    with engine.connect() as conn:
        total = int(conn.execute(count).scalar_one())
        frame = pd.DataFrame([dict(r) for r in conn.execute(rows).mappings()], columns=LIST_COLUMNS)
    frame["labels"] = frame["labels"].map(lambda v: ", ".join(v or []))
    for column in ("created_at", "closed_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return total, frame


def _month(engine: Engine, column: Any) -> Any:
    if engine.dialect.name == "postgresql":
        return func.to_char(func.date_trunc("month", column), "YYYY-MM")
    return func.strftime("%Y-%m", column)


def issues_over_time(engine: Engine, **filters: Any) -> pd.DataFrame:
    """Issues opened and closed per month and repository (for the matching issues)."""
    frames = []
    for what, column in (("opened", ISSUE.c.created_at), ("closed", ISSUE.c.closed_at)):
        month = _month(engine, column).label("month")
        stmt = _filtered(
            engine,
            select(month, REPO.c.full_name.label("repository"), func.count().label("issues"))
            .select_from(_base())
            .where(column.is_not(None)),
            **filters,
        ).group_by(month, REPO.c.full_name)
        with engine.connect() as conn:
            part = pd.DataFrame(
                [dict(r) for r in conn.execute(stmt).mappings()], columns=["month", "repository", "issues"]
            )
        part["what"] = what
        frames.append(part)
    out = pd.concat(frames, ignore_index=True)
    out["month"] = pd.to_datetime(out["month"].astype(str) + "-01", utc=True)
    return out.sort_values(["month", "repository", "what"]).reset_index(drop=True)


def state_summary(engine: Engine, **filters: Any) -> pd.DataFrame:
    """Matching issues per repository: total, closed, with at least one closing commit event."""
    has_commit = exists(select(literal(1)).where(and_(EVENT.c.issue_id == ISSUE.c.id, EVENT.c.commit_id.is_not(None))))
    stmt = _filtered(
        engine,
        select(
            REPO.c.full_name.label("repository"),
            func.count().label("issues"),
            func.sum(case((ISSUE.c.state == "closed", 1), else_=0)).label("closed"),
            func.sum(case((has_commit, 1), else_=0)).label("with_commit_event"),
        ).select_from(_base()),
        **filters,
    ).group_by(REPO.c.full_name)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(stmt.order_by(REPO.c.full_name)).mappings()]
    return pd.DataFrame(rows, columns=["repository", "issues", "closed", "with_commit_event"])


def fix_rule_versions(engine: Engine) -> list[str]:
    """Rule versions that have verdicts stored (the default first)."""
    with engine.connect() as conn:
        found = conn.execute(select(FIX.c.rule_version).distinct()).scalars().all()
    return sorted(found, key=lambda v: (v != DEFAULT_FIX_RULE_VERSION, v))


def fix_linked_count(engine: Engine, **filters: Any) -> int:
    """Matching issues that the rule version marks fix-linked."""
    stmt = _filtered(engine, select(func.count()).select_from(_base()), **{**filters, "fix_linked": True})
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def coded_over_time(engine: Engine, dimension: str = "symptom", **filters: Any) -> pd.DataFrame:
    """Coded issues per month of creation and final code of `dimension` (distinct issues per code)."""
    month = _month(engine, ISSUE.c.created_at)
    final = FinalLabel.__table__  # type: ignore[attr-defined]
    item = LabelItem.__table__  # type: ignore[attr-defined]
    dim = CodebookDimension.__table__  # type: ignore[attr-defined]
    code = CodebookCode.__table__  # type: ignore[attr-defined]
    pairs = _filtered(
        engine,
        select(month.label("month"), code.c.label.label("code"), ISSUE.c.id.label("issue_id"))
        .select_from(
            _base()
            .join(item, item.c.issue_id == ISSUE.c.id)
            .join(final, final.c.item_id == item.c.id)
            .join(dim, dim.c.id == final.c.dimension_id)
            .join(code, code.c.id == final.c.code_id)
        )
        .where(dim.c.key == dimension, ISSUE.c.created_at.is_not(None))
        .distinct(),
        **filters,
    ).subquery()
    stmt = select(pairs.c.month, pairs.c.code, func.count().label("issues")).group_by(pairs.c.month, pairs.c.code)
    with engine.connect() as conn:
        frame = pd.DataFrame([tuple(r) for r in conn.execute(stmt)], columns=["month", "code", "issues"])
    frame["month"] = pd.to_datetime(frame["month"].astype(str) + "-01", utc=True)
    return frame.sort_values(["month", "code"], ignore_index=True)


def issue_detail(engine: Engine, repository: str, number: int) -> dict[str, Any] | None:
    """One issue (all stored fields but the raw payload) and its timeline events, oldest first."""
    stmt = (
        select(REPO.c.full_name.label("repository"), *(c for c in ISSUE.c if c.name != "raw"))
        .select_from(_base())
        .where(REPO.c.full_name == repository, ISSUE.c.number == int(number))
    )
    with engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
        if row is None:
            return None
        events = (
            conn.execute(
                select(*(c for c in EVENT.c if c.name not in ("raw", "issue_id")))
                .where(EVENT.c.issue_id == row["id"])
                .order_by(EVENT.c.created_at, EVENT.c.id)
            )
            .mappings()
            .all()
        )
        samples = (
            conn.execute(
                select(SAMPLE.c.name)
                .join(MEMBER, MEMBER.c.sample_id == SAMPLE.c.id)
                .where(MEMBER.c.issue_id == row["id"])
            )
            .scalars()
            .all()
        )
        verdicts = (
            conn.execute(
                select(FIX.c.rule_version, FIX.c.fix_linked, FIX.c.evidence, FIX.c.evaluated_at)
                .where(FIX.c.issue_id == row["id"])
                .order_by(FIX.c.rule_version)
            )
            .mappings()
            .all()
        )
    timeline = pd.DataFrame([dict(e) for e in events])
    if not timeline.empty:
        timeline["created_at"] = pd.to_datetime(timeline["created_at"], utc=True)
        timeline["source_number"] = timeline["source_number"].astype("Int64")  # not 902.0 beside NULLs
    fix_columns = ["rule_version", "fix_linked", "evidence", "evaluated_at"]
    fixes = pd.DataFrame([dict(v) for v in verdicts], columns=fix_columns)
    return {"issue": dict(row), "timeline": timeline, "samples": list(samples), "fix_verdicts": fixes}
