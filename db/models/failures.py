"""Distinct failures: each failed, crashed or mismatching run's signature under a versioned rule, and the
upstream issues ranked (and confirmed or rejected) for each signature."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.models.base import utc_field

#: The signature rule runs are grouped with when nobody names one.
DEFAULT_SIGNATURE_RULE = "sig-v2"


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


class FailureLinkCandidate(SQLModel, table=True):
    """An upstream issue ranked for a signature by text similarity (recomputed whenever links are ranked)."""

    __tablename__ = "failure_link_candidate"

    signature_id: int = Field(foreign_key="failure_signature.id", primary_key=True)
    issue_id: int = Field(foreign_key="issue.id", primary_key=True, index=True)
    rank: int = Field(description="1 = most similar")
    score: float = Field(description="cosine similarity of the TF-IDF vectors, 0..1")
    method: str = Field(max_length=64, description="the ranking's version, e.g. tfidf-char-v1")
    computed_at: datetime = utc_field(nullable=False, now=True)


class FailureLinkDecision(SQLModel, table=True):
    """A user's confirmation or rejection of an issue for a signature. Keyed by the signature's key under the
    rule it was made with: re-runs keep the key, and other rule versions find it through the runs they share."""

    __tablename__ = "failure_link_decision"
    __table_args__ = (UniqueConstraint("rule_version", "signature_key", "issue_id"),)

    id: int | None = Field(default=None, primary_key=True)
    rule_version: str = Field(max_length=64)
    signature_key: str = Field(max_length=64, index=True)
    issue_id: int = Field(foreign_key="issue.id", index=True)
    decision: str = Field(max_length=16, description="confirmed or rejected")
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    decided_at: datetime = utc_field(nullable=False, now=True)


class RunReduction(SQLModel, table=True):
    """A mismatching run's minimal repro: its first diverging node (onnxruntime against the source framework's
    intermediate values, else the ONNX reference evaluator), the cause and the reduced model's size, so operator
    analyses can use the diverging operator alone."""

    __tablename__ = "run_reduction"

    run_id: int = Field(foreign_key="conversion_run.id", primary_key=True)
    status: str = Field(max_length=16, description="reduced, or no_divergence when every node agrees")
    node_name: str | None = Field(default=None, max_length=500, description="the first diverging node")
    operator: str | None = Field(default=None, max_length=200, index=True, description="its op_type")
    node_index: int | None = Field(default=None, description="its position in the graph's topological order")
    nodes_before: int = Field(description="nodes of the converted model")
    nodes_after: int | None = Field(default=None, description="nodes of the reduced model")
    seconds: float = Field(description="wall time of the reduction")
    atol: float
    rtol: float
    out_dir: str | None = Field(default=None, max_length=500, description="where reduced.onnx and repro.py are")
    reduced_at: datetime = utc_field(nullable=False, now=True)
    basis: str = Field(
        default="reference",
        max_length=16,
        sa_column_kwargs={"server_default": "reference"},
        description="what the node was found against: source (the framework's intermediate values) or reference",
    )
    cause: str | None = Field(
        default=None, max_length=16, description="converter, runtime, both, or None when nothing is to blame"
    )
    matched_values: int | None = Field(default=None, description="ONNX values matched to a source tensor")
