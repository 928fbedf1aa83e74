"""Idempotent upserts of a survey plan into the database, inside the caller's single transaction."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert
from sqlmodel import Session, col, select

from db.columns import many_columns, stored_id
from db.models.survey import (
    Survey,
    SurveyAnswer,
    SurveyDefinition,
    SurveyDerivedValue,
    SurveyQuestion,
    SurveyResponse,
)
from db.types import utcnow
from miners.survey.definition import SurveyDefinition as DefinitionSpec
from miners.survey.exclusion import ExclusionRule, RuleError, check_rules, evaluate, merge_rules
from miners.survey.plan import AnswerPlan, DerivedPlan, QuestionPlan, ResponsePlan, SurveyPlan
from miners.survey.reader import QualtricsExport

AnswerKey = tuple[str, int, str | None, str | None, bool, float | None]
DerivedKey = tuple[str, str, str]


@dataclass
class ImportResult:
    """What an import changed; `nothing_new` is the idempotent re-import case."""

    survey: str
    survey_created: bool = False
    questions_new: int = 0
    questions_updated: int = 0
    responses_in_file: int = 0
    responses_new: int = 0
    responses_updated: int = 0
    responses_unchanged: int = 0
    answers_written: int = 0
    derived_written: int = 0
    questions_dropped: int = 0
    excluded: int = 0
    included: int = 0
    exclusion_changes: int = 0
    definition_version: int | None = None
    definition_created: bool = False

    @property
    def nothing_new(self) -> bool:
        return not (
            self.survey_created
            or self.questions_new
            or self.questions_updated
            or self.questions_dropped
            or self.responses_new
            or self.responses_updated
            or self.exclusion_changes
            or self.definition_created
        )

    def counts(self) -> dict[str, int]:
        return {
            k: int(v)
            for k, v in vars(self).items()
            if isinstance(v, int | bool) and k not in ("survey",) and v is not None
        }


def store_definition(
    session: Session, survey: Survey, spec: DefinitionSpec, source: str | None
) -> tuple[int, int, bool]:
    """Store `spec` as the survey's next definition version, or find the identical one; (id, version, created)."""
    digest = spec.content_hash()
    same = session.exec(
        select(SurveyDefinition).where(SurveyDefinition.survey_id == survey.id, SurveyDefinition.content_hash == digest)
    ).first()
    if same is not None:
        return int(same.id or 0), same.version, False
    last = session.exec(select(func.max(SurveyDefinition.version)).where(SurveyDefinition.survey_id == survey.id)).one()
    row = SurveyDefinition(
        survey_id=survey.id or 0,
        version=(last or 0) + 1,
        content_hash=digest,
        source=source,
        qualtrics_id=spec.survey_id,
        title=spec.name,
        language=spec.language,
        questions=len(spec.answered),
        spec=spec.to_json(),
    )
    session.add(row)
    session.flush()
    return int(row.id or 0), row.version, True


def _question_fields(plan: QuestionPlan, definition_id: int | None) -> dict[str, Any]:
    return {
        "import_id": plan.import_id,
        "position": plan.position,
        "text": plan.text,
        "kind": plan.kind,
        "kind_reason": plan.kind_reason,
        "kind_source": plan.kind_source,
        "qtype": plan.qtype,
        "definition_id": definition_id if plan.kind_source == "definition" else None,
        "parent_qid": plan.parent_qid,
        "choices": list(plan.choices),
        "text_columns": dict(plan.text_columns),
        "details": dict(plan.details),
    }


def _upsert_questions(
    session: Session, survey: Survey, plan: SurveyPlan, result: ImportResult, definition_id: int | None
) -> dict[str, int]:
    """Insert new questions, update changed ones; returns qid -> question id for every stored question."""
    existing = {q.qid: q for q in session.exec(select(SurveyQuestion).where(SurveyQuestion.survey_id == survey.id))}
    for qplan in plan.questions:
        fields = _question_fields(qplan, definition_id)
        row = existing.get(qplan.qid)
        if row is None:
            row = SurveyQuestion(survey_id=stored_id(survey), qid=qplan.qid, **fields)
            session.add(row)
            existing[qplan.qid] = row
            result.questions_new += 1
        elif any(getattr(row, k) != v for k, v in fields.items()):
            for k, v in fields.items():
                setattr(row, k, v)
            session.add(row)
            result.questions_updated += 1
    session.flush()
    return {qid: int(q.id) for qid, q in existing.items() if q.id is not None}


def _stored_answers(session: Session, survey_id: int) -> dict[int, list[AnswerKey]]:
    """response id -> its answers as comparable tuples, in a stable order."""
    query = (
        select(
            *many_columns(
                col(SurveyAnswer.response_id),
                col(SurveyQuestion.qid),
                col(SurveyAnswer.position),
                col(SurveyAnswer.choice),
                col(SurveyAnswer.text),
                col(SurveyAnswer.known),
                col(SurveyAnswer.value),
            )
        )
        .join(SurveyQuestion, SurveyQuestion.id == SurveyAnswer.question_id)
        .where(SurveyQuestion.survey_id == survey_id)
    )
    answers: dict[int, list[AnswerKey]] = defaultdict(list)
    for response_id, qid, position, choice, text, known, value in session.exec(query):
        answers[response_id].append((qid, position, choice, text, bool(known), value))
    return {rid: sorted(rows, key=lambda r: (r[0], r[1])) for rid, rows in answers.items()}


def _stored_derived(session: Session, survey_id: int) -> dict[int, list[DerivedKey]]:
    query = (
        select(SurveyDerivedValue.response_id, SurveyQuestion.qid, SurveyDerivedValue.name, SurveyDerivedValue.value)
        .join(SurveyQuestion, col(SurveyQuestion.id) == col(SurveyDerivedValue.question_id))
        .where(SurveyQuestion.survey_id == survey_id)
    )
    derived: dict[int, list[DerivedKey]] = defaultdict(list)
    for response_id, qid, name, value in session.exec(query):
        derived[response_id].append((qid, name, value))
    return {rid: sorted(rows) for rid, rows in derived.items()}


def _planned(answers: list[AnswerPlan]) -> list[AnswerKey]:
    return sorted(
        ((a.qid, a.position, a.choice, a.text, a.known, a.value) for a in answers), key=lambda r: (r[0], r[1])
    )


def _planned_derived(derived: list[DerivedPlan]) -> list[DerivedKey]:
    return sorted((d.qid, d.name, d.value) for d in derived)


def load_plan(
    session: Session,
    name: str,
    export: QualtricsExport,
    plan: SurveyPlan,
    new_rules: list[ExclusionRule] | None = None,
    definition: tuple[DefinitionSpec, str | None] | None = None,
    layout: dict[str, Any] | None = None,
) -> ImportResult:
    """Upsert survey, its definition version, questions, responses and answers; re-apply the exclusion rules.

    `definition` is the parsed definition and the file it came from; `layout` what was recognised about the
    export (stored with the survey). The caller commits.
    """
    result = ImportResult(survey=name, responses_in_file=len(plan.responses))
    survey = session.exec(select(Survey).where(Survey.name == name)).first()
    if survey is None:
        survey = Survey(name=name)
        session.add(survey)
        session.flush()
        result.survey_created = True
    if (survey.source_sha256, survey.source_file, survey.source_format, survey.export_layout) != (
        export.sha256,
        export.path.name,
        export.format,
        layout,
    ):
        survey.source_file, survey.source_sha256, survey.source_format = export.path.name, export.sha256, export.format
        survey.export_layout = layout
        survey.updated_at = utcnow()
        session.add(survey)
    assert survey.id is not None
    definition_id = None
    if definition is not None:
        definition_id, result.definition_version, result.definition_created = store_definition(
            session, survey, *definition
        )
    question_ids = _upsert_questions(session, survey, plan, result, definition_id)

    existing = {
        r.response_key: r for r in session.exec(select(SurveyResponse).where(SurveyResponse.survey_id == survey.id))
    }
    stored_answers = _stored_answers(session, survey.id)
    stored_derived = _stored_derived(session, survey.id)
    pending: list[tuple[str, ResponsePlan]] = []
    new_rows: list[dict[str, Any]] = []
    now = utcnow()
    for rplan in plan.responses:
        row = existing.get(rplan.key)
        if row is None:
            new_rows.append(
                {
                    "survey_id": survey.id,
                    "response_key": rplan.key,
                    "key_source": rplan.key_source,
                    "row_number": rplan.row_number,
                    "raw": rplan.raw,
                    "excluded": False,
                    "exclusion_reason": None,
                    "imported_at": now,
                }
            )
            pending.append((rplan.key, rplan))
            result.responses_new += 1
            continue
        assert row.id is not None
        if (
            row.raw == rplan.raw
            and stored_answers.get(row.id, []) == _planned(rplan.answers)
            and stored_derived.get(row.id, []) == _planned_derived(rplan.derived)
        ):
            result.responses_unchanged += 1
            if row.row_number != rplan.row_number:
                row.row_number = rplan.row_number
                session.add(row)
            continue
        row.raw, row.row_number, row.key_source = rplan.raw, rplan.row_number, rplan.key_source
        session.add(row)
        session.execute(delete(SurveyAnswer).where(col(SurveyAnswer.response_id) == row.id))
        session.execute(delete(SurveyDerivedValue).where(SurveyDerivedValue.response_id == row.id))  # type: ignore[arg-type]
        pending.append((rplan.key, rplan))
        result.responses_updated += 1
    session.flush()
    # Core executemany inserts: ORM unit-of-work per object costs ~10x for tens of thousands of rows.
    if new_rows:
        session.execute(insert(SurveyResponse.__table__), new_rows)  # type: ignore[attr-defined]
    ids = dict(
        session.exec(
            select(SurveyResponse.response_key, SurveyResponse.id).where(SurveyResponse.survey_id == survey.id)
        ).all()
    )
    values = [
        {
            "response_id": ids[key],
            "question_id": question_ids[a.qid],
            "position": a.position,
            "choice": a.choice,
            "text": a.text,
            "known": a.known,
            "value": a.value,
        }
        for key, rplan in pending
        for a in rplan.answers
    ]
    if values:
        session.execute(insert(SurveyAnswer.__table__), values)  # type: ignore[attr-defined]
    result.answers_written = len(values)
    derived = [
        {"response_id": ids[key], "question_id": question_ids[d.qid], "name": d.name, "value": d.value}
        for key, rplan in pending
        for d in rplan.derived
    ]
    if derived:
        session.execute(insert(SurveyDerivedValue.__table__), derived)  # type: ignore[attr-defined]
    result.derived_written = len(derived)
    result.questions_dropped = _drop_unused_questions(session, survey.id, {q.qid for q in plan.questions})
    apply_exclusions(session, survey, new_rules or [], result)
    return result


def _drop_unused_questions(session: Session, survey_id: int, planned: set[str]) -> int:
    """Questions of an earlier import that this one no longer has and that hold no answer any more
    (e.g. split multi-select columns that a definition made one question): they would only mislead."""
    used = select(SurveyAnswer.question_id).distinct()
    derived = select(SurveyDerivedValue.question_id).distinct()
    stale = [
        q
        for q in session.exec(
            select(SurveyQuestion).where(
                SurveyQuestion.survey_id == survey_id,
                SurveyQuestion.id.not_in(used),  # type: ignore[union-attr]
                SurveyQuestion.id.not_in(derived),  # type: ignore[union-attr]
            )
        )
        if q.qid not in planned
    ]
    for question in stale:
        session.delete(question)
    session.flush()
    return len(stale)


def apply_exclusions(
    session: Session, survey: Survey, new_rules: list[ExclusionRule], result: ImportResult | None = None
) -> ImportResult:
    """Merge `new_rules` into the survey's rules and re-evaluate them on every stored response."""
    result = result or ImportResult(survey=survey.name)
    rules = merge_rules(survey.exclusion_rules, new_rules)
    questions = {
        q.qid: (q.kind, list(q.choices))
        for q in session.exec(select(SurveyQuestion).where(SurveyQuestion.survey_id == survey.id))
    }
    check_rules(rules, questions)
    responses = list(session.exec(select(SurveyResponse).where(SurveyResponse.survey_id == survey.id)))
    keys = {r.response_key for r in responses}
    for rule in rules:
        if rule.field == "response" and rule.value not in keys:
            raise RuleError(f"exclusion rule {rule.expression!r}: no response with that key in survey {survey.name!r}")
    stored = [r.stored() for r in rules]
    if stored != list(survey.exclusion_rules):
        survey.exclusion_rules = stored
        survey.updated_at = utcnow()
        session.add(survey)
        result.exclusion_changes += 1
    assert survey.id is not None
    answers: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for response_id, rows in _stored_answers(session, survey.id).items():
        for qid, _pos, choice, text, _known, _value in rows:
            answers[response_id][qid].update(v for v in (choice, text) if v is not None)
    for response in responses:
        assert response.id is not None
        excluded, reason = evaluate(rules, response.response_key, answers.get(response.id, {}))
        if (response.excluded, response.exclusion_reason) != (excluded, reason):
            response.excluded, response.exclusion_reason = excluded, reason
            session.add(response)
            result.exclusion_changes += 1
        result.excluded += int(excluded)
        result.included += int(not excluded)
    session.flush()
    return result


def clear_exclusions(session: Session, survey: Survey) -> int:
    """Drop every rule and flag of a survey; returns how many responses became included again."""
    survey.exclusion_rules = []
    survey.updated_at = utcnow()
    session.add(survey)
    changed = 0
    for response in session.exec(
        select(SurveyResponse).where(SurveyResponse.survey_id == survey.id, SurveyResponse.excluded.is_(True))  # type: ignore[attr-defined]
    ):
        response.excluded, response.exclusion_reason = False, None
        session.add(response)
        changed += 1
    session.flush()
    return changed
