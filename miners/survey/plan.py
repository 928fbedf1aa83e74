"""Turn a read export into questions (kind, choices) and per-response answers, before touching the database."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from miners.survey.choices import TEXT_COLUMN, derive_choices, infer_kind, split_cell, text_column_label
from miners.survey.layout import ExportLayout, recognise_layout
from miners.survey.overrides import Overrides
from miners.survey.reader import QID_PATTERN, ExportColumn, ExportError, QualtricsExport

#: A cell of Qualtrics' "numeric values" export: a code, or several joined by commas.
NUMERIC_CELL = re.compile(r"^-?\d+(?:,-?\d+)*$")


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
    qtype: str | None = None  # the definition's type (single, matrix, slider, …); None when guessed
    kind_source: str = "guessed"  # definition, overrides or guessed (from the answers)
    parent_qid: str | None = None  # matrix rows, slider items, …: the definition question they belong to
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AnswerPlan:
    qid: str
    position: int
    choice: str | None
    text: str | None
    known: bool = True
    value: float | None = None  # sliders, constant sum: the number; rank order: the rank


@dataclass(frozen=True)
class DerivedPlan:
    """A value Qualtrics derived from an answer (Text iQ topics, sentiment; NPS group), kept with its question."""

    qid: str
    name: str
    value: str


@dataclass
class ResponsePlan:
    key: str
    key_source: str
    row_number: int
    raw: dict[str, Any]
    answers: list[AnswerPlan] = field(default_factory=list)
    derived: list[DerivedPlan] = field(default_factory=list)


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
    value_format: str | None = None  # "numeric" or "text" (choice text); None when nothing tells
    value_evidence: str = ""
    warnings: list[str] = field(default_factory=list)  # about the whole export, shown once


def _row_hash(cells: dict[str, str]) -> str:
    canonical = json.dumps(cells, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def response_keys(export: QualtricsExport, layout: ExportLayout) -> list[tuple[str, str]]:
    """(key, source) per row: the response-id column when there is one, else a content hash (+#n for twins)."""
    id_column = layout.response_id
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
            keys.append((value, layout.key_source))
        return keys
    twins: Counter[str] = Counter()
    for row in export.rows:
        digest = _row_hash(row.cells)
        twins[digest] += 1
        suffix = f"#{twins[digest]}" if twins[digest] > 1 else ""
        keys.append((f"row:{digest}{suffix}", "row-hash"))
    return keys


def _question_columns(
    export: QualtricsExport, layout: ExportLayout
) -> tuple[list[ExportColumn], dict[str, list[ExportColumn]]]:
    """Question columns, and the `Qxx_N_TEXT` columns attached to each parent question."""
    names = {c.name for c in export.columns if layout.roles[c.name] == "question"}
    questions: list[ExportColumn] = []
    attached: dict[str, list[ExportColumn]] = {}
    for column in export.columns:
        if layout.roles[column.name] != "question":
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
    source: str = "guessed"


def build_plan(
    export: QualtricsExport,
    overrides: Overrides | None = None,
    stored: dict[str, StoredQuestion] | None = None,
    layout: ExportLayout | None = None,
) -> SurveyPlan:
    """Decide every question's kind and choices, then split each response into answers (no definition).

    A question already `stored` by an earlier import keeps its kind (so counts never change meaning
    between imports); only an override file changes it.
    """
    overrides = overrides or Overrides()
    stored = stored or {}
    layout = layout or recognise_layout(export)
    ignore = set(overrides.ignore_fragments)
    columns, attached = _question_columns(export, layout)
    by_name = {c.name: c for c in export.columns}
    plans: list[QuestionPlan] = []
    for column in columns:
        cells = [row.cells[column.name] for row in export.rows if column.name in row.cells]
        override = overrides.questions.get(column.name)
        previous = stored.get(column.name)
        if override and override.kind:
            kind, reason, source = override.kind, "set in the overrides file", "overrides"
        elif previous is not None and previous.source != "definition":
            kind, reason, source = previous.kind, previous.kind_reason, previous.source
        else:
            kind, reason = infer_kind(column.text, cells, ignore)
            source = "guessed"
        text_columns = {text_column_label(t.text, column.text): t.name for t in attached.get(column.name, [])}
        seed = list(override.choices) if override else []
        keep = previous is not None and previous.kind == kind and previous.source != "definition"
        if previous is not None and keep and not (override and override.closed):
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
                kind_source=source,
            )
        )
    unknown_qids = set(overrides.questions) - {p.qid for p in plans}
    if unknown_qids:
        raise ExportError(f"overrides name question(s) not in {export.path.name}: {', '.join(sorted(unknown_qids))}")
    plan = SurveyPlan(questions=plans, responses=[])
    derived = _derived_columns(plans, layout)
    for (key, source), row in zip(response_keys(export, layout), export.rows, strict=True):
        response = ResponsePlan(key=key, key_source=source, row_number=row.row_number, raw=dict(row.cells))
        for question in plans:
            response.answers.extend(_answers(question, row.cells, row.row_number, ignore, plan, by_name))
        for name, (qid, label) in derived.items():
            if name in row.cells:
                response.derived.append(DerivedPlan(qid, label, row.cells[name]))
        plan.responses.append(response)
    _guess_value_format(export, plan)
    return plan


def _derived_columns(plans: list[QuestionPlan], layout: ExportLayout) -> dict[str, tuple[str, str]]:
    """Text iQ columns -> (question, label); a column derived from a `_TEXT` column goes to its question."""
    owner = {p.qid: p.qid for p in plans} | {col: p.qid for p in plans for col in p.text_columns.values()}
    out = {}
    for column, (base, label) in layout.derived.items():
        if base in owner:
            out[column] = (owner[base], label)
            question = next(p for p in plans if p.qid == owner[base])
            question.details.setdefault("derived", {})[label] = column
    return out


def _guess_value_format(export: QualtricsExport, plan: SurveyPlan) -> None:
    """Without a definition, only guess: a numeric-values export has numbers where choices would be, and no
    question column repeats a worded answer (choice text does: "Yes, I consent" recurs; free text rarely)."""
    numeric, worded = [], []
    for question in plan.questions:
        cells = [r.cells[question.qid].strip() for r in export.rows if question.qid in r.cells]
        if not cells:
            continue
        if all(NUMERIC_CELL.match(c) for c in cells):
            numeric.append(question.qid)
            continue
        repeated = [c for c, n in Counter(cells).items() if n > 1 and not NUMERIC_CELL.match(c)]
        if repeated and QID_PATTERN.match(question.qid):
            worded.append(question.qid)
    if worded:
        plan.value_format = "text"
        more = ", …" if len(worded) > 3 else ""
        plan.value_evidence = f"{len(worded)} question(s) repeat worded answers ({', '.join(worded[:3])}{more})"
    elif numeric:
        shown = ", ".join(numeric[:6]) + (", …" if len(numeric) > 6 else "")
        plan.value_format, plan.value_evidence = "numeric", f"{len(numeric)} question(s) hold only numbers"
        plan.warnings.append(
            f"the answers look like Qualtrics' numeric values ({len(numeric)} question(s) hold only numbers: "
            f"{shown}); without --definition they are stored as those numbers, not as the choices they stand for"
        )


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
        found: list[tuple[str | None, str]] = [(None, value)] if value is not None else []
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
