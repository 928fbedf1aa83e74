"""The converter ecosystem: dated metadata snapshots of the frameworks, converters, runtimes and compilers
around ONNX (`interop mine repos`), one row per repository per run so growth can be charted."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Index, Text, UniqueConstraint
from sqlmodel import Column, Field, SQLModel

from db.models.base import json_field, utc_field


class RepoSnapshot(SQLModel, table=True):
    """One repository as GitHub described it during one `repos-snapshot` run (`found` False: GitHub had no
    such repository then, every figure empty)."""

    __tablename__ = "repo_snapshot"
    __table_args__ = (
        UniqueConstraint("run_id", "full_name"),
        Index("ix_repo_snapshot_full_name_taken_at", "full_name", "taken_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="ingest_run.id", index=True, description="the ingest_run that took it")
    full_name: str = Field(max_length=200, description="owner/name as listed")
    role: str | None = Field(default=None, max_length=32, description="framework, converter, runtime, compiler…")
    snapshot_date: date = Field(index=True, description="UTC day of the snapshot")
    taken_at: datetime = utc_field(nullable=False, now=True)
    found: bool = True
    stars: int | None = None
    forks: int | None = None
    watchers: int | None = None
    open_issues: int | None = None
    open_prs: int | None = None
    default_branch: str | None = Field(default=None, max_length=200)
    license: str | None = Field(default=None, max_length=64, description="SPDX id")
    language: str | None = Field(default=None, max_length=64, description="primary language")
    description: str | None = Field(default=None, sa_column=Column(Text))
    topics: list[str] = json_field(nullable=False, default=[])
    releases: list[dict[str, Any]] = json_field(nullable=False, default=[], description="[{tag, published_at}]")
    latest_release: str | None = Field(default=None, max_length=200)
    latest_release_at: datetime | None = utc_field()
    onnx: bool = Field(default=False, description="ONNX named in its topics, description or labels")
    raw: dict[str, Any] | None = json_field()
