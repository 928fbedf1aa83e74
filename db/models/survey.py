"""Survey responses imported from Qualtrics exports: surveys, their versioned definitions (.qsf), questions,
responses, answers, and the values Qualtrics derived from answers (Text iQ, NPS group)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Float, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.models.base import json_field, utc_field


class QuestionKind(StrEnum):
    """How a question's answers are read: one choice, several choices, free text, a number, or a ranking."""

    single = "single"
    multi = "multi"
    text = "text"
    number = "number"  # sliders, constant sum (the value is in SurveyAnswer.value)
    rank = "rank"  # rank order: one answer per item, in rank order (the rank is in SurveyAnswer.value)


class KindSource(StrEnum):
    """Where a question's kind comes from: the survey's definition, the overrides file, or the answers."""

    definition = "definition"
    overrides = "overrides"
    guessed = "guessed"


class Survey(SQLModel, table=True):
    """One named survey; re-imports of newer exports of it add to the same row."""

    __tablename__ = "survey"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    source_file: str | None = Field(default=None, description="file name of the last import")
    source_sha256: str | None = Field(default=None, max_length=64, description="SHA-256 of the last imported file")
    source_format: str | None = Field(default=None, max_length=8, description="xlsx, csv or tsv")
    export_layout: dict[str, Any] | None = json_field(
        description="what the last import recognised: value format, style, ImportId row, language, metadata"
    )
    exclusion_rules: list[dict[str, Any]] = json_field(nullable=False, default=[])
    created_at: datetime = utc_field(nullable=False, now=True)
    updated_at: datetime = utc_field(nullable=False, now=True)


class SurveyDefinition(SQLModel, table=True):
    """One immutable content of a survey's definition (.qsf); a changed file gets the next version number."""

    __tablename__ = "survey_definition"
    __table_args__ = (UniqueConstraint("survey_id", "version"), UniqueConstraint("survey_id", "content_hash"))

    id: int | None = Field(default=None, primary_key=True)
    survey_id: int = Field(foreign_key="survey.id", index=True)
    version: int = Field(description="1, 2, … in load order")
    content_hash: str = Field(max_length=64, description="sha256 of the normalized definition")
    source: str | None = Field(default=None, max_length=500, description="file it was loaded from")
    qualtrics_id: str | None = Field(default=None, max_length=64, description="SurveyEntry.SurveyID (SV_…)")
    title: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    language: str | None = Field(default=None, max_length=16, description="SurveyEntry.SurveyLanguage")
    questions: int = Field(description="questions that collect answers")
    spec: dict[str, Any] = json_field(nullable=False, default={}, description="the normalized definition")
    loaded_at: datetime = utc_field(nullable=False, now=True)


class SurveyQuestion(SQLModel, table=True):
    """A question (export column) with its kind, why that kind was chosen, and its known choices."""

    __tablename__ = "survey_question"
    __table_args__ = (UniqueConstraint("survey_id", "qid"),)

    id: int | None = Field(default=None, primary_key=True)
    survey_id: int = Field(foreign_key="survey.id", index=True)
    qid: str = Field(max_length=100, description="the export's column name, e.g. Q60")
    import_id: str | None = Field(default=None, max_length=100, description="QID of the ImportId row, if any")
    position: int = Field(description="column order in the export")
    text: str = Field(sa_column=Column(Text, nullable=False))
    kind: str = Field(max_length=16, description="single, multi, text, number or rank")
    kind_reason: str = Field(sa_column=Column(Text, nullable=False))
    kind_source: str = Field(default=KindSource.guessed, max_length=16, description="definition, overrides, guessed")
    qtype: str | None = Field(
        default=None, max_length=16, description="the definition's type: single, multi, matrix, text, slider, …"
    )
    definition_id: int | None = Field(default=None, foreign_key="survey_definition.id", index=True)
    parent_qid: str | None = Field(
        default=None, max_length=100, description="matrix rows, slider items, …: their definition question"
    )
    choices: list[str] = json_field(nullable=False, default=[])
    text_columns: dict[str, str] = json_field(
        nullable=False, default={}, description="choice label -> its Qxx_N_TEXT column"
    )
    details: dict[str, Any] = json_field(
        nullable=False, default={}, description="definition facts: QSF id, type, block, display logic, recodes, columns"
    )


class SurveyResponse(SQLModel, table=True):
    """One respondent's row; `raw` keeps every cell; exclusion flags it without deleting it."""

    __tablename__ = "survey_response"
    __table_args__ = (UniqueConstraint("survey_id", "response_key"),)

    id: int | None = Field(default=None, primary_key=True)
    survey_id: int = Field(foreign_key="survey.id", index=True)
    response_key: str = Field(max_length=100, description="ResponseId, else a stable hash of the row")
    key_source: str = Field(max_length=16, description="ResponseId or row-hash")
    row_number: int = Field(description="row in the last imported file (1-based, header rows included)")
    raw: dict[str, Any] = json_field(nullable=False, default={}, description="every non-empty cell by column name")
    excluded: bool = Field(default=False, index=True)
    exclusion_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    imported_at: datetime = utc_field(nullable=False, now=True)


class SurveyAnswer(SQLModel, table=True):
    """One selected choice of a response (several for multi-select), or its free text."""

    __tablename__ = "survey_answer"
    __table_args__ = (UniqueConstraint("response_id", "question_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    response_id: int = Field(foreign_key="survey_response.id", index=True)
    question_id: int = Field(foreign_key="survey_question.id", index=True)
    position: int = Field(default=0, description="order of the choice within the cell")
    choice: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    known: bool = Field(default=True, description="False for a fragment that matched no known choice")
    value: float | None = Field(
        default=None, sa_column=Column(Float, nullable=True), description="sliders: the number; rank order: the rank"
    )


class SurveyDerivedValue(SQLModel, table=True):
    """A value Qualtrics derived from a response's answer (Text iQ topics, sentiment; NPS group)."""

    __tablename__ = "survey_derived_value"
    __table_args__ = (UniqueConstraint("response_id", "question_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    response_id: int = Field(foreign_key="survey_response.id", index=True)
    question_id: int = Field(foreign_key="survey_question.id", index=True)
    name: str = Field(max_length=100, description="e.g. Topics, Sentiment Score, NPS group")
    value: str = Field(sa_column=Column(Text, nullable=False))
