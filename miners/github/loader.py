"""Idempotent writes of mined GitHub data: one transaction per batch (issues, events, verdicts, cursor)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from db.columns import many_columns
from db.models.github import Issue, IssueComment, IssueEvent, Repository
from db.models.github_mining import GithubCommentCursor, GithubCursor, IssueFixLink, IssueFixRule
from db.types import utcnow
from db.upsert import upsert_rows
from miners.github.fixrule import FixRule, RuleError, evaluate, rule_from_definition
from miners.github.source import IssueQuery, comment_fields, event_fields

EVENT_COLUMNS = (
    "event",
    "actor",
    "commit_id",
    "source_repository",
    "source_number",
    "source_state",
    "source_is_pull_request",
    "created_at",
    "raw",
)
COMMENT_COLUMNS = (
    "github_id",
    "author",
    "author_association",
    "body",
    "created_at",
    "updated_at",
    "html_url",
    "raw",
    "deleted_at",
)


@dataclass
class Known:
    """What the store already has for an issue number (to skip unchanged issues without fetching)."""

    updated_at: datetime | None
    timeline_fetched_at: datetime | None


@dataclass
class CursorState:
    since: datetime | None
    etag: str | None
    completed: bool


@dataclass
class ListedComment:
    """A comment of the repository's comment stream, read, with the stored issue it belongs to."""

    issue_id: int
    fields: dict[str, Any]


@dataclass
class Fetched:
    """An issue as listed, with its full timeline when it was fetched (None: not fetched this time)."""

    fields: dict[str, Any]
    timeline: list[dict[str, Any]] | None
    fetched_at: datetime
    timeline_gone: bool = False  # GitHub answered 404/410 for the timeline: no verdict is recorded


class IssueLoader:
    """Writes for one repository; every public method is its own transaction."""

    def __init__(self, engine: Engine, rule: FixRule) -> None:
        self.engine = engine
        self.rule = rule
        self.rules = [rule]

    def register_rule(self) -> None:
        """Store the rule's definition under its version (a version may never change meaning) and load
        every other stored version, so a re-fetched timeline refreshes the verdicts of all of them."""
        register_rule(self.engine, self.rule)
        with Session(self.engine) as session:
            stored = session.exec(select(IssueFixRule).order_by(col(IssueFixRule.version))).all()
        self.rules = [self.rule] + [
            rule_from_definition(r.version, r.definition) for r in stored if r.version != self.rule.version
        ]

    def repository(self, full_name: str) -> tuple[int | None, bool]:
        """(id or None when unknown, has metadata) of the repository row."""
        with Session(self.engine) as session:
            repo = session.exec(select(Repository).where(Repository.full_name == full_name)).first()
            return (int(repo.id or 0), repo.raw is not None) if repo else (None, False)

    def store_repository(self, full_name: str, raw: dict[str, Any]) -> int:
        """Create or refresh the repository row from GitHub's JSON; returns its id."""
        with Session(self.engine) as session:
            upsert_rows(session, Repository, [{"full_name": full_name, "first_seen_at": utcnow()}], ["full_name"], [])
            repo = session.exec(select(Repository).where(Repository.full_name == full_name)).one()
            repo.raw, repo.github_id = raw, raw.get("id")
            session.add(repo)
            session.commit()
            return int(repo.id or 0)

    def cursor(self, repo_id: int, query: IssueQuery) -> CursorState:
        with Session(self.engine) as session:
            cur = self._cursor_row(session, repo_id, query)
            if cur is None:
                return CursorState(None, None, False)
            return CursorState(cur.since, cur.etag, cur.completed)

    def known(self, repo_id: int, numbers: Iterable[int]) -> dict[int, Known]:
        nums = list(numbers)
        if not nums:
            return {}
        with Session(self.engine) as session:
            rows = session.exec(
                select(Issue.number, Issue.updated_at, Issue.timeline_fetched_at)
                .where(Issue.repository_id == repo_id)
                .where(col(Issue.number).in_(nums))
                .where(Issue.hydrated == True)  # noqa: E712
            ).all()
        return {n: Known(u, t) for n, u, t in rows}

    def write_batch(
        self,
        repo_id: int,
        repo: str,
        query: IssueQuery,
        batch: list[Fetched],
        since: datetime | None,
        etag: str | None = None,
        completed: bool | None = None,
    ) -> dict[str, int]:
        """Upsert the batch's issues, their events and fix verdicts, and move the cursor, atomically."""
        counts = {
            "issues_new": 0,
            "issues_updated": 0,
            "events": 0,
            "timelines": 0,
            "comments": 0,
            "comments_deleted": 0,
        }
        batch = list({f.fields["number"]: f for f in batch}.values())  # an issue listed twice: keep the last
        with Session(self.engine) as session:
            numbers = [f.fields["number"] for f in batch]
            hydrated = (
                dict(
                    session.exec(
                        select(Issue.number, Issue.hydrated)
                        .where(Issue.repository_id == repo_id)
                        .where(col(Issue.number).in_(numbers))
                    ).all()
                )
                if numbers
                else {}
            )
            for with_timeline in (True, False):
                group = [f for f in batch if (f.timeline is not None) == with_timeline]
                rows = [
                    {
                        **f.fields,
                        "repository_id": repo_id,
                        "hydrated": True,
                        "fetched_at": f.fetched_at,
                        **({"timeline_fetched_at": f.fetched_at} if with_timeline else {}),
                    }
                    for f in group
                ]
                update = [k for k in (rows[0] if rows else {}) if k not in ("repository_id", "number")]
                upsert_rows(session, Issue, rows, ["repository_id", "number"], update)
            for f in batch:
                counts["issues_updated" if hydrated.get(f.fields["number"]) else "issues_new"] += 1
            ids = (
                dict(
                    session.exec(
                        select(Issue.number, Issue.id)
                        .where(Issue.repository_id == repo_id)
                        .where(col(Issue.number).in_(numbers))
                    ).all()
                )
                if numbers
                else {}
            )
            event_rows: list[dict[str, Any]] = []
            comment_rows: list[dict[str, Any]] = []
            listed: list[tuple[int, set[str], datetime]] = []  # complete comment lists (timelines)
            links: list[dict[str, Any]] = []
            now = utcnow()
            for item in batch:
                if item.timeline is None or item.timeline_gone:
                    continue
                issue_id = ids[item.fields["number"]]
                parsed = {e["event_key"]: e for e in (event_fields(raw) for raw in item.timeline)}
                event_rows.extend({"issue_id": issue_id, **e} for e in parsed.values())
                comments = {c["comment_key"]: c for c in (comment_fields(r) for r in item.timeline) if c}
                comment_rows.extend({"issue_id": issue_id, **c, "deleted_at": None} for c in comments.values())
                listed.append((int(issue_id or 0), set(comments), item.fetched_at))
                for rule in self.rules:
                    linked, evidence = evaluate(rule, repo, parsed.values())
                    links.append(
                        {
                            "issue_id": issue_id,
                            "rule_version": rule.version,
                            "fix_linked": linked,
                            "evidence": evidence,
                            "evaluated_at": now,
                        }
                    )
                counts["timelines"] += 1
            upsert_rows(session, IssueEvent, event_rows, ["issue_id", "event_key"], EVENT_COLUMNS)
            upsert_rows(
                session, IssueFixLink, links, ["issue_id", "rule_version"], ["fix_linked", "evidence", "evaluated_at"]
            )
            upsert_rows(session, IssueComment, comment_rows, ["issue_id", "comment_key"], COMMENT_COLUMNS)
            counts["comments_deleted"] = sum(_mark_listed(session, *entry) for entry in listed)
            counts["events"] = len(event_rows)
            counts["comments"] = len(comment_rows)
            self._move_cursor(session, repo_id, query, since, etag, completed)
            session.commit()
        return counts

    # -- the comment stream ---------------------------------------------------------------------------

    def comment_cursor(self, repo_id: int) -> tuple[datetime | None, str | None]:
        """(newest comment `updated_at` stored from the repository's comment stream, ETag of its last unchanged
        first page); (None, None): from the start."""
        with Session(self.engine) as session:
            row = session.exec(select(GithubCommentCursor).where(GithubCommentCursor.repository_id == repo_id)).first()
            return (row.since, row.etag) if row else (None, None)

    def issue_ids(self, repo_id: int, numbers: Iterable[int]) -> dict[int, int]:
        """number → id of the repository's stored issues among `numbers` (mined or known only by URL)."""
        nums = sorted(set(numbers))
        if not nums:
            return {}
        with Session(self.engine) as session:
            rows = session.exec(
                select(Issue.number, Issue.id).where(Issue.repository_id == repo_id).where(col(Issue.number).in_(nums))
            ).all()
        return {int(n): int(i or 0) for n, i in rows}

    def write_comments(
        self, repo_id: int, comments: list[tuple[int, dict[str, Any]]], since: datetime | None, etag: str | None
    ) -> dict[str, int]:
        """Upsert (issue id, comment fields) from the comment stream (an edit replaces body and `updated_at`; a
        comment seen is alive) and move the stream's cursor to `since`, atomically."""
        rows = list({(i, c["comment_key"]): {"issue_id": i, **c, "deleted_at": None} for i, c in comments}.values())
        with Session(self.engine) as session:
            upsert_rows(session, IssueComment, rows, ["issue_id", "comment_key"], COMMENT_COLUMNS)
            cur = session.exec(select(GithubCommentCursor).where(GithubCommentCursor.repository_id == repo_id)).first()
            cur = cur or GithubCommentCursor(repository_id=repo_id)
            if since is not None and (cur.since is None or since > cur.since):
                cur.since = since
            cur.etag = etag
            cur.last_run_at = utcnow()
            session.add(cur)
            session.commit()
        return {"comments_stored": len(rows)}

    def issues_to_relist(self, repo_id: int) -> list[int]:
        """Numbers of mined issues whose comment count (as GitHub last gave it) differs from the live comments
        stored, and whose payload was fetched after their comments were last fully listed: a comment was
        deleted (or is missing). Listing them again is what tells; each issue at most once per change."""
        live = (
            select(func.count())
            .select_from(IssueComment)
            .where(col(IssueComment.issue_id) == col(Issue.id))
            .where(col(IssueComment.deleted_at).is_(None))
            .scalar_subquery()
        )
        with Session(self.engine) as session:
            rows = session.exec(
                select(Issue.number)
                .where(Issue.repository_id == repo_id)
                .where(Issue.hydrated == True)  # noqa: E712
                .where(col(Issue.comment_count).is_not(None))
                .where(col(Issue.comment_count) != live)
                .where(
                    col(Issue.comments_listed_at).is_(None) | (col(Issue.comments_listed_at) < col(Issue.fetched_at))
                )
                .order_by(col(Issue.number))
            ).all()
        return [int(n) for n in rows]

    def write_listing(self, repo_id: int, number: int, comments: list[dict[str, Any]], listed_at: datetime) -> int:
        """Store one issue's complete comment list: upsert every comment, mark the stored ones it lacks
        deleted; returns how many were newly marked deleted."""
        with Session(self.engine) as session:
            issue_id = session.exec(
                select(Issue.id).where(Issue.repository_id == repo_id).where(Issue.number == number)
            ).one()
            fields = {c["comment_key"]: c for c in (comment_fields(r) for r in comments) if c}
            rows = [{"issue_id": issue_id, **c, "deleted_at": None} for c in fields.values()]
            upsert_rows(session, IssueComment, rows, ["issue_id", "comment_key"], COMMENT_COLUMNS)
            deleted = _mark_listed(session, int(issue_id or 0), set(fields), listed_at)
            session.commit()
        return deleted

    def _cursor_row(self, session: Session, repo_id: int, query: IssueQuery) -> GithubCursor | None:
        return session.exec(
            select(GithubCursor)
            .where(GithubCursor.repository_id == repo_id)
            .where(GithubCursor.query_key == query.key())
        ).first()

    def _move_cursor(
        self,
        session: Session,
        repo_id: int,
        query: IssueQuery,
        since: datetime | None,
        etag: str | None,
        completed: bool | None,
    ) -> None:
        cur = self._cursor_row(session, repo_id, query)
        if cur is None:
            cur = GithubCursor(repository_id=repo_id, query_key=query.key(), query=query.as_dict())
        if since is not None and (cur.since is None or since > cur.since):
            cur.since = since
        cur.etag = etag
        if completed is not None:
            cur.completed = completed
        cur.last_run_at = utcnow()
        session.add(cur)


def _mark_listed(session: Session, issue_id: int, keys: set[str], listed_at: datetime) -> int:
    """After a complete listing of an issue's comments (`keys`): the stored live ones it lacks were deleted on
    GitHub, marked so (kept, never dropped); the issue's comments count as listed at `listed_at`."""
    gone = (
        update(IssueComment).where(col(IssueComment.issue_id) == issue_id).where(col(IssueComment.deleted_at).is_(None))
    )
    if keys:
        gone = gone.where(col(IssueComment.comment_key).not_in(sorted(keys)))
    result = session.execute(gone.values(deleted_at=utcnow()))
    session.execute(update(Issue).where(col(Issue.id) == issue_id).values(comments_listed_at=listed_at))
    return int(getattr(result, "rowcount", 0) or 0)


def register_rule(engine: Engine, rule: FixRule) -> None:
    """Insert the rule version's definition once; refuse a different definition under the same version."""
    with Session(engine) as session:
        upsert_rows(
            session,
            IssueFixRule,
            [{"version": rule.version, "definition": rule.definition(), "created_at": utcnow()}],
            ["version"],
            [],
        )
        stored = session.exec(select(IssueFixRule).where(IssueFixRule.version == rule.version)).one()
        if stored.definition != rule.definition():
            session.rollback()
            raise RuleError(
                f"fix rule {rule.version!r} is already stored with a different definition; "
                "give the changed rule a new version"
            )
        session.commit()


def relink(engine: Engine, rule: FixRule, repo: str | None = None) -> dict[str, int]:
    """Re-evaluate `rule` on every stored timeline (optionally of one repository), in one transaction."""
    register_rule(engine, rule)
    counts = {"issues": 0, "fix_linked": 0}
    with Session(engine) as session:
        stmt = (
            select(Issue.id, Repository.full_name)
            .join(Repository, col(Repository.id) == col(Issue.repository_id))
            .where(col(Issue.timeline_fetched_at).is_not(None))
        )
        if repo:
            stmt = stmt.where(Repository.full_name == repo)
        issues: dict[int, str] = {int(i): name for i, name in session.exec(stmt).all() if i is not None}
        events: dict[int, list[dict[str, Any]]] = {i: [] for i in issues}
        names = (
            "issue_id",
            "event_key",
            "event",
            "commit_id",
            "source_repository",
            "source_number",
            "source_state",
            "source_is_pull_request",
        )
        cols = many_columns(*(col(getattr(IssueEvent, name)) for name in names))
        ids = list(issues)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            stmt_ev = select(*cols).where(col(IssueEvent.issue_id).in_(chunk)).order_by(col(IssueEvent.id))
            for row in session.exec(stmt_ev).all():
                events[row[0]].append(dict(zip(names, row, strict=True)))
        now = utcnow()
        links = []
        for issue_id, full_name in issues.items():
            linked, evidence = evaluate(rule, full_name, events[issue_id])
            links.append(
                {
                    "issue_id": issue_id,
                    "rule_version": rule.version,
                    "fix_linked": linked,
                    "evidence": evidence,
                    "evaluated_at": now,
                }
            )
            counts["issues"] += 1
            counts["fix_linked"] += int(linked)
        upsert_rows(
            session, IssueFixLink, links, ["issue_id", "rule_version"], ["fix_linked", "evidence", "evaluated_at"]
        )
        session.commit()
    return counts
