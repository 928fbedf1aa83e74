"""Turn a read export into questions (kind, choices) and per-response answers, before touching the database."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from miners.survey.choices import TEXT_COLUMN, derive_choices, infer_kind, split_cell, text_column_label
from miners.survey.overrides import Overrides
from miners.survey.reader import ExportColumn, ExportError, QualtricsExport


@dataclass
class QuestionPlan:
    """A question as it will be stored."""

    qid: str
    position: int
    text: str
    kind: str
    kind_reason: str
    import_id: str | None = None
    choices: list[str] = field(default_factory=list)
    text_columns: dict[str, str] = field(default_factory=dict)
    closed: bool = False


@dataclass(frozen=True)
class AnswerPlan:
    qid: str
    position: int
    choice: str | None
    text: str | None
    known: bool = True


@dataclass
class ResponsePlan:
    key: str
    key_source: str
    row_number: int
    raw: dict[str, Any]
    answers: list[AnswerPlan] = field(default_factory=list)


@dataclass(frozen=True)
class Notice:
    """Something a researcher should know about one cell (unknown fragment, text without its choice)."""

    row_number: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row_number}, {self.column}: {self.message}"


@dataclass
class SurveyPlan:
    questions: list[QuestionPlan]
    responses: list[ResponsePlan]
    unknown_fragments: list[Notice] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    ignored_fragments: Counter[str] = field(default_factory=Counter)


def _row_hash(cells: dict[str, str]) -> str:
    canonical = json.dumps(cells, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def _response_keys(export: QualtricsExport) -> list[tuple[str, str]]:
    """(key, source) per row: the ResponseId column when there is one, else a content hash (+#n for twins)."""
    id_column = export.response_id_column
    keys: list[tuple[str, str]] = []
    if id_column is not None:
        seen: dict[str, int] = {}
        for row in export.rows:
            value = (row.cells.get(id_column) or "").strip()
            if not value:
                raise ExportError(f"{export.path.name}: row {row.row_number}, {id_column}: empty response id")
            if len(value) > 100:
                raise ExportError(f"{export.path.name}: row {row.row_number}, {id_column}: response id over 100 chars")
            if value in seen:
                raise ExportError(
                    f"{export.path.name}: row {row.row_number}, {id_column}: duplicate response id {value!r} "
                    f"(also row {seen[value]})"
                )
            seen[value] = row.row_number
            keys.append((value, id_column))
        return keys
    twins: Counter[str] = Counter()
    for row in export.rows:
        digest = _row_hash(row.cells)
        twins[digest] += 1
        suffix = f"#{twins[digest]}" if twins[digest] > 1 else ""
        keys.append((f"row:{digest}{suffix}", "row-hash"))
    return keys


def _question_columns(export: QualtricsExport) -> tuple[list[ExportColumn], dict[str, list[ExportColumn]]]:
    """Question columns, and the `Qxx_N_TEXT` columns attached to each parent question."""
    names = {c.name for c in export.columns}
    questions: list[ExportColumn] = []
    attached: dict[str, list[ExportColumn]] = {}
    for column in export.columns:
        if column.is_metadata:
            continue
        match = TEXT_COLUMN.match(column.name)
        if match and match.group("base") in names:
            attached.setdefault(match.group("base"), []).append(column)
        else:
            questions.append(column)
    return questions, attached


@dataclass(frozen=True)
class StoredQuestion:
    """What an earlier import decided about a question; re-imports keep its kind and choice order."""

    kind: str
    kind_reason: str
    choices: tuple[str, ...] = ()


def build_plan(
    export: QualtricsExport, overrides: Overrides | None = None, stored: dict[str, StoredQuestion] | None = None
) -> SurveyPlan:
    """Decide every question's kind and choices, then split each response into answers.

    A question already `stored` by an earlier import keeps its kind (so counts never change meaning
    between imports); only an override file changes it.
    """
    overrides = overrides or Overrides()
    stored = stored or {}
    ignore = set(overrides.ignore_fragments)
    columns, attached = _question_columns(export)
    by_name = {c.name: c for c in export.columns}
    plans: list[QuestionPlan] = []
    for column in columns:
        cells = [row.cells[column.name] for row in export.rows if column.name in row.cells]
        override = overrides.questions.get(column.name)
        previous = stored.get(column.name)
        if override and override.kind:
            kind, reason = override.kind, "set in the overrides file"
        elif previous is not None:
            kind, reason = previous.kind, previous.kind_reason
        else:
            kind, reason = infer_kind(column.text, cells, ignore)
        text_columns = {text_column_label(t.text, column.text): t.name for t in attached.get(column.name, [])}
        seed = list(override.choices) if override else []
        if previous is not None and previous.kind == kind and not (override and override.closed):
            seed = list(dict.fromkeys([*seed, *previous.choices]))
        if kind == "text":
            choices: list[str] = []
        elif override and override.closed:
            choices = list(dict.fromkeys([*seed, *text_columns]))
        elif kind == "multi":
            choices = derive_choices(cells, seed, ignore, tail=list(text_columns))
        else:
            observed = (c.strip() for c in cells if c.strip() not in ignore)
            choices = list(dict.fromkeys([*seed, *observed, *text_columns]))
        plans.append(
            QuestionPlan(
                qid=column.name,
                position=column.index,
                text=column.text,
                kind=kind,
                kind_reason=reason,
                import_id=column.import_id,
                choices=choices,
                text_columns=text_columns,
                closed=bool(override and override.closed),
            )
        )
    unknown_qids = set(overrides.questions) - {p.qid for p in plans}
    if unknown_qids:
        raise ExportError(f"overrides name question(s) not in {export.path.name}: {', '.join(sorted(unknown_qids))}")
    plan = SurveyPlan(questions=plans, responses=[])
    for (key, source), row in zip(_response_keys(export), export.rows, strict=True):
        response = ResponsePlan(key=key, key_source=source, row_number=row.row_number, raw=dict(row.cells))
        for question in plans:
            response.answers.extend(_answers(question, row.cells, row.row_number, ignore, plan, by_name))
        plan.responses.append(response)
    return plan


def _answers(
    question: QuestionPlan,
    cells: dict[str, str],
    row_number: int,
    ignore: set[str],
    plan: SurveyPlan,
    columns: dict[str, ExportColumn],
) -> list[AnswerPlan]:
    """The answers of one response to one question, with `_TEXT` values attached to their choice."""
    value = cells.get(question.qid)
    texts = {label: cells[col] for label, col in question.text_columns.items() if col in cells}
    letter = columns[question.qid].letter
    where = f"{question.qid} (column {letter})"
    if question.kind == "text":
        found = [(None, value)] if value is not None else []
        found += list(texts.items())  # a _TEXT column of a question overridden to free text keeps its label
        return [AnswerPlan(question.qid, i, choice, text) for i, (choice, text) in enumerate(found)]
    selected: list[tuple[str, bool]] = []
    if value is not None:
        if question.kind == "single":
            choice = value.strip()
            if choice in ignore:
                plan.ignored_fragments[choice] += 1
            else:
                known = choice in question.choices
                selected.append((choice, known))
                if not known:
                    plan.unknown_fragments.append(Notice(row_number, where, f"unknown choice {choice!r}"))
        else:
            for fragment in split_cell(value, question.choices):
                if fragment.text in ignore:
                    plan.ignored_fragments[fragment.text] += 1
                    continue
                if any(fragment.text == seen for seen, _ in selected):
                    continue
                selected.append((fragment.text, fragment.known))
                if not fragment.known:
                    plan.unknown_fragments.append(
                        Notice(row_number, where, f"fragment {fragment.text!r} matches no known choice")
                    )
    chosen = {choice for choice, _ in selected}
    for label in texts:
        if label not in chosen:
            plan.notices.append(
                Notice(row_number, question.text_columns[label], f"text given but {label!r} not selected; kept with it")
            )
            selected.append((label, label in question.choices))
            chosen.add(label)
    return [AnswerPlan(question.qid, i, choice, texts.get(choice), known) for i, (choice, known) in enumerate(selected)]
