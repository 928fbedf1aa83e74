"""Read-side issue queries the app, reports and CLI share; each returns a DataFrame (or None)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import and_, func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from db.models.github import Issue, IssueEvent, IssueSample, IssueSampleMember, Repository
from db.models.github_mining import DEFAULT_FIX_RULE_VERSION, IssueFixLink

LIST_COLUMNS = [
    "repo",
    "number",
    "title",
    "state",
    "state_reason",
    "labels",
    "author",
    "created_at",
    "updated_at",
    "closed_at",
    "comment_count",
    "fix_linked",
    "html_url",
]


def issue_list(
    engine: Engine,
    *,
    repo: str | None = None,
    labels: list[str] | None = None,
    state: str | None = None,
    fix_linked: bool | None = None,
    rule_version: str = DEFAULT_FIX_RULE_VERSION,
    sample: str | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Mined issues (never PRs), newest first; `labels` keeps issues having all of them, `sample` keeps a
    named sample's members in drawn order; `fix_linked` is the verdict of `rule_version` (NA: not evaluated)."""
    stmt = (
        select(
            col(Repository.full_name),
            col(Issue.number),
            col(Issue.title),
            col(Issue.state),
            col(Issue.state_reason),
            col(Issue.labels),
            col(Issue.author),
            col(Issue.created_at),
            col(Issue.updated_at),
            col(Issue.closed_at),
            col(Issue.comment_count),
            col(IssueFixLink.fix_linked),
            col(Issue.html_url),
        )
        .join(Repository, col(Repository.id) == col(Issue.repository_id))
        .outerjoin(
            IssueFixLink,
            and_(col(IssueFixLink.issue_id) == col(Issue.id), col(IssueFixLink.rule_version) == rule_version),
        )
        .where(col(Issue.hydrated).is_(True))
    )
    if repo:
        stmt = stmt.where(col(Repository.full_name) == repo)
    if state:
        stmt = stmt.where(col(Issue.state) == state)
    if fix_linked is not None:
        stmt = stmt.where(col(IssueFixLink.fix_linked) == fix_linked)
    if sample:
        stmt = (
            stmt.join(IssueSampleMember, col(IssueSampleMember.issue_id) == col(Issue.id))
            .join(IssueSample, col(IssueSample.id) == col(IssueSampleMember.sample_id))
            .where(col(IssueSample.name) == sample)
            .order_by(col(IssueSampleMember.position))
        )
    else:
        stmt = stmt.order_by(col(Issue.created_at).desc(), col(Issue.number).desc())
    with Session(engine) as session:
        rows = session.execute(stmt).all()
    if labels:
        wanted = set(labels)
        rows = [r for r in rows if wanted <= set(r[5] or [])]
    if limit is not None:
        rows = rows[:limit]
    frame = pd.DataFrame([tuple(r) for r in rows], columns=LIST_COLUMNS)
    frame["fix_linked"] = frame["fix_linked"].astype("boolean")
    return frame


def known_only_by_url(engine: Engine, repo: str | None = None) -> dict[str, int]:
    """Issues not mined yet (known from a coding sheet's URL), per repository: `issues list` hides them."""
    stmt = (
        select(col(Repository.full_name), func.count())
        .join(Issue, col(Issue.repository_id) == col(Repository.id))
        .where(col(Issue.hydrated).is_(False))
        .group_by(Repository.full_name)
    )
    if repo:
        stmt = stmt.where(col(Repository.full_name) == repo)
    with Session(engine) as session:
        return {name: int(n) for name, n in session.execute(stmt).all()}


def issue_detail(engine: Engine, repo: str, number: int) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame] | None:
    """(issue fields, its timeline oldest first, its fix verdicts per rule version), or None if unknown."""
    with Session(engine) as session:
        row = session.execute(
            select(Issue, col(Repository.full_name))
            .join(Repository, col(Repository.id) == col(Issue.repository_id))
            .where(col(Repository.full_name) == repo, col(Issue.number) == number)
        ).first()
        if row is None:
            return None
        issue: Issue = row[0]
        fields = issue.model_dump(exclude={"raw"})
        fields["repo"] = row[1]
        events = session.execute(
            select(
                col(IssueEvent.created_at),
                col(IssueEvent.event),
                col(IssueEvent.actor),
                col(IssueEvent.commit_id),
                col(IssueEvent.source_repository),
                col(IssueEvent.source_number),
                col(IssueEvent.source_state),
                col(IssueEvent.source_is_pull_request),
                col(IssueEvent.event_key),
            )
            .where(col(IssueEvent.issue_id) == issue.id)
            .order_by(col(IssueEvent.created_at), col(IssueEvent.id))
        ).all()
        links = session.execute(
            select(
                col(IssueFixLink.rule_version),
                col(IssueFixLink.fix_linked),
                col(IssueFixLink.evidence),
                col(IssueFixLink.evaluated_at),
            )
            .where(col(IssueFixLink.issue_id) == issue.id)
            .order_by(col(IssueFixLink.rule_version))
        ).all()
    timeline = pd.DataFrame(
        [tuple(e) for e in events],
        columns=[
            "created_at",
            "event",
            "actor",
            "commit_id",
            "source_repository",
            "source_number",
            "source_state",
            "source_is_pull_request",
            "event_key",
        ],
    )
    # a column with some NULLs would turn into floats (acme/other#902.0): keep issue numbers whole
    timeline["source_number"] = timeline["source_number"].astype("Int64")
    verdicts = pd.DataFrame(
        [tuple(x) for x in links], columns=["rule_version", "fix_linked", "evidence", "evaluated_at"]
    )
    return fields, timeline, verdicts


def issues_over_time(
    engine: Engine, *, repo: str | None = None, freq: str = "M", rule_version: str = DEFAULT_FIX_RULE_VERSION
) -> pd.DataFrame:
    """Issues opened, closed and closed-and-fix-linked per period (`freq`: pandas period alias, e.g. M, Q, Y)."""
    stmt = (
        select(col(Issue.created_at), col(Issue.closed_at), func.coalesce(col(IssueFixLink.fix_linked), False))
        .join(Repository, col(Repository.id) == col(Issue.repository_id))
        .outerjoin(
            IssueFixLink,
            and_(col(IssueFixLink.issue_id) == col(Issue.id), col(IssueFixLink.rule_version) == rule_version),
        )
        .where(col(Issue.hydrated).is_(True))
    )
    if repo:
        stmt = stmt.where(col(Repository.full_name) == repo)
    with Session(engine) as session:
        rows = session.execute(stmt).all()
    columns = ["period", "opened", "closed", "closed_fix_linked"]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["created_at", "closed_at", "fix_linked"])

    def per(series: pd.Series) -> pd.Series:
        stamps = pd.to_datetime(series.dropna(), utc=True).dt.tz_localize(None)
        return stamps.dt.to_period(freq).value_counts()

    opened = per(frame["created_at"])
    closed = per(frame["closed_at"])
    fixed = per(frame.loc[frame["fix_linked"].astype(bool), "closed_at"])
    out = pd.concat({"opened": opened, "closed": closed, "closed_fix_linked": fixed}, axis=1).fillna(0).astype(int)
    out = out.sort_index()
    out.index.name = "period"
    return out.reset_index()[columns]
