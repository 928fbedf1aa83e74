"""The survey read model: surveys, questions, answers and per-question counts, in SQL, as DataFrames.

Every function takes one `SurveyFilter`; the CLI (`interop survey`), the app's Survey page and `report paper`
call these and nothing else. Two denominators are always given side by side, because papers mix them up:
`n_answered` (included respondents with at least one answer to the question) and `n_respondents`
(all included respondents of the survey). Excluded respondents count only with `include_excluded=True`.
"""

from __future__ import annotations

import re
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


#: What Qualtrics appends to a choice question's text in its exports (the question's own words end before it).
QUALTRICS_SUFFIX = re.compile(r"\s+-\s+Selected Choice\s*$")


class SurveyLookupError(InteropError):
    """No survey or question by that name."""


def question_text(text: str | None) -> str:
    """A question's text as people read it: Qualtrics' " - Selected Choice" suffix dropped, nothing cut."""
    return QUALTRICS_SUFFIX.sub("", text or "").strip()


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
                "text": question_text(q.text),
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
        kind, text = question.kind, question_text(question.text)
    stacked = survey_counts(engine, SurveyFilter(flt.survey, flt.qid, (), flt.include_excluded, flt.denominator))
    frame = stacked.drop(columns="qid")
    frame.attrs.update({"survey": flt.survey, "qid": flt.qid, "kind": kind, "text": text, **stacked.attrs})
    return frame


def survey_crosstab(engine: Engine, flt: SurveyFilter, by_qid: str) -> pd.DataFrame:
    """Respondents per pair of answers to the filter's question (`qid`) and question `by_qid`, counted in SQL.

    Long form, one row per pair that occurs, every percentage beside its denominator: count (distinct respondents;
    a multi-select respondent counts once in each of their pairs); row_n / pct_of_row (respondents who answered
    both and gave `choice`), column_n / pct_of_column (… gave `by_choice`), n_both / pct_of_both (respondents who
    answered both). Free-text and number questions pair by their text; `frame.attrs` name both questions, their
    kinds and `n_both`; `crosstab_test(frame)` says which test of independence fits."""
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
        # margins among those who answered both: a multi-select respondent is one person in a row, not one per pair
        row_n = dict(
            session.exec(
                select(a.c.value, func.count(func.distinct(a.c.response_id)))
                .where(a.c.response_id.in_(select(b.c.response_id)))
                .group_by(a.c.value)
            ).all()
        )
        column_n = dict(
            session.exec(
                select(b.c.value, func.count(func.distinct(b.c.response_id)))
                .where(b.c.response_id.in_(select(a.c.response_id)))
                .group_by(b.c.value)
            ).all()
        )
    order_a = {c: i for i, c in enumerate(first.choices)}
    order_b = {c: i for i, c in enumerate(second.choices)}
    frame = pd.DataFrame([tuple(r) for r in pairs], columns=["choice", "by_choice", "count"])
    frame["count"] = frame["count"].astype("int64")
    frame["row_n"] = frame["choice"].map(row_n).astype("int64")
    frame["pct_of_row"] = (100.0 * frame["count"] / frame["row_n"]).round(1)
    frame["column_n"] = frame["by_choice"].map(column_n).astype("int64")
    frame["pct_of_column"] = (100.0 * frame["count"] / frame["column_n"]).round(1)
    frame["n_both"] = int(n_both)
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
            "text": question_text(first.text),
            "by_text": question_text(second.text),
            "kind": first.kind,
            "by_kind": second.kind,
            "n_both": int(n_both),
        }
    )
    return frame


#: Fewer expected respondents than this in a cell makes the chi-square approximation doubtful (Cochran 1954).
MIN_EXPECTED = 5.0
#: … in more than this share of the cells (or any cell below 1) makes it invalid.
MAX_SMALL_SHARE = 0.2


@dataclass(frozen=True)
class CrosstabTest:
    """The test of independence a cross-tab allows: chi-square, Fisher's exact (2×2), or none and why not."""

    test: Literal["chi-square", "fisher-exact", "none"]
    reason: str
    statistic: float | None = None
    dof: int | None = None
    p_value: float | None = None
    min_expected: float | None = None
    small_expected_share: float | None = None
    #: a multi-select row question: the test of each choice (picked or not × group)
    per_choice: tuple[tuple[str, CrosstabTest], ...] = ()
    #: one of several per-choice tests: its p-value adjusted for all of them (Holm), and how many there were
    p_holm: float | None = None
    n_tests: int | None = None

    def summary(self) -> str:
        """One line for a table's caption or a report (one more line per choice tested on its own)."""
        if self.per_choice:
            lines = [f"no test of the whole table: {self.reason}"]
            lines += [f"  {choice}: {test.summary()}" for choice, test in self.per_choice]
            return "\n".join(lines)
        holm = "" if self.p_holm is None else f", Holm-adjusted p = {self.p_holm:.3g} (of {self.n_tests} tests)"
        if self.test == "chi-square":
            return f"χ² = {self.statistic:.2f}, df = {self.dof}, p = {self.p_value:.3g}{holm} ({self.reason})"
        if self.test == "fisher-exact":
            return (
                f"Fisher's exact test: odds ratio = {self.statistic:.3g}, p = {self.p_value:.3g}{holm} ({self.reason})"
            )
        return f"no test of independence: {self.reason}"


def crosstab_test(frame: pd.DataFrame) -> CrosstabTest:
    """Chi-square where every respondent is in one cell and expected counts allow it; Fisher's exact for a 2×2
    with an expected count below 5; otherwise no test, with the reason (scipy). A multi-select row question by a
    single-choice one is tested per choice (picked or not × group), each a 2×k table of its own."""
    import numpy as np

    kind, by_kind = frame.attrs.get("kind"), frame.attrs.get("by_kind")
    if by_kind == "multi":
        return CrosstabTest(
            "none",
            f"{frame.attrs.get('by_qid')} is multi-select: a respondent can sit in several groups, so the groups "
            "are not independent samples",
        )
    table = frame.pivot_table(index="choice", columns="by_choice", values="count", aggfunc="sum", fill_value=0)
    if kind != "multi":
        return _independence(table.to_numpy(dtype=float))
    groups = frame.drop_duplicates("by_choice").set_index("by_choice")["column_n"].reindex(table.columns)
    per_choice = _holm(
        tuple(
            (str(choice), _independence(np.vstack([row.to_numpy(float), groups.to_numpy(float) - row.to_numpy(float)])))
            for choice, row in table.iterrows()
        )
    )
    return CrosstabTest(
        "none",
        f"{frame.attrs.get('qid')} is multi-select (a respondent can pick several rows); each choice is tested on "
        "its own (picked or not × group), p-values also adjusted for the number of choices tested (Holm)",
        per_choice=per_choice,
    )


def _holm(tests: tuple[tuple[str, CrosstabTest], ...]) -> tuple[tuple[str, CrosstabTest], ...]:
    """The same tests, each with its p-value adjusted for all those that produced one (Holm's step-down method,
    statsmodels): testing every choice of a question at 5 % finds a "difference" by chance far more often."""
    from dataclasses import replace

    from statsmodels.stats.multitest import multipletests

    tested = [i for i, (_, t) in enumerate(tests) if t.p_value is not None]
    if len(tested) < 2:
        return tests
    _, adjusted, _, _ = multipletests([tests[i][1].p_value for i in tested], method="holm")
    out = list(tests)
    for i, p in zip(tested, adjusted, strict=True):
        out[i] = (tests[i][0], replace(tests[i][1], p_holm=float(p), n_tests=len(tested)))
    return tuple(out)


def _independence(observed: Any) -> CrosstabTest:
    """The test one contingency table of respondents allows (each respondent in exactly one cell)."""
    from scipy import stats

    observed = observed[observed.sum(axis=1) > 0][:, observed.sum(axis=0) > 0]
    if observed.shape[0] < 2 or observed.shape[1] < 2:
        return CrosstabTest("none", "needs at least two different answers on each side")
    expected = stats.contingency.expected_freq(observed)
    small = float((expected < MIN_EXPECTED).mean())
    low = float(expected.min())
    if observed.shape == (2, 2) and low < MIN_EXPECTED:
        odds, p = stats.fisher_exact(observed)
        reason = f"2×2 with an expected count below {MIN_EXPECTED:g} (smallest {low:.2f})"
        return CrosstabTest("fisher-exact", reason, float(odds), None, float(p), low, small)
    if small > MAX_SMALL_SHARE or low < 1:
        return CrosstabTest(
            "none",
            f"chi-square not valid: {small:.0%} of the {observed.size} cells expect fewer than {MIN_EXPECTED:g} "
            f"respondents (at most {MAX_SMALL_SHARE:.0%} allowed, none below 1; smallest {low:.2f})",
            min_expected=low,
            small_expected_share=small,
        )
    result = stats.chi2_contingency(observed, correction=True)
    yates = " with Yates' correction" if observed.shape == (2, 2) else ""
    reason = f"{observed.shape[0]}×{observed.shape[1]}{yates}; smallest expected count {low:.2f}"
    return CrosstabTest(
        "chi-square", reason, float(result.statistic), int(result.dof), float(result.pvalue), low, small
    )


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
