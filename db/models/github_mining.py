"""Miner bookkeeping beside the GitHub tables: per-query cursors and the versioned "fixed" rule's verdicts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from db.models.base import json_field, utc_field

#: The rule version verdicts are read with when nobody names one (the study's rule).
DEFAULT_FIX_RULE_VERSION = "study-v1"


class GithubCursor(SQLModel, table=True):
    """How far one issue query of a repository has been mined: the newest `updated_at` committed."""

    __tablename__ = "github_cursor"
    __table_args__ = (UniqueConstraint("repository_id", "query_key"),)

    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = Field(foreign_key="repository.id", index=True)
    query_key: str = Field(max_length=500, description="canonical form of state/label/exclusions")
    query: dict[str, Any] = json_field(nullable=False, default={})
    since: datetime | None = utc_field()
    completed: bool = Field(default=False, description="True once a run of this query reached the end")
    etag: str | None = Field(default=None, max_length=200, description="ETag of the last no-change first page")
    last_run_at: datetime | None = utc_field()


class GithubCommentCursor(SQLModel, table=True):
    """How far a repository's comment stream (`GET /repos/{repo}/issues/comments?since=`) has been stored."""

    __tablename__ = "github_comment_cursor"

    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = Field(foreign_key="repository.id", unique=True)
    since: datetime | None = utc_field()  # newest comment `updated_at` stored; the next run asks from it
    etag: str | None = Field(default=None, max_length=200, description="ETag of the last no-change first page")
    last_run_at: datetime | None = utc_field()


class IssueFixRule(SQLModel, table=True):
    """One immutable version of the study's "fixed" rule (its parameters), so verdicts name their rule."""

    __tablename__ = "issue_fix_rule"

    id: int | None = Field(default=None, primary_key=True)
    version: str = Field(max_length=64, unique=True)
    definition: dict[str, Any] = json_field(nullable=False, default={})
    created_at: datetime = utc_field(nullable=False, now=True)


class IssueFixLink(SQLModel, table=True):
    """Whether an issue is fix-linked under one rule version, and the timeline events that say so."""

    __tablename__ = "issue_fix_link"
    __table_args__ = (UniqueConstraint("issue_id", "rule_version"),)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issue.id", index=True)
    rule_version: str = Field(max_length=64, index=True)
    fix_linked: bool = Field(index=True)
    evidence: list[dict[str, Any]] = json_field(nullable=False, default=[])
    evaluated_at: datetime = utc_field(nullable=False, now=True)


class SchedulerLock(SQLModel, table=True):
    """A lease on a scheduled job: only the owner may run it until `expires_at` (crashed owners expire)."""

    __tablename__ = "scheduler_lock"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    owner: str = Field(max_length=200)
    acquired_at: datetime = utc_field(nullable=False, now=True)
    expires_at: datetime = utc_field(nullable=False)


class ScheduleOutcome(SQLModel, table=True):
    """What one firing of a scheduled job came to: ran (with the runs it recorded), failed, or skipped."""

    __tablename__ = "schedule_outcome"

    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(max_length=200, index=True)
    outcome: str = Field(max_length=16, description="ran, failed or skipped")
    detail: str | None = Field(default=None, description="exit code, the runs' status, or who held the lock")
    exit_code: int | None = None
    run_ids: list[int] = json_field(nullable=False, default=[])
    owner: str = Field(max_length=200, description="the scheduler that fired the job")
    started_at: datetime = utc_field(nullable=False, now=True, index=True)
    finished_at: datetime | None = utc_field()
    duration_seconds: float | None = None
