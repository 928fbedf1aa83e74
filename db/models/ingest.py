"""The bookkeeping row every miner run, import and campaign writes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel import Field, SQLModel

from db.models.base import json_field, utc_field


class RunStatus(StrEnum):
    """How an ingest run ended (or `running` while it goes on)."""

    running = "running"
    ok = "ok"
    failed = "failed"
    interrupted = "interrupted"
    abandoned = "abandoned"  # its process ended without closing the row (kill -9, power loss, OOM killer)


class IngestRun(SQLModel, table=True):
    """One execution of a miner, an import or a campaign: what ran, with what, and how it ended."""

    __tablename__ = "ingest_run"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(index=True, max_length=64, description="e.g. survey-import, github-mine, campaign")
    parameters: dict[str, Any] = json_field(nullable=False, default={})
    started_at: datetime = utc_field(nullable=False, now=True, index=True)
    finished_at: datetime | None = utc_field()
    status: str = Field(default=RunStatus.running, max_length=16, index=True)
    counts: dict[str, Any] = json_field(nullable=False, default={})
    error: str | None = Field(default=None, description="one-line error message of a failed run")
    host: str | None = Field(default=None, max_length=255, description="machine the run's process ran on")
    pid: int | None = Field(default=None, description="the run's process id on `host`")
