"""GitHub repositories, their issues, timeline events and comments, and named reproducible issue samples."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.models.base import json_field, utc_field


class Repository(SQLModel, table=True):
    """A GitHub repository whose issues are mined, e.g. `pytorch/pytorch`."""

    __tablename__ = "repository"

    id: int | None = Field(default=None, primary_key=True)
    full_name: str = Field(max_length=200, unique=True, description="owner/name as GitHub spells it")
    github_id: int | None = Field(default=None, description="GitHub's numeric id, once mined")
    raw: dict[str, Any] | None = json_field()
    first_seen_at: datetime = utc_field(nullable=False, now=True)


class Issue(SQLModel, table=True):
    """One issue of a repository (never a pull request); `hydrated` is False while known only by URL."""

    __tablename__ = "issue"
    __table_args__ = (UniqueConstraint("repository_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    repository_id: int = Field(foreign_key="repository.id", index=True)
    number: int
    title: str | None = None
    body: str | None = None
    state: str | None = Field(default=None, max_length=16)
    state_reason: str | None = Field(default=None, max_length=32)
    labels: list[str] = json_field(nullable=False, default=[])
    author: str | None = Field(default=None, max_length=100)
    created_at: datetime | None = utc_field(index=True)
    updated_at: datetime | None = utc_field(index=True)
    closed_at: datetime | None = utc_field()
    comment_count: int | None = None
    html_url: str | None = Field(default=None, max_length=300)
    raw: dict[str, Any] | None = json_field()
    hydrated: bool = Field(default=False, description="False for issues known only from a sheet's URL")
    sheet_title: str | None = Field(default=None, description="The coding sheet's Title of the issue (as imported)")
    sheet_description: str | None = Field(
        default=None, description="The coding sheet's Description of the issue (the coders' summary)"
    )
    fetched_at: datetime | None = utc_field()
    timeline_fetched_at: datetime | None = utc_field()
    # when every comment of the issue was last listed (timeline or comment list): deletions known up to then
    comments_listed_at: datetime | None = utc_field()


class IssueEvent(SQLModel, table=True):
    """A timeline event of an issue (closed, referenced, cross-referenced, connected, …), kept raw too."""

    __tablename__ = "issue_event"
    __table_args__ = (UniqueConstraint("issue_id", "event_key"),)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issue.id", index=True)
    event_key: str = Field(max_length=100, description="GitHub event id/node id, stable across fetches")
    event: str = Field(max_length=64, index=True)
    actor: str | None = Field(default=None, max_length=100)
    commit_id: str | None = Field(default=None, max_length=64)
    source_repository: str | None = Field(default=None, max_length=200)
    source_number: int | None = None
    source_state: str | None = Field(default=None, max_length=16)
    source_is_pull_request: bool | None = None
    created_at: datetime | None = utc_field()
    raw: dict[str, Any] | None = json_field()


class IssueComment(SQLModel, table=True):
    """A comment on an issue (timeline `commented` entries by either API, or REST comment lists), kept raw too."""

    __tablename__ = "issue_comment"
    __table_args__ = (UniqueConstraint("issue_id", "comment_key"),)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issue.id", index=True)
    comment_key: str = Field(max_length=100, description="GitHub node id (or id), stable across fetches")
    github_id: int | None = Field(default=None, sa_type=BigInteger, description="GitHub's numeric comment id")
    author: str | None = Field(default=None, max_length=100)
    author_association: str | None = Field(default=None, max_length=32)
    body: str | None = None
    created_at: datetime | None = utc_field(index=True)
    updated_at: datetime | None = utc_field()
    html_url: str | None = Field(default=None, max_length=300)
    raw: dict[str, Any] | None = json_field()
    deleted_at: datetime | None = utc_field()  # when a full listing of the issue's comments first missed it


class IssueSample(SQLModel, table=True):
    """A named, reproducible sample of issues (members, seed and selection rule) to be coded."""

    __tablename__ = "issue_sample"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    seed: int | None = None
    rule: dict[str, Any] = json_field(nullable=False, default={})
    created_at: datetime = utc_field(nullable=False, now=True)


class IssueSampleMember(SQLModel, table=True):
    """An issue's place in a sample (`position` keeps the drawn order)."""

    __tablename__ = "issue_sample_member"
    __table_args__ = (UniqueConstraint("sample_id", "issue_id"),)

    id: int | None = Field(default=None, primary_key=True)
    sample_id: int = Field(foreign_key="issue_sample.id", index=True)
    issue_id: int = Field(foreign_key="issue.id", index=True)
    position: int
