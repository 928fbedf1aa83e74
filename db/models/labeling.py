"""Qualitative coding: versioned codebooks, items of any kind, rounds, coders' codings and final labels."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Column, ForeignKey, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.models.base import json_field, utc_field


class Codebook(SQLModel, table=True):
    """A named codebook (e.g. `onnx-converter-failures`); its content lives in versions."""

    __tablename__ = "codebook"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    created_at: datetime = utc_field(nullable=False, now=True)


class CodebookVersion(SQLModel, table=True):
    """One immutable content of a codebook; a changed file gets the next version number."""

    __tablename__ = "codebook_version"
    __table_args__ = (UniqueConstraint("codebook_id", "version"), UniqueConstraint("codebook_id", "content_hash"))

    id: int | None = Field(default=None, primary_key=True)
    codebook_id: int = Field(foreign_key="codebook.id", index=True)
    version: int = Field(description="1, 2, … in load order")
    declared_version: str | None = Field(default=None, max_length=50, description="the file's own `version`")
    content_hash: str = Field(max_length=64, description="sha256 of the normalized content")
    source: str | None = Field(default=None, max_length=500, description="file it was loaded from")
    spec: dict[str, Any] = json_field(nullable=False, default={})
    loaded_at: datetime = utc_field(nullable=False, now=True)


class CodebookDimension(SQLModel, table=True):
    """A question coders answer with one code (symptom, cause, …), or with several (`multi`: themes)."""

    __tablename__ = "codebook_dimension"
    __table_args__ = (UniqueConstraint("version_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="codebook_version.id", index=True)
    key: str = Field(max_length=64)
    position: int
    question: str | None = None
    column: str | None = Field(default=None, max_length=200, description="code column in the study's sheets")
    label_column: str | None = Field(default=None, max_length=200)
    required: bool = False
    required_when: dict[str, Any] | None = json_field(description="{dimension key: code or [codes]}")
    multi: bool = Field(default=False, description="several codes per item (themes), not exactly one")


class CodebookCode(SQLModel, table=True):
    """A numeric code of a dimension with its label, aliases (old spellings) and description."""

    __tablename__ = "codebook_code"
    __table_args__ = (UniqueConstraint("dimension_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    dimension_id: int = Field(foreign_key="codebook_dimension.id", index=True)
    code: int
    label: str = Field(max_length=200)
    description: str | None = None
    aliases: list[str] = json_field(nullable=False, default=[])
    unused: bool = False


class LabelItem(SQLModel, table=True):
    """Anything coders code: a GitHub issue or a free-text survey answer (`kind` + `ref`, and the row it stands for)."""

    __tablename__ = "label_item"
    __table_args__ = (
        UniqueConstraint("kind", "ref"),
        CheckConstraint("kind <> 'issue' OR issue_id IS NOT NULL", name="issue_has_issue_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32, description="issue | survey_answer | …")
    ref: str = Field(max_length=300, description="natural key, e.g. pytorch/pytorch#49403")
    issue_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("issue.id"), unique=True, nullable=True)
    )
    survey_answer_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("survey_answer.id"), unique=True, nullable=True)
    )


class Coder(SQLModel, table=True):
    """A person (or the study's consensus) who codes items; linked to a Label Studio user once pushed."""

    __tablename__ = "coder"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    email: str | None = Field(default=None, max_length=200)
    ls_user_id: int | None = None


class LabelRound(SQLModel, table=True):
    """One coding round (pilot, main, an imported sheet) with a fixed codebook version."""

    __tablename__ = "label_round"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    codebook_version_id: int = Field(foreign_key="codebook_version.id", index=True)
    source: str = Field(max_length=32, description="sheet | labelstudio")
    sample_id: int | None = Field(default=None, foreign_key="issue_sample.id")
    params: dict[str, Any] = json_field(nullable=False, default={})
    created_at: datetime = utc_field(nullable=False, now=True)


class Coding(SQLModel, table=True):
    """One coder's judgement of one item in one round; `valid` is False when it broke the codebook."""

    __tablename__ = "coding"
    __table_args__ = (UniqueConstraint("round_id", "item_id", "coder_id"),)

    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(foreign_key="label_round.id", index=True)
    item_id: int = Field(foreign_key="label_item.id", index=True)
    coder_id: int = Field(foreign_key="coder.id", index=True)
    valid: bool = True
    problems: list[str] = json_field(nullable=False, default=[])
    note: str | None = None
    source_ref: str | None = Field(default=None, max_length=300, description="sheet!row or Label Studio ids")
    ls_task_id: int | None = None
    ls_annotation_id: int | None = Field(default=None, index=True)
    result: list[Any] | None = json_field(description="raw Label Studio result, kept for invalid codings")
    proposals: list[dict[str, str]] | None = json_field(
        description="new codes the coder proposed (open coding): [{dimension, text}]"
    )
    created_at: datetime | None = utc_field()
    updated_at: datetime | None = utc_field()
    stored_at: datetime = utc_field(nullable=False, now=True)


class CodingValue(SQLModel, table=True):
    """A code a coding gives one dimension (several rows for a multi-label one; only valid codings have values)."""

    __tablename__ = "coding_value"
    __table_args__ = (UniqueConstraint("coding_id", "dimension_id", "code_id"),)

    id: int | None = Field(default=None, primary_key=True)
    coding_id: int = Field(sa_column=Column(Integer, ForeignKey("coding.id", ondelete="CASCADE"), nullable=False))
    dimension_id: int = Field(foreign_key="codebook_dimension.id", index=True)
    code_id: int = Field(foreign_key="codebook_code.id")


class LsProject(SQLModel, table=True):
    """A Label Studio project of a round: one per coder (blind coding) plus an optional review project."""

    __tablename__ = "ls_project"
    __table_args__ = (UniqueConstraint("round_id", "purpose", "coder_id"),)

    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(foreign_key="label_round.id", index=True)
    coder_id: int | None = Field(default=None, foreign_key="coder.id")
    purpose: str = Field(max_length=16, description="coding | review")
    ls_project_id: int
    config_hash: str = Field(max_length=64)
    last_pulled_at: datetime | None = utc_field()


class LsTask(SQLModel, table=True):
    """An item as a task in a project: the record of who was assigned what."""

    __tablename__ = "ls_task"
    __table_args__ = (UniqueConstraint("project_id", "item_id"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="ls_project.id", index=True)
    item_id: int = Field(foreign_key="label_item.id", index=True)
    ls_task_id: int = Field(index=True)


class FinalLabel(SQLModel, table=True):
    """The label analyses use for an item and dimension in a round (one row per theme of a multi-label
    dimension), and who or what decided it."""

    __tablename__ = "final_label"
    __table_args__ = (UniqueConstraint("round_id", "item_id", "dimension_id", "code_id"),)

    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(foreign_key="label_round.id", index=True)
    item_id: int = Field(foreign_key="label_item.id", index=True)
    dimension_id: int = Field(foreign_key="codebook_dimension.id", index=True)
    code_id: int = Field(foreign_key="codebook_code.id")
    decided_by: str = Field(max_length=100, description="agreement | rule:prefer-coder=NAME | review:NAME | sheet")
    note: str | None = Field(default=None, description="the reviewer's note (review decisions)")
    detail: dict[str, Any] = json_field(
        nullable=False, default={}, description="evidence: the codings weighed and whether they disagreed"
    )
    decided_at: datetime = utc_field(nullable=False, now=True)


class AdjudicationHistory(SQLModel, table=True):
    """Every decision on a final label, oldest first: what it became, what it was, who decided, when, and why."""

    __tablename__ = "adjudication_history"
    __table_args__ = (
        CheckConstraint("action IN ('new', 'changed', 'withdrawn')", name="action_known"),
        CheckConstraint("(action = 'withdrawn') = (code_id IS NULL)", name="withdrawn_has_no_code"),
        CheckConstraint("(action = 'new') = (previous_code_id IS NULL)", name="new_has_no_previous"),
    )

    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(foreign_key="label_round.id", index=True)
    item_id: int = Field(foreign_key="label_item.id", index=True)
    dimension_id: int = Field(foreign_key="codebook_dimension.id", index=True)
    action: str = Field(max_length=16, description="new | changed | withdrawn")
    code_id: int | None = Field(default=None, foreign_key="codebook_code.id", description="null when withdrawn")
    decided_by: str | None = Field(default=None, max_length=100, description="null when withdrawn")
    note: str | None = None
    previous_code_id: int | None = Field(default=None, foreign_key="codebook_code.id")
    previous_decided_by: str | None = Field(default=None, max_length=100)
    previous_note: str | None = None
    detail: dict[str, Any] = json_field(nullable=False, default={}, description="the evidence at that time")
    run_id: int | None = Field(default=None, foreign_key="ingest_run.id", description="the run that decided")
    decided_at: datetime = utc_field(nullable=False, now=True)


class Prediction(SQLModel, table=True):
    """A model's suggested code for an item and dimension in a round: never a coding, so never a coder in agreement;
    compared with the coders separately (`label agreement --model`)."""

    __tablename__ = "prediction"
    __table_args__ = (UniqueConstraint("round_id", "item_id", "dimension_id", "model_version"),)

    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(foreign_key="label_round.id", index=True)
    item_id: int = Field(foreign_key="label_item.id", index=True)
    dimension_id: int = Field(foreign_key="codebook_dimension.id", index=True)
    code_id: int = Field(foreign_key="codebook_code.id")
    score: float = Field(description="the model's probability of the code (0–1)")
    model_version: str = Field(max_length=100, index=True, description="e.g. tfidf-logreg-<hash of data + params>")
    created_at: datetime = utc_field(nullable=False, now=True)
