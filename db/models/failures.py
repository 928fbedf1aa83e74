"""Distinct failures: each failed, crashed or mismatching run's signature under a versioned rule, and the
upstream issues ranked (and confirmed or rejected) for each signature."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.models.base import utc_field

#: The signature rule runs are grouped with when nobody names one.
DEFAULT_SIGNATURE_RULE = "sig-v1"


class FailureSignature(SQLModel, table=True):
    """One distinct failure under one rule version: converter × stage × error class × normalised message ×
    operator; `key` is a hash of those five, so the same failure gets the same key on every re-run."""

    __tablename__ = "failure_signature"
    __table_args__ = (UniqueConstraint("rule_version", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    rule_version: str = Field(max_length=64, index=True)
    key: str = Field(max_length=64, description="sha256 of the components (the CLI shows its first 10 digits)")
    converter: str = Field(max_length=32, index=True)
    stage: str = Field(max_length=16, description="the failing Stage, or 'compare' for a mismatch")
    error_class: str = Field(max_length=200)
    operator: str | None = Field(default=None, max_length=200, description="read from the message; None: unknown")
    message: str = Field(sa_column=Column(Text, nullable=False), description="the normalised message")
    created_at: datetime = utc_field(nullable=False, now=True)


class RunSignature(SQLModel, table=True):
    """Which signature a run has under a rule version (one per run and version; rules are recomputed apart)."""

    __tablename__ = "run_signature"
    __table_args__ = (Index("ix_run_signature_signature", "signature_id", "run_id"),)

    run_id: int = Field(foreign_key="conversion_run.id", primary_key=True)
    rule_version: str = Field(max_length=64, primary_key=True)
    signature_id: int = Field(foreign_key="failure_signature.id")
