"""The survey read model: surveys, questions, answers and per-question counts, in SQL, as DataFrames.

Every function takes one `SurveyFilter`; the CLI (`interop survey`), the app's Survey page and `report paper`
call these and nothing else. Two denominators are always given side by side, because papers mix them up:
`n_answered` (included respondents with at least one answer to the question) and `n_respondents`
(all included respondents of the survey). Excluded respondents count only with `include_excluded=True`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import case, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from db.columns import many_columns, stored_id
from db.errors import InteropError
from db.models.survey import (
    Survey,
    SurveyAnswer,
    SurveyDefinition,
    SurveyDerivedValue,
    SurveyQuestion,
    SurveyResponse,
)

if TYPE_CHECKING:
    import pandas as pd

COUNT_COLUMNS = ["choice", "count", "n_answered", "n_respondents", "pct_of_answered", "pct_of_respondents"]
#: Question kinds answered by picking choices (the others are free text and numbers, counted per distinct text).
CHOICE_KINDS = ("single", "multi")
TEXT_KINDS = ("text", "number")


class SurveyLookupError(InteropError):
    """No survey or question by that name."""


@dataclass(frozen=True)
class SurveyFilter:
    """What to read: one survey (None: every survey), optionally one question and only some question kinds
    (empty: all), whether excluded respondents count, and which denominator `pct` copies (None: no `pct`)."""

    survey: str | None = None
    qid: str | None = None
    kinds: tuple[str, ...] = ()
    include_excluded: bool = False
    denominator: Literal["answered", "respondents"] | None = None

    def named(self) -> str:
        """The survey's name; a function reading one survey's data refuses a filter without one."""
        if not self.survey:
            raise SurveyLookupError("name a survey (SurveyFilter(survey=...))")
        return self.survey


def _survey(session: Session, name: str) -> Survey:
    survey = session.exec(select(Survey).where(Survey.name == name)).first()
    if survey is None:
        known = ", ".join(session.exec(select(Survey.name).order_by(Survey.name))) or "none imported yet"
        raise SurveyLookupError(f"no survey named {name!r} (surveys: {known})")
    return survey


def _question(session: Session, survey: Survey, qid: str) -> SurveyQuestion:
    question = session.exec(
        select(SurveyQuestion).where(SurveyQuestion.survey_id == survey.id, SurveyQuestion.qid == qid)
    ).first()
    if question is None:
        raise SurveyLookupError(f"survey {survey.name!r} has no question {qid!r}")
    return question


def _included(include_excluded: bool) -> Any:
    return True if include_excluded else SurveyResponse.excluded.is_(False)  # type: ignore[attr-defined]


def _questions(srv: Survey, flt: SurveyFilter) -> list[Any]:
    """WHERE clauses for the survey's questions the filter keeps (one qid, some kinds)."""
    where = [SurveyQuestion.survey_id == srv.id]
    if flt.qid is not None:
        where.append(SurveyQuestion.qid == flt.qid)
    if flt.kinds:
        where.append(SurveyQuestion.kind.in_(list(flt.kinds)))  # type: ignore[attr-defined]
    return where


def list_surveys(engine: Engine, flt: SurveyFilter | None = None) -> pd.DataFrame:
    """One row per survey (only `flt.survey` when given): respondents (included/excluded), questions, current
    definition version, last source file and its layout."""
    import pandas as pd

    flt = flt or SurveyFilter()
    response = select(func.count(col(SurveyResponse.id))).where(col(SurveyResponse.survey_id) == col(Survey.id))
    stmt = select(
        *many_columns(
            Survey,
            response.scalar_subquery().label("respondents"),
            response.where(SurveyResponse.excluded.is_(True)).scalar_subquery().label("excluded"),  # type: ignore[attr-defined]
            select(func.count(col(SurveyQuestion.id)))
            .where(col(SurveyQuestion.survey_id) == col(Survey.id))
            .scalar_subquery()
            .label("questions"),
            select(func.max(SurveyDefinition.version))
            .where(SurveyDefinition.survey_id == Survey.id)
            .scalar_subquery()
            .label("definition_version"),
        )
    ).order_by(col(Survey.name))
    if flt.survey is not None:
        stmt = stmt.where(Survey.name == flt.survey)
    with Session(engine) as session:
        rows = [
            {
                "survey": survey.name,
                "respondents": int(total),
                "included": int(total) - int(excluded),
                "excluded": int(excluded),
                "questions": int(questions),
                "source_file": survey.source_file,
                "source_format": survey.source_format,
                "exclusion_rules": [r["rule"] for r in survey.exclusion_rules],
                "definition_version": version,
                "export_layout": survey.export_layout or {},
                "updated_at": survey.updated_at,
            }
            for survey, total, excluded, questions, version in session.exec(stmt)
        ]
    columns = [
        "survey",
        "respondents",
        "included",
        "excluded",
        "questions",
        "source_file",
        "source_format",
        "exclusion_rules",
        "definition_version",
        "export_layout",
        "updated_at",
    ]
    return pd.DataFrame(rows, columns=columns)


def list_questions(engine: Engine, flt: SurveyFilter) -> pd.DataFrame:
    """The survey's questions in export order: kind (and why, and whether the definition gave it or it was
    guessed from the answers), the definition's type, choices, and how many respondents answered."""
    import pandas as pd

    with Session(engine) as session:
        srv = _survey(session, flt.named())
        answered = (
            select(SurveyAnswer.question_id, func.count(func.distinct(SurveyAnswer.response_id)).label("n"))
            .join(SurveyResponse, col(SurveyResponse.id) == col(SurveyAnswer.response_id))
            .where(SurveyResponse.survey_id == srv.id, _included(flt.include_excluded))
            .group_by(col(SurveyAnswer.question_id))
            .subquery()
        )
        stmt = (
            select(SurveyQuestion, answered.c.n, SurveyDefinition.version)
            .outerjoin(answered, answered.c.question_id == SurveyQuestion.id)
            .outerjoin(SurveyDefinition, col(SurveyDefinition.id) == col(SurveyQuestion.definition_id))
            .where(*_questions(srv, flt))
            .order_by(col(SurveyQuestion.position))
        )
        rows = [
            {
                "qid": q.qid,
                "kind": q.kind,
                "text": q.text,
                "n_choices": len(q.choices),
                "choices": list(q.choices),
                "n_answered": int(n or 0),
                "kind_reason": q.kind_reason,
                "text_columns": dict(q.text_columns),
                "kind_source": q.kind_source,
                "qtype": q.qtype,
                "parent_qid": q.parent_qid,
                "definition_version": version,
                "details": dict(q.details),
            }
            for q, n, version in session.exec(stmt)
        ]
    columns = [
        "qid",
        "kind",
        "text",
        "n_choices",
        "choices",
        "n_answered",
        "kind_reason",
        "text_columns",
        "kind_source",
        "qtype",
        "parent_qid",
        "definition_version",
        "details",
    ]
    return pd.DataFrame(rows, columns=columns)


def stored_questions(engine: Engine, flt: SurveyFilter) -> dict[str, tuple[str, str, list[str], str]]:
    """qid -> (kind, kind_reason, choices, kind_source) as stored by earlier imports; empty for a new survey."""
    with Session(engine) as session:
        srv = session.exec(select(Survey).where(Survey.name == flt.named())).first()
        if srv is None:
            return {}
        return {
            q.qid: (q.kind, q.kind_reason, list(q.choices), q.kind_source)
            for q in session.exec(select(SurveyQuestion).where(*_questions(srv, flt)))
        }


def definitions(engine: Engine, flt: SurveyFilter) -> list[dict[str, Any]]:
    """The survey's stored definition versions, oldest first (the last one is current), with their content;
    empty for a survey not imported yet."""
    with Session(engine) as session:
        srv = session.exec(select(Survey).where(Survey.name == flt.named())).first()
        if srv is None:
            return []
        used = (
            select(col(SurveyQuestion.definition_id), func.count(col(SurveyQuestion.id)).label("n"))
            .where(SurveyQuestion.survey_id == srv.id)
            .group_by(col(SurveyQuestion.definition_id))
            .subquery()
        )
        rows = session.exec(
            select(SurveyDefinition, used.c.n)
            .outerjoin(used, used.c.definition_id == SurveyDefinition.id)
            .where(SurveyDefinition.survey_id == srv.id)
            .order_by(col(SurveyDefinition.version))
        ).all()
        return [
            {
                "version": d.version,
                "content_hash": d.content_hash,
                "source": d.source,
                "qualtrics_id": d.qualtrics_id,
                "title": d.title,
                "language": d.language,
                "questions": d.questions,
                "stored_questions": int(n or 0),
                "loaded_at": d.loaded_at,
                "spec": d.spec,
            }
            for d, n in rows
        ]


def derived_values(engine: Engine, flt: SurveyFilter) -> pd.DataFrame:
    """Values Qualtrics derived from answers (Text iQ topics and sentiment, NPS group), one row per value;
    excluded respondents' values too, flagged (the filter's `qid` narrows to one question)."""
    import pandas as pd

    with Session(engine) as session:
        srv = _survey(session, flt.named())
        if flt.qid is not None:
            _question(session, srv, flt.qid)
        query = (
            select(
                *many_columns(
                    col(SurveyResponse.response_key),
                    col(SurveyQuestion.qid),
                    col(SurveyDerivedValue.name),
                    col(SurveyDerivedValue.value),
                    col(SurveyResponse.excluded),
                )
            )
            .join(SurveyResponse, SurveyResponse.id == SurveyDerivedValue.response_id)
            .join(SurveyQuestion, SurveyQuestion.id == SurveyDerivedValue.question_id)
            .where(SurveyResponse.survey_id == srv.id, *_questions(srv, flt))
            .order_by(SurveyResponse.row_number, SurveyQuestion.position, SurveyDerivedValue.name)
        )
        rows = session.exec(query).all()
    columns = ["response_key", "qid", "name", "value", "excluded"]
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def respondent_count(engine: Engine, flt: SurveyFilter) -> int:
    """Respondents of the survey (only included ones unless `include_excluded`)."""
    with Session(engine) as session:
        srv = _survey(session, flt.named())
        return int(
            session.exec(
                select(func.count(col(SurveyResponse.id))).where(
                    SurveyResponse.survey_id == srv.id, _included(flt.include_excluded)
                )
            ).one()
        )


def survey_counts(engine: Engine, flt: SurveyFilter) -> pd.DataFrame:
    """Counts per choice (per distinct text for free-text and number questions) of every question the filter
    keeps, stacked in export order with a leading `qid` column and both denominators.

    Known choices nobody selected appear with count 0; within a question rows go by count, then the choices'
    order. Multi-select percentages add up to more than 100."""
    import pandas as pd

    with Session(engine) as session:
        srv = _survey(session, flt.named())
        if flt.qid is not None:
            _question(session, srv, flt.qid)
        included = _included(flt.include_excluded)
        questions = session.exec(
            select(SurveyQuestion).where(*_questions(srv, flt)).order_by(col(SurveyQuestion.position))
        ).all()
        n_respondents = int(
            session.exec(
                select(func.count(col(SurveyResponse.id))).where(col(SurveyResponse.survey_id) == srv.id, included)
            ).one()
        )
        # one row per (question, respondent, value): free text and numbers count by text, the rest by choice
        value = case((SurveyQuestion.kind.in_(TEXT_KINDS), SurveyAnswer.text), else_=SurveyAnswer.choice)  # type: ignore[attr-defined]
        given = (
            select(SurveyAnswer.question_id, SurveyAnswer.response_id, value.label("value"))
            .join(SurveyResponse, col(SurveyResponse.id) == col(SurveyAnswer.response_id))
            .join(SurveyQuestion, col(SurveyQuestion.id) == col(SurveyAnswer.question_id))
            .where(*_questions(srv, flt), included)
            .subquery()
        )
        respondents = func.count(func.distinct(given.c.response_id))
        n_answered = dict(session.exec(select(given.c.question_id, respondents).group_by(given.c.question_id)).all())
        counted = session.exec(
            select(given.c.question_id, given.c.value, respondents).group_by(given.c.question_id, given.c.value)
        ).all()
    per_question: dict[int, dict[Any, int]] = {q.id or 0: {} for q in questions}
    for question_id, choice, n in counted:
        per_question[question_id][choice] = int(n)
    rows: list[dict[str, Any]] = []
    for position, q in enumerate(questions):
        counts = per_question[q.id or 0]
        for choice in q.choices:
            counts.setdefault(choice, 0)
        order = {c: i for i, c in enumerate(q.choices)}
        answered = int(n_answered.get(q.id, 0))
        rows.extend(
            {
                "qid": q.qid,
                "choice": choice,
                "count": n,
                "n_answered": answered,
                "n_respondents": n_respondents,
                "_position": position,
                "_order": order.get(choice, len(order)),
            }
            for choice, n in counts.items()
        )
    frame = pd.DataFrame(rows, columns=["qid", "choice", "count", "n_answered", "n_respondents", "_position", "_order"])
    frame = frame.astype({"count": "int64", "n_answered": "int64", "n_respondents": "int64"})
    answered_base = frame["n_answered"].where(frame["n_answered"] > 0)
    respondent_base = frame["n_respondents"].where(frame["n_respondents"] > 0)
    frame["pct_of_answered"] = (frame["count"] * 100.0 / answered_base).astype("float64")
    frame["pct_of_respondents"] = (frame["count"] * 100.0 / respondent_base).astype("float64")
    frame = frame.sort_values(
        ["_position", "count", "_order", "choice"], ascending=[True, False, True, True], kind="stable"
    )
    frame = frame[["qid", *COUNT_COLUMNS]].reset_index(drop=True)
    if flt.denominator is not None:
        if flt.denominator not in ("answered", "respondents"):
            raise ValueError(f"denominator must be 'answered' or 'respondents', not {flt.denominator!r}")
        frame = frame.assign(pct=frame[f"pct_of_{flt.denominator}"])
        frame.attrs["denominator"] = flt.denominator
    return frame


def question_counts(engine: Engine, flt: SurveyFilter) -> pd.DataFrame:
    """`survey_counts` of the filter's one question (`qid` is required), without the `qid` column.

    Columns: choice, count, n_answered, n_respondents, pct_of_answered, pct_of_respondents, and with
    `denominator` also `pct` (a copy of the chosen one; `frame.attrs["denominator"]` names it); `frame.attrs`
    also give the survey, qid, kind and question text."""
    if flt.qid is None:
        raise SurveyLookupError("name a question (SurveyFilter(qid=...))")
    with Session(engine) as session:
        question = _question(session, _survey(session, flt.named()), flt.qid)
        kind, text = question.kind, question.text
    stacked = survey_counts(engine, SurveyFilter(flt.survey, flt.qid, (), flt.include_excluded, flt.denominator))
    frame = stacked.drop(columns="qid")
    frame.attrs.update({"survey": flt.survey, "qid": flt.qid, "kind": kind, "text": text, **stacked.attrs})
    return frame


def survey_crosstab(engine: Engine, flt: SurveyFilter, by_qid: str) -> pd.DataFrame:
    """Respondents per pair of answers to the filter's question (`qid`) and question `by_qid`, counted in SQL.

    Long form, one row per pair that occurs: choice, by_choice, count (distinct respondents; a multi-select
    respondent counts once in each of their pairs), pct_of_both (of the respondents who answered both).
    Free-text and number questions pair by their text; `frame.attrs` name both questions and `n_both`."""
    import pandas as pd

    if flt.qid is None:
        raise SurveyLookupError("name a question (SurveyFilter(qid=...))")
    if by_qid == flt.qid:
        raise SurveyLookupError(f"cross-tabulate {flt.qid} with another question, not with itself")
    with Session(engine) as session:
        srv = _survey(session, flt.named())
        first, second = _question(session, srv, flt.qid), _question(session, srv, by_qid)

        def given(question: SurveyQuestion) -> Any:
            value = col(SurveyAnswer.text) if question.kind in TEXT_KINDS else col(SurveyAnswer.choice)
            return (
                select(col(SurveyAnswer.response_id).label("response_id"), value.label("value"))
                .join(SurveyResponse, col(SurveyResponse.id) == col(SurveyAnswer.response_id))
                .where(
                    col(SurveyAnswer.question_id) == stored_id(question),
                    value.is_not(None),
                    _included(flt.include_excluded),
                )
                .distinct()
                .subquery()
            )

        a, b = given(first), given(second)
        pairs = session.exec(
            select(a.c.value, b.c.value, func.count(func.distinct(a.c.response_id)))
            .join(b, b.c.response_id == a.c.response_id)
            .group_by(a.c.value, b.c.value)
        ).all()
        n_both = session.exec(
            select(func.count(func.distinct(a.c.response_id))).join(b, b.c.response_id == a.c.response_id)
        ).one()
    order_a = {c: i for i, c in enumerate(first.choices)}
    order_b = {c: i for i, c in enumerate(second.choices)}
    frame = pd.DataFrame([tuple(r) for r in pairs], columns=["choice", "by_choice", "count"])
    frame["count"] = frame["count"].astype(int)
    frame["pct_of_both"] = (100.0 * frame["count"] / n_both).round(1) if n_both else 0.0
    frame = frame.sort_values(
        ["choice", "by_choice"],
        key=lambda s: s.map(lambda v: (order_a if s.name == "choice" else order_b).get(v, len(order_a) + 1)),
        kind="stable",
    ).reset_index(drop=True)
    frame.attrs.update(
        {
            "survey": flt.survey,
            "qid": flt.qid,
            "by_qid": by_qid,
            "text": first.text,
            "by_text": second.text,
            "n_both": int(n_both),
        }
    )
    return frame


def answers(engine: Engine, flt: SurveyFilter) -> pd.DataFrame:
    """Every answer in long form (response_key, qid, position, choice, text, known, value, excluded)."""
    import pandas as pd

    with Session(engine) as session:
        srv = _survey(session, flt.named())
        rows = session.exec(
            select(
                *many_columns(
                    col(SurveyResponse.response_key),
                    col(SurveyQuestion.qid),
                    col(SurveyAnswer.position),
                    col(SurveyAnswer.choice),
                    col(SurveyAnswer.text),
                    col(SurveyAnswer.known),
                    col(SurveyAnswer.value),
                    col(SurveyResponse.excluded),
                )
            )
            .join(SurveyResponse, SurveyResponse.id == SurveyAnswer.response_id)
            .join(SurveyQuestion, SurveyQuestion.id == SurveyAnswer.question_id)
            .where(*_questions(srv, flt), _included(flt.include_excluded))
            .order_by(SurveyResponse.row_number, SurveyQuestion.position, SurveyAnswer.position)
        ).all()
    columns = ["response_key", "qid", "position", "choice", "text", "known", "value", "excluded"]
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def responses(engine: Engine, flt: SurveyFilter) -> pd.DataFrame:
    """One row per response: key, file row, excluded flag and reason (excluded ones with `include_excluded`)."""
    import pandas as pd

    with Session(engine) as session:
        srv = _survey(session, flt.named())
        rows = session.exec(
            select(
                *many_columns(
                    col(SurveyResponse.response_key),
                    col(SurveyResponse.key_source),
                    col(SurveyResponse.row_number),
                    col(SurveyResponse.excluded),
                    col(SurveyResponse.exclusion_reason),
                )
            )
            .where(SurveyResponse.survey_id == srv.id, _included(flt.include_excluded))
            .order_by(SurveyResponse.row_number)
        ).all()
    columns = ["response_key", "key_source", "row_number", "excluded", "exclusion_reason"]
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)
