"""Free-text survey answers as label items: what a coder sees in Label Studio, and the import of the study's
thematic coding (`survey_analysis.xlsx`: raw answer, memos, up to four themes per answer) matched by answer text
to the imported Qualtrics export."""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from db.engine import session_scope
from db.ingest import recorded_run
from db.models.labeling import Coding, LabelItem
from db.models.survey import Survey, SurveyAnswer, SurveyQuestion, SurveyResponse
from labeling.codebook import DimensionSpec
from labeling.finals import Decision, final_key, write_final_labels
from labeling.labelstudio import DISCUSSION
from labeling.sheets import CONSENSUS_CODER, SheetError
from labeling.store import (
    LabelingError,
    LoadedCodebook,
    codebook_for_round,
    ensure_coder,
    ensure_round,
    upsert_coding,
)

SURVEY_ANSWER = "survey_answer"
RAW_HEADER = "raw data"
THEMES_HEADER = "themes"
MEMO_HEADER = "memos"
DEFAULT_ROUND = "study-themes"


def answer_ref(survey: str, response_key: str, qid: str) -> str:
    """The natural key of a survey answer as a label item: `survey/response id/question id`."""
    return f"{survey}/{response_key}/{qid}"


def normalize_answer(text: str) -> str:
    """What two copies of one answer share: HTML entities decoded (`&gt;`), Unicode folded, case and spacing
    ignored (a spreadsheet copy differs from the export in exactly these)."""
    folded = unicodedata.normalize("NFKC", html.unescape(str(text)))
    return " ".join(folded.split()).casefold()


@dataclass(frozen=True)
class TextAnswer:
    """One respondent's free-text answer to a question, with what a coder needs to see it."""

    answer_id: int
    survey: str
    response_key: str
    qid: str
    question: str
    text: str
    excluded: bool = False

    @property
    def ref(self) -> str:
        return answer_ref(self.survey, self.response_key, self.qid)


def _survey(session: Session, name: str) -> Survey:
    row = session.exec(select(Survey).where(Survey.name == name)).first()
    if row is None:
        known = ", ".join(sorted(s.name for s in session.exec(select(Survey)).all())) or "none imported yet"
        raise LabelingError(f"no survey named {name!r} (surveys: {known})")
    return row


def _clean_question(text: str) -> str:
    return re.sub(r"\s*-\s*(Selected Choice|Text)$", "", text.strip())


def text_answers(
    session: Session, survey: str, qid: str | None = None, include_excluded: bool = False
) -> list[TextAnswer]:
    """The non-empty free-text answers of `qid` (every free-text question without it), in export order;
    excluded respondents only with `include_excluded`. A question that is not free text is refused."""
    srv = _survey(session, survey)
    query = (
        select(SurveyAnswer, SurveyQuestion, SurveyResponse)
        .join(SurveyQuestion, col(SurveyQuestion.id) == col(SurveyAnswer.question_id))
        .join(SurveyResponse, col(SurveyResponse.id) == col(SurveyAnswer.response_id))
        .where(SurveyQuestion.survey_id == srv.id, col(SurveyAnswer.text).is_not(None))
        .order_by(col(SurveyQuestion.position), col(SurveyResponse.row_number), col(SurveyAnswer.position))
    )
    if qid is not None:
        question = session.exec(
            select(SurveyQuestion).where(SurveyQuestion.survey_id == srv.id, SurveyQuestion.qid == qid)
        ).first()
        if question is None:
            raise LabelingError(f"survey {survey!r} has no question {qid!r}")
        if question.kind != "text":
            raise LabelingError(
                f"question {qid!r} of survey {survey!r} is a {question.kind} question, not free text: "
                "only free-text answers are coded"
            )
        query = query.where(SurveyQuestion.qid == qid)
    else:
        query = query.where(SurveyQuestion.kind == "text")
    if not include_excluded:
        query = query.where(col(SurveyResponse.excluded).is_(False))
    out: list[TextAnswer] = []
    for answer, question, response in session.exec(query).all():
        text = (answer.text or "").strip()
        if text:
            out.append(
                TextAnswer(
                    answer.id or 0,
                    survey,
                    response.response_key,
                    question.qid,
                    _clean_question(question.text),
                    text,
                    response.excluded,
                )
            )
    return out


def ensure_answer_item(session: Session, answer: TextAnswer) -> LabelItem:
    """The label item standing for a survey answer (one per answer)."""
    item = session.exec(select(LabelItem).where(LabelItem.survey_answer_id == answer.answer_id)).first()
    if item is None:
        item = session.exec(
            select(LabelItem).where(LabelItem.kind == SURVEY_ANSWER, LabelItem.ref == answer.ref)
        ).first()
        if item is None:
            item = LabelItem(kind=SURVEY_ANSWER, ref=answer.ref)
        item.survey_answer_id = answer.answer_id
        session.add(item)
        session.flush()
    return item


def answer_task_data(item: LabelItem, answer: TextAnswer) -> dict[str, Any]:
    """What a coder sees of an answer: the same fields as an issue's task (one config serves both), the
    question in the title and the answer as the text to code."""
    return {
        "item_ref": item.ref,
        "survey": answer.survey,
        "question_id": answer.qid,
        "title": f"{answer.qid}: {answer.question}",
        "body": answer.text,
        "labels": f"survey {answer.survey}, respondent {answer.response_key}",
        "link": "",
        # a review project shows issues and answers with one config, which reads an issue's discussion
        DISCUSSION: "<p><i>A survey answer has no discussion.</i></p>",
    }


def item_answer(session: Session, item: LabelItem) -> TextAnswer | None:
    """The survey answer a label item stands for, or None (not a linked survey answer)."""
    if item.survey_answer_id is None:
        return None
    row = session.exec(
        select(SurveyAnswer, SurveyQuestion, SurveyResponse, Survey)
        .join(SurveyQuestion, col(SurveyQuestion.id) == col(SurveyAnswer.question_id))
        .join(SurveyResponse, col(SurveyResponse.id) == col(SurveyAnswer.response_id))
        .join(Survey, col(Survey.id) == col(SurveyQuestion.survey_id))
        .where(SurveyAnswer.id == item.survey_answer_id)
    ).first()
    if row is None:
        return None
    answer, question, response, survey = row
    return TextAnswer(
        answer.id or 0,
        survey.name,
        response.response_key,
        question.qid,
        _clean_question(question.text),
        (answer.text or "").strip(),
        response.excluded,
    )


# --- the study's thematic workbook ------------------------------------------------------------------------------


@dataclass
class ThemeRow:
    """One coded answer of a thematic sheet: where it is, the raw answer, the memo and the themes as written."""

    row: int
    text: str
    memo: str | None
    themes: list[tuple[str, str]]  # (cell, spelling)


@dataclass
class ThemeSheet:
    name: str
    rows: list[ThemeRow] = field(default_factory=list)


def _cell_text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def read_theme_workbook(path: Path, sheets: list[str] | None = None) -> list[ThemeSheet]:
    """The sheets laid out like the study's: a header row with "Raw data" (column A), optionally "Memos", and
    "Themes" over the theme columns (every column from there on holds one theme per cell)."""
    from openpyxl import load_workbook
    from openpyxl.utils import get_column_letter

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except FileNotFoundError:
        raise SheetError(f"{path}: no such file") from None
    except Exception as exc:  # openpyxl raises many types for a file that is not a workbook
        raise SheetError(f"{path}: not an Excel workbook ({type(exc).__name__})") from None
    out: list[ThemeSheet] = []
    try:
        names = book.sheetnames
        for wanted in sheets or []:
            if wanted not in names:
                raise SheetError(f"{path.name}: no sheet {wanted!r} (sheets: {', '.join(names)})")
        for name in sheets or names:
            rows = list(book[name].iter_rows(values_only=True))
            header = {str(v).strip().casefold(): i for i, v in enumerate(rows[0] if rows else ()) if v is not None}
            if RAW_HEADER not in header or THEMES_HEADER not in header:
                if sheets:
                    raise SheetError(f"{path.name}: sheet {name!r} row 1: expected the headers 'Raw data' and 'Themes'")
                continue
            raw, first_theme, memo = header[RAW_HEADER], header[THEMES_HEADER], header.get(MEMO_HEADER)
            sheet = ThemeSheet(name)
            for number, values in enumerate(rows[1:], start=2):
                text = _cell_text(values[raw] if raw < len(values) else None)
                themes = [
                    (f"{get_column_letter(i + 1)}{number}", t)
                    for i in range(first_theme, len(values))
                    if (t := _cell_text(values[i])) is not None
                ]
                if text is None:
                    if themes:
                        raise SheetError(
                            f"{path.name}: sheet {name!r} row {number}: themes but no answer in 'Raw data'"
                        )
                    continue
                note = _cell_text(values[memo]) if memo is not None and memo < len(values) else None
                sheet.rows.append(ThemeRow(number, text, note, themes))
            out.append(sheet)
    finally:
        book.close()
    if not out:
        raise SheetError(f"{path.name}: no sheet with the headers 'Raw data' and 'Themes'")
    return out


@dataclass
class SheetMatch:
    """How one sheet matched the survey: its question, its dimension, the matched rows and the rest."""

    sheet: str
    qid: str | None
    dimension: str | None
    matched: list[tuple[ThemeRow, TextAnswer]] = field(default_factory=list)
    unmatched: list[ThemeRow] = field(default_factory=list)
    merged: Counter[tuple[str, str]] = field(default_factory=Counter)  # (spelling, label) → cells
    answers: int = 0  # the question's free-text answers in the survey (the sheet may code fewer)


def _dimension_for(book: LoadedCodebook, sheet: str) -> DimensionSpec | None:
    for dim in book.spec.dimensions:
        if (dim.column or "").strip().casefold() == sheet.strip().casefold():
            return dim
    return None


def match_sheet(sheet: ThemeSheet, answers: list[TextAnswer], qid: str | None = None) -> SheetMatch:
    """Match each row to one answer by normalized text: the sheet's question is the one most rows match (unless
    given); equal answers of several respondents are paired in export order, each used once."""
    by_text: dict[str, list[TextAnswer]] = defaultdict(list)
    for a in answers:
        by_text[normalize_answer(a.text)].append(a)
    if qid is None:
        votes = Counter(
            a.qid
            for row in sheet.rows
            for a in {x.qid: x for x in by_text.get(normalize_answer(row.text), [])}.values()
        )
        qid = votes.most_common(1)[0][0] if votes else None
    out = SheetMatch(sheet.name, qid, None, answers=sum(1 for a in answers if a.qid == qid))
    used: set[int] = set()
    for row in sheet.rows:
        candidates = [
            a for a in by_text.get(normalize_answer(row.text), []) if a.qid == qid and a.answer_id not in used
        ]
        if not candidates:
            out.unmatched.append(row)
            continue
        used.add(candidates[0].answer_id)
        out.matched.append((row, candidates[0]))
    return out


@dataclass
class ThemeImport:
    """What an import of a thematic workbook did (for the CLI and the ingest run)."""

    round: str
    sheets: list[SheetMatch] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    finals: Counter[str] = field(default_factory=Counter)


def is_theme_workbook(path: Path) -> bool:
    """Whether `path` is laid out like the study's thematic coding (some sheet has "Raw data" and "Themes")."""
    try:
        read_theme_workbook(path)
    except SheetError:
        return False
    return True


def import_theme_workbook(
    engine: Engine,
    path: str | Path,
    survey: str,
    codebook: str | None = None,
    sheets: list[str] | None = None,
    round_name: str | None = None,
    questions: dict[str, str] | None = None,
) -> ThemeImport:
    """Import the study's thematic coding as one round (coder `study`, final labels decided by `sheet`), every
    answer matched to the survey's free-text answers; rows that match no answer are reported, not stored.
    A theme no code's label or alias names stops the import (nothing is written)."""
    path = Path(path)
    read = read_theme_workbook(path, sheets)
    name = round_name or DEFAULT_ROUND
    result = ThemeImport(name)
    with Session(engine) as session:
        book = codebook_for_round(session, name, codebook)
        answers = text_answers(session, survey, include_excluded=True)
    if not answers:
        raise LabelingError(f"survey {survey!r} has no free-text answers to match the sheets to")
    planned: list[tuple[SheetMatch, DimensionSpec | None, list[tuple[ThemeRow, TextAnswer, list[int]]]]] = []
    for sheet in read:
        match = match_sheet(sheet, answers, (questions or {}).get(sheet.name))
        dim = _dimension_for(book, sheet.name)
        match.dimension = dim.key if dim else None
        rows: list[tuple[ThemeRow, TextAnswer, list[int]]] = []
        for row, answer in match.matched:
            codes: list[int] = []
            for cell, spelling in row.themes:
                if dim is None:
                    raise SheetError(
                        f"{path.name}: sheet {sheet.name!r} cell {cell}: theme {spelling!r} but codebook "
                        f"{book.name!r} has no dimension with column {sheet.name!r}"
                    )
                code = dim.lookup(spelling)
                if code is None:
                    labels = ", ".join(c.label for c in dim.codes.values())
                    raise SheetError(
                        f"{path.name}: sheet {sheet.name!r} cell {cell}: unknown theme {spelling!r} for "
                        f"{dim.key!r} (themes: {labels}; add it or an alias to the codebook)"
                    )
                if spelling != code.label:
                    match.merged[(spelling, code.label)] += 1
                if code.code not in codes:
                    codes.append(code.code)
            rows.append((row, answer, codes))
        planned.append((match, dim, rows))
        result.sheets.append(match)
    params = {
        "file": path.name,
        "survey": survey,
        "kind": "themes",
        "sheets": [m.sheet for m in result.sheets],
        "questions": {m.sheet: m.qid for m in result.sheets},
    }
    with (
        recorded_run(engine, "label-import-themes", {**params, "round": name}) as log,
        session_scope(engine) as session,
    ):
        book = codebook_for_round(session, name, codebook)
        rnd = ensure_round(session, name, book, "sheet", params=params)
        if rnd.params != params:
            rnd.params = params
            session.add(rnd)
        coder = ensure_coder(session, CONSENSUS_CODER)
        kept: set[int] = set()
        decisions: dict[tuple[int, ...], Decision] = {}
        multi = {book.dimension_ids[d.key] for d in book.spec.dimensions if d.multi}
        for match, dim, rows in planned:
            for row, answer, codes in rows:
                item = ensure_answer_item(session, answer)
                values: dict[int, list[int]] = {}
                if dim is not None and codes:
                    values[book.dimension_ids[dim.key]] = [book.code_ids[(dim.key, c)] for c in codes]
                coding, state = upsert_coding(
                    session,
                    rnd.id or 0,
                    item.id or 0,
                    coder.id or 0,
                    values,
                    source_ref=f"{match.sheet}!A{row.row}",
                    note=row.memo,
                )
                result.counts[state] += 1
                kept.add(coding.id or 0)
                for dim_id, code_ids in values.items():
                    for code_id in code_ids:
                        decisions[final_key(item.id or 0, dim_id, code_id, multi)] = Decision(
                            code_id, "sheet", detail={"file": path.name, "cell": f"{match.sheet}!A{row.row}"}
                        )
        for old in session.exec(select(Coding).where(Coding.round_id == rnd.id)).all():
            if old.id not in kept:
                session.delete(old)
                result.counts["removed"] += 1
        session.flush()
        result.finals.update(
            write_final_labels(session, rnd.id or 0, decisions, withdrawn_because=f"not in {path.name}", multi=multi)
        )
        for key in ("new", "changed", "unchanged", "removed"):
            log.add(key, result.counts[key])
        log.add("unmatched", sum(len(m.unmatched) for m in result.sheets))
        log.parameters["unmatched"] = [
            {"sheet": m.sheet, "row": r.row, "text": r.text[:200]} for m in result.sheets for r in m.unmatched
        ]
    return result
