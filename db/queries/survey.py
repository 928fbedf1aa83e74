"""Survey read-side: surveys, questions and per-question counts with an explicit denominator, as DataFrames.

Two denominators are always given side by side, because papers mix them up:
`n_answered` (included respondents with at least one answer to the question) and `n_respondents`
(all included respondents of the survey). Excluded respondents count only with `include_excluded=True`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import func
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


class SurveyLookupError(InteropError):
    """No survey or question by that name."""


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


def list_surveys(engine: Engine) -> pd.DataFrame:
    """One row per survey: respondents (included/excluded), questions, last source file."""
    import pandas as pd

    with Session(engine) as session:
        rows = []
        for survey in session.exec(select(Survey).order_by(Survey.name)):
            total, excluded = session.exec(
                select(
                    func.count(col(SurveyResponse.id)),
                    func.count(col(SurveyResponse.id)).filter(col(SurveyResponse.excluded)),
                ).where(SurveyResponse.survey_id == survey.id)
            ).one()
            n_questions = session.exec(
                select(func.count(col(SurveyQuestion.id))).where(col(SurveyQuestion.survey_id) == survey.id)
            ).one()
            definition = session.exec(
                select(func.max(SurveyDefinition.version)).where(SurveyDefinition.survey_id == survey.id)
            ).one()
            rows.append(
                {
                    "survey": survey.name,
                    "respondents": total,
                    "included": total - excluded,
                    "excluded": excluded,
                    "questions": n_questions,
                    "source_file": survey.source_file,
                    "source_format": survey.source_format,
                    "exclusion_rules": [r["rule"] for r in survey.exclusion_rules],
                    "definition_version": definition,
                    "export_layout": survey.export_layout or {},
                    "updated_at": survey.updated_at,
                }
            )
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


def list_questions(engine: Engine, survey: str, include_excluded: bool = False) -> pd.DataFrame:
    """The survey's questions in export order: kind (and why, and whether the definition gave it or it was
    guessed from the answers), the definition's type, choices, and how many respondents answered."""
    import pandas as pd

    with Session(engine) as session:
        srv = _survey(session, survey)
        versions = dict(
            session.exec(
                select(SurveyDefinition.id, SurveyDefinition.version).where(SurveyDefinition.survey_id == srv.id)
            ).all()
        )
        answered = dict(
            session.exec(
                select(SurveyAnswer.question_id, func.count(func.distinct(SurveyAnswer.response_id)))
                .join(SurveyResponse, col(SurveyResponse.id) == col(SurveyAnswer.response_id))
                .where(SurveyResponse.survey_id == srv.id, _included(include_excluded))
                .group_by(col(SurveyAnswer.question_id))
            ).all()
        )
        rows = [
            {
                "qid": q.qid,
                "kind": q.kind,
                "text": q.text,
                "n_choices": len(q.choices),
                "choices": list(q.choices),
                "n_answered": answered.get(stored_id(q), 0),
                "kind_reason": q.kind_reason,
                "text_columns": dict(q.text_columns),
                "kind_source": q.kind_source,
                "qtype": q.qtype,
                "parent_qid": q.parent_qid,
                "definition_version": versions.get(q.definition_id) if q.definition_id is not None else None,
                "details": dict(q.details),
            }
            for q in session.exec(
                select(SurveyQuestion)
                .where(col(SurveyQuestion.survey_id) == srv.id)
                .order_by(col(SurveyQuestion.position))
            )
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


def stored_questions(engine: Engine, survey: str) -> dict[str, tuple[str, str, list[str], str]]:
    """qid -> (kind, kind_reason, choices, kind_source) as stored by earlier imports; empty for a new survey."""
    with Session(engine) as session:
        srv = session.exec(select(Survey).where(Survey.name == survey)).first()
        if srv is None:
            return {}
        return {
            q.qid: (q.kind, q.kind_reason, list(q.choices), q.kind_source)
            for q in session.exec(select(SurveyQuestion).where(SurveyQuestion.survey_id == srv.id))
        }


def definitions(engine: Engine, survey: str) -> list[dict[str, Any]]:
    """The survey's stored definition versions, oldest first (the last one is current), with their content."""
    with Session(engine) as session:
        srv = session.exec(select(Survey).where(Survey.name == survey)).first()
        if srv is None:
            return []
        rows = session.exec(
            select(SurveyDefinition)
            .where(col(SurveyDefinition.survey_id) == srv.id)
            .order_by(col(SurveyDefinition.version))
        ).all()
        used = dict(
            session.exec(
                select(col(SurveyQuestion.definition_id), func.count(col(SurveyQuestion.id)))
                .where(SurveyQuestion.survey_id == srv.id)
                .group_by(col(SurveyQuestion.definition_id))
            ).all()
        )
        return [
            {
                "version": d.version,
                "content_hash": d.content_hash,
                "source": d.source,
                "qualtrics_id": d.qualtrics_id,
                "title": d.title,
                "language": d.language,
                "questions": d.questions,
                "stored_questions": int(used.get(d.id, 0)),
                "loaded_at": d.loaded_at,
                "spec": d.spec,
            }
            for d in rows
        ]


def derived_values(engine: Engine, survey: str, qid: str | None = None) -> pd.DataFrame:
    """Values Qualtrics derived from answers (Text iQ topics and sentiment, NPS group), one row per value."""
    import pandas as pd

    with Session(engine) as session:
        srv = _survey(session, survey)
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
            .where(SurveyResponse.survey_id == srv.id)
            .order_by(SurveyResponse.row_number, SurveyQuestion.position, SurveyDerivedValue.name)
        )
        if qid is not None:
            _question(session, srv, qid)
            query = query.where(SurveyQuestion.qid == qid)
        rows = session.exec(query).all()
    columns = ["response_key", "qid", "name", "value", "excluded"]
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def respondent_count(engine: Engine, survey: str, include_excluded: bool = False) -> int:
    """Respondents of the survey (only included ones unless `include_excluded`)."""
    with Session(engine) as session:
        srv = _survey(session, survey)
        return int(
            session.exec(
                select(func.count(col(SurveyResponse.id))).where(
                    col(SurveyResponse.survey_id) == srv.id, _included(include_excluded)
                )
            ).one()
        )


def question_counts(
    engine: Engine,
    survey: str,
    qid: str,
    include_excluded: bool = False,
    denominator: Literal["answered", "respondents"] | None = None,
) -> pd.DataFrame:
    """Counts per choice (per distinct text for free-text questions) with both denominators.

    Columns: choice, count, n_answered, n_respondents, pct_of_answered, pct_of_respondents, and with
    `denominator` also `pct` (a copy of the chosen one; `frame.attrs["denominator"]` names it). Known
    choices nobody selected appear with count 0. Multi-select percentages add up to more than 100.
    """
    import pandas as pd

    with Session(engine) as session:
        srv = _survey(session, survey)
        question = _question(session, srv, qid)
        included = _included(include_excluded)
        n_respondents = session.exec(
            select(func.count(col(SurveyResponse.id))).where(col(SurveyResponse.survey_id) == srv.id, included)
        ).one()
        n_answered = session.exec(
            select(func.count(func.distinct(SurveyAnswer.response_id)))
            .join(SurveyResponse, col(SurveyResponse.id) == col(SurveyAnswer.response_id))
            .where(SurveyAnswer.question_id == question.id, included)
        ).one()
        value = SurveyAnswer.text if question.kind in ("text", "number") else SurveyAnswer.choice
        counted = dict(
            session.exec(
                select(value, func.count(func.distinct(SurveyAnswer.response_id)))
                .join(SurveyResponse, col(SurveyResponse.id) == col(SurveyAnswer.response_id))
                .where(SurveyAnswer.question_id == question.id, included)
                .group_by(value)
            ).all()
        )
        order = {c: i for i, c in enumerate(question.choices)}
    for choice in question.choices:
        counted.setdefault(choice, 0)
    frame = pd.DataFrame([{"choice": c, "count": int(n)} for c, n in counted.items()], columns=["choice", "count"])
    frame["n_answered"] = int(n_answered)
    frame["n_respondents"] = int(n_respondents)
    frame["pct_of_answered"] = frame["count"] * 100.0 / n_answered if n_answered else float("nan")
    frame["pct_of_respondents"] = frame["count"] * 100.0 / n_respondents if n_respondents else float("nan")
    frame["_order"] = frame["choice"].map(lambda c: order.get(c, len(order)))
    frame = frame.sort_values(["count", "_order", "choice"], ascending=[False, True, True], kind="stable")
    frame = frame.drop(columns="_order").reset_index(drop=True)
    frame = frame[COUNT_COLUMNS]
    frame.attrs.update({"survey": survey, "qid": qid, "kind": question.kind, "text": question.text})
    if denominator is not None:
        if denominator not in ("answered", "respondents"):
            raise ValueError(f"denominator must be 'answered' or 'respondents', not {denominator!r}")
        frame = frame.assign(pct=frame[f"pct_of_{denominator}"])
        frame.attrs["denominator"] = denominator
    return frame


def survey_counts(
    engine: Engine, survey: str, include_excluded: bool = False, kinds: tuple[str, ...] = ("single", "multi")
) -> pd.DataFrame:
    """`question_counts` of every question of the given kinds, stacked with a leading `qid` column."""
    import pandas as pd

    questions = list_questions(engine, survey, include_excluded)
    frames = []
    for qid in questions.loc[questions["kind"].isin(kinds), "qid"]:
        frame = question_counts(engine, survey, qid, include_excluded)
        frame.insert(0, "qid", qid)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["qid", *COUNT_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def answers(engine: Engine, survey: str, include_excluded: bool = False) -> pd.DataFrame:
    """Every answer in long form (response_key, qid, position, choice, text, known, value, excluded)."""
    import pandas as pd

    with Session(engine) as session:
        srv = _survey(session, survey)
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
            .where(SurveyResponse.survey_id == srv.id, _included(include_excluded))
            .order_by(SurveyResponse.row_number, SurveyQuestion.position, SurveyAnswer.position)
        ).all()
    columns = ["response_key", "qid", "position", "choice", "text", "known", "value", "excluded"]
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def responses(engine: Engine, survey: str, include_excluded: bool = True) -> pd.DataFrame:
    """One row per response: key, file row, excluded flag and reason (all responses by default)."""
    import pandas as pd

    with Session(engine) as session:
        srv = _survey(session, survey)
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
            .where(SurveyResponse.survey_id == srv.id, _included(include_excluded))
            .order_by(SurveyResponse.row_number)
        ).all()
    columns = ["response_key", "key_source", "row_number", "excluded", "exclusion_reason"]
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)
