"""The labeling read model: one typed filter and the SQL behind codebooks, codings, progress and final labels.

The CLI (`interop label …`), the app's Labeling page and `interop report paper` call these functions.
Codings and final labels are read from the `issue_codes` view (revision 0015), where they are one row per
item × dimension × coder or final; "the newest final label" is decided here, once, in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVarTuple

import pandas as pd
from sqlalchemy import Float, Select, and_, cast, distinct, func, select, union
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from db.models.base import core_table
from db.models.github import Issue, Repository
from db.models.labeling import (
    AdjudicationHistory,
    Codebook,
    CodebookCode,
    CodebookDimension,
    CodebookVersion,
    Coder,
    Coding,
    CodingValue,
    FinalLabel,
    LabelItem,
    LabelRound,
    LsProject,
    LsTask,
    Prediction,
)
from db.models.survey import Survey, SurveyAnswer, SurveyQuestion
from db.models.views import issue_codes

Ts = TypeVarTuple("Ts")


CODES = issue_codes
ISSUE, REPO = core_table(Issue), core_table(Repository)
BOOK, VERSION = core_table(Codebook), core_table(CodebookVersion)
DIM, CODE = core_table(CodebookDimension), core_table(CodebookCode)
ITEM, ROUND, CODER = core_table(LabelItem), core_table(LabelRound), core_table(Coder)
CODING, VALUE = core_table(Coding), core_table(CodingValue)
FINAL, HISTORY = core_table(FinalLabel), core_table(AdjudicationHistory)
PROJECT, TASK = core_table(LsProject), core_table(LsTask)
SURVEY, QUESTION, ANSWER = core_table(Survey), core_table(SurveyQuestion), core_table(SurveyAnswer)
PREDICTION = core_table(Prediction)


def _strings(value: Any) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else list(value or ())
    return tuple(dict.fromkeys(str(v) for v in values if v not in (None, "")))


@dataclass(frozen=True, kw_only=True)
class LabelFilter:
    """Which codings and final labels: each field narrows the set, empty means all.

    `rounds` by name; `dimensions` by key (symptom, cause, …); `coders` by name (codings only: final labels have
    none); `repositories` of the coded issues; `item` one item's ref, e.g. `pytorch/pytorch#49403`.
    """

    rounds: tuple[str, ...] = ()
    dimensions: tuple[str, ...] = ()
    coders: tuple[str, ...] = ()
    repositories: tuple[str, ...] = ()
    item: str | None = None

    def __post_init__(self) -> None:
        for name in ("rounds", "dimensions", "coders", "repositories"):
            object.__setattr__(self, name, _strings(getattr(self, name)))
        object.__setattr__(self, "item", self.item or None)


def _narrow(stmt: Select[*Ts], f: LabelFilter, **columns: Any) -> Select[*Ts]:
    """`stmt` narrowed by the fields of `f` whose column is given (round=…, dimension=…, coder=…, …)."""
    wanted = {"round": f.rounds, "dimension": f.dimensions, "coder": f.coders, "repository": f.repositories}
    for name, values in wanted.items():
        if values and name in columns:
            stmt = stmt.where(columns[name].in_(values))
    if f.item and "item" in columns:
        stmt = stmt.where(columns["item"] == f.item)
    return stmt


def _frame(engine: Engine, stmt: Select[*Ts], columns: list[str]) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return pd.DataFrame([r._tuple() for r in rows], columns=columns)


# --- codebooks and rounds -----------------------------------------------------------------------------------


def codebook_versions(engine: Engine) -> pd.DataFrame:
    """One row per stored codebook version."""
    q = (
        select(
            BOOK.c.name,
            VERSION.c.version,
            VERSION.c.declared_version,
            VERSION.c.source,
            VERSION.c.loaded_at,
            VERSION.c.content_hash,
        )
        .join(VERSION, VERSION.c.codebook_id == BOOK.c.id)
        .order_by(BOOK.c.name, VERSION.c.version)
    )
    return _frame(engine, q, ["codebook", "version", "declared_version", "source", "loaded_at", "content_hash"])


def rounds(engine: Engine, f: LabelFilter | None = None) -> pd.DataFrame:
    """Rounds (oldest first) with their source, codebook version and how many codings they hold."""
    q = (
        select(
            ROUND.c.name,
            ROUND.c.source,
            BOOK.c.name,
            VERSION.c.version,
            func.count(CODING.c.id),
            ROUND.c.created_at,
        )
        .join(VERSION, VERSION.c.id == ROUND.c.codebook_version_id)
        .join(BOOK, BOOK.c.id == VERSION.c.codebook_id)
        .outerjoin(CODING, CODING.c.round_id == ROUND.c.id)
        .group_by(
            ROUND.c.id,
            ROUND.c.name,
            ROUND.c.source,
            BOOK.c.name,
            VERSION.c.version,
            ROUND.c.created_at,
        )
        .order_by(ROUND.c.created_at, ROUND.c.id)
    )
    q = _narrow(q, f or LabelFilter(), round=ROUND.c.name)
    return _frame(engine, q, ["round", "source", "codebook", "codebook_version", "codings", "created_at"])


# --- codings ------------------------------------------------------------------------------------------------


def _codes_narrowed(stmt: Select[*Ts], f: LabelFilter) -> Select[*Ts]:
    return _narrow(
        stmt,
        f,
        round=CODES.c.round,
        dimension=CODES.c.dimension,
        coder=CODES.c.coder,
        repository=CODES.c.repository,
        item=CODES.c.item_ref,
    )


def ratings(engine: Engine, f: LabelFilter) -> pd.DataFrame:
    """Valid codings in long format: one row per round, item, coder and dimension, with the code given."""
    q = (
        select(
            CODES.c.round,
            CODES.c.dimension,
            CODES.c.dimension_position,
            CODES.c.item_id,
            CODES.c.item_kind,
            CODES.c.item_ref,
            CODES.c.repository,
            CODES.c.issue_number,
            ISSUE.c.title,
            CODES.c.coder,
            CODES.c.code,
            CODES.c.label,
        )
        .select_from(CODES.outerjoin(ISSUE, ISSUE.c.id == CODES.c.issue_id))
        .where(CODES.c.value_source == "coding")
        .order_by(CODES.c.round, CODES.c.dimension_position, CODES.c.item_id, CODES.c.coder)
    )
    columns = ["round", "dimension", "dimension_position", "item_id", "kind", "item", "repository", "number"]
    return _frame(engine, _codes_narrowed(q, f), [*columns, "title", "coder", "code", "label"])


def coded_items(engine: Engine, f: LabelFilter) -> pd.DataFrame:
    """Valid codings (round, item, coder), with or without codes: a multi-label dimension's empty answers."""
    q = (
        select(ROUND.c.name, CODING.c.item_id, CODER.c.name)
        .join(ROUND, ROUND.c.id == CODING.c.round_id)
        .join(CODER, CODER.c.id == CODING.c.coder_id)
        .join(ITEM, ITEM.c.id == CODING.c.item_id)
        .where(CODING.c.valid.is_(True))
        .order_by(ROUND.c.name, CODING.c.item_id, CODER.c.name)
    )
    q = _narrow(q, f, round=ROUND.c.name, coder=CODER.c.name, item=ITEM.c.ref)
    return _frame(engine, q, ["round", "item_id", "coder"])


def proposed_codes(engine: Engine, f: LabelFilter) -> pd.DataFrame:
    """New codes coders proposed (open coding), collected for the next codebook version: one row per distinct
    proposal (case and spacing ignored) and dimension, with how many codings proposed it, by whom, for which items."""
    q = (
        select(ROUND.c.name, CODER.c.name, ITEM.c.ref, CODING.c.proposals)
        .join(ROUND, ROUND.c.id == CODING.c.round_id)
        .join(CODER, CODER.c.id == CODING.c.coder_id)
        .join(ITEM, ITEM.c.id == CODING.c.item_id)
        .where(CODING.c.proposals.is_not(None), CODING.c.valid.is_(True))
        .order_by(ROUND.c.name, ITEM.c.ref, CODER.c.name)
    )
    q = _narrow(q, f, round=ROUND.c.name, coder=CODER.c.name, item=ITEM.c.ref)
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    with engine.connect() as conn:
        for rnd, coder, ref, proposals in conn.execute(q).all():
            for p in proposals or []:
                if not isinstance(p, dict) or not str(p.get("text") or "").strip():
                    continue
                dim, text = str(p.get("dimension") or ""), " ".join(str(p["text"]).split())
                if f.dimensions and dim not in f.dimensions:
                    continue
                row = groups.setdefault(
                    (rnd, dim, text.casefold()),
                    {"round": rnd, "dimension": dim, "proposal": text, "codings": 0, "coders": set(), "items": []},
                )
                row["codings"] += 1
                row["coders"].add(coder)
                row["items"].append(ref)
    rows = [{**r, "coders": sorted(r["coders"])} for r in groups.values()]
    columns = ["round", "dimension", "proposal", "codings", "coders", "items"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["round", "dimension", "codings", "proposal"], ascending=[True, True, False, True])


def invalid_codings(engine: Engine, f: LabelFilter) -> pd.DataFrame:
    """Codings rejected against the codebook, with the reasons (kept for the report, never counted)."""
    q = (
        select(
            ROUND.c.name,
            ITEM.c.ref,
            CODER.c.name,
            CODING.c.ls_task_id,
            CODING.c.ls_annotation_id,
            CODING.c.problems,
            CODING.c.updated_at,
        )
        .join(ROUND, ROUND.c.id == CODING.c.round_id)
        .join(CODER, CODER.c.id == CODING.c.coder_id)
        .join(ITEM, ITEM.c.id == CODING.c.item_id)
        .where(CODING.c.valid.is_(False))
        .order_by(ROUND.c.name, ITEM.c.ref, CODER.c.name)
    )
    q = _narrow(q, f, round=ROUND.c.name, coder=CODER.c.name, item=ITEM.c.ref)
    return _frame(engine, q, ["round", "item", "coder", "ls_task_id", "ls_annotation_id", "problems", "updated_at"])


def coder_progress(engine: Engine, f: LabelFilter) -> pd.DataFrame:
    """Per round and coder (with codings or Label Studio tasks): items coded, codes given, invalid codings, items
    assigned in Label Studio, items of the round, and `share` done = coded of assigned (sheet rounds: of the
    round's coded items), with the round's source and codebook version."""
    pairs = union(
        select(CODING.c.round_id, CODING.c.coder_id),
        select(PROJECT.c.round_id, PROJECT.c.coder_id)
        .join(TASK, TASK.c.project_id == PROJECT.c.id)
        .where(PROJECT.c.purpose == "coding", PROJECT.c.coder_id.is_not(None)),
    ).subquery()
    valid = and_(CODING.c.round_id == pairs.c.round_id, CODING.c.valid.is_(True))

    def scalar(stmt: Select[*tuple[Any, ...]]) -> Any:
        return stmt.scalar_subquery()

    items_coded = scalar(
        select(func.count(distinct(CODING.c.item_id))).where(valid, CODING.c.coder_id == pairs.c.coder_id)
    )
    codes = scalar(
        select(func.count())
        .select_from(VALUE)
        .join(CODING, CODING.c.id == VALUE.c.coding_id)
        .where(valid, CODING.c.coder_id == pairs.c.coder_id)
    )
    invalid = scalar(
        select(func.count()).where(
            CODING.c.round_id == pairs.c.round_id, CODING.c.coder_id == pairs.c.coder_id, CODING.c.valid.is_(False)
        )
    )
    assigned = scalar(
        select(func.count(distinct(TASK.c.item_id)))
        .join(PROJECT, PROJECT.c.id == TASK.c.project_id)
        .where(
            PROJECT.c.round_id == pairs.c.round_id,
            PROJECT.c.coder_id == pairs.c.coder_id,
            PROJECT.c.purpose == "coding",
        )
    )
    in_round = scalar(select(func.count(distinct(CODING.c.item_id))).where(valid))
    q = (
        select(
            ROUND.c.name,
            CODER.c.name,
            items_coded,
            codes,
            invalid,
            func.nullif(assigned, 0),
            in_round,
            cast(items_coded, Float) / func.nullif(func.coalesce(func.nullif(assigned, 0), in_round), 0),
            ROUND.c.source,
            BOOK.c.name,
            VERSION.c.version,
        )
        .select_from(pairs)
        .join(ROUND, ROUND.c.id == pairs.c.round_id)
        .join(CODER, CODER.c.id == pairs.c.coder_id)
        .join(VERSION, VERSION.c.id == ROUND.c.codebook_version_id)
        .join(BOOK, BOOK.c.id == VERSION.c.codebook_id)
        .order_by(ROUND.c.created_at, ROUND.c.id, CODER.c.name)
    )
    q = _narrow(q, f, round=ROUND.c.name, coder=CODER.c.name)
    columns = ["round", "coder", "items_coded", "codes", "invalid_codings", "assigned", "items_in_round", "share"]
    frame = _frame(engine, q, [*columns, "source", "codebook", "codebook_version"])
    return frame.astype({"assigned": "Int64", "share": "float64"})


# --- final labels -------------------------------------------------------------------------------------------


def final_labels(engine: Engine, f: LabelFilter) -> pd.DataFrame:
    """Final labels (what analyses use) with the item, its repository and who or what decided."""
    q = (
        select(
            ROUND.c.name,
            DIM.c.key,
            ITEM.c.id,
            ITEM.c.kind,
            ITEM.c.ref,
            REPO.c.full_name,
            ISSUE.c.number,
            ISSUE.c.title,
            CODE.c.code,
            CODE.c.label,
            FINAL.c.decided_by,
            FINAL.c.decided_at,
            FINAL.c.note,
            FINAL.c.detail,
        )
        .select_from(FINAL)
        .join(ROUND, ROUND.c.id == FINAL.c.round_id)
        .join(ITEM, ITEM.c.id == FINAL.c.item_id)
        .outerjoin(ISSUE, ISSUE.c.id == ITEM.c.issue_id)
        .outerjoin(REPO, REPO.c.id == ISSUE.c.repository_id)
        .join(DIM, DIM.c.id == FINAL.c.dimension_id)
        .join(CODE, CODE.c.id == FINAL.c.code_id)
        .order_by(ROUND.c.name, ITEM.c.id, DIM.c.position)
    )
    q = _narrow(
        q,
        f,
        round=ROUND.c.name,
        dimension=DIM.c.key,
        repository=REPO.c.full_name,
        item=ITEM.c.ref,
    )
    columns = ["round", "dimension", "item_id", "kind", "item", "repository", "number", "title", "code", "label"]
    return _frame(engine, q, [*columns, "decided_by", "decided_at", "note", "detail"])


HISTORY_COLUMNS = [
    "round",
    "item",
    "dimension",
    "action",
    "previous_code",
    "previous_label",
    "previous_decided_by",
    "code",
    "label",
    "decided_by",
    "note",
    "detail",
    "run_id",
    "decided_at",
]


def _history_select() -> Select[Any]:
    """Decisions on final labels with their round, item, dimension and the codes before and after (unordered)."""
    new_code, old_code = CODE.alias("new_code"), CODE.alias("old_code")
    return (
        select(
            ROUND.c.name,
            ITEM.c.ref,
            DIM.c.key,
            HISTORY.c.action,
            old_code.c.code,
            old_code.c.label,
            HISTORY.c.previous_decided_by,
            new_code.c.code,
            new_code.c.label,
            HISTORY.c.decided_by,
            HISTORY.c.note,
            HISTORY.c.detail,
            HISTORY.c.run_id,
            HISTORY.c.decided_at,
        )
        .select_from(HISTORY)
        .join(ROUND, ROUND.c.id == HISTORY.c.round_id)
        .join(ITEM, ITEM.c.id == HISTORY.c.item_id)
        .join(DIM, DIM.c.id == HISTORY.c.dimension_id)
        .outerjoin(new_code, new_code.c.id == HISTORY.c.code_id)
        .outerjoin(old_code, old_code.c.id == HISTORY.c.previous_code_id)
    )


def adjudication_history(engine: Engine, f: LabelFilter) -> pd.DataFrame:
    """Every decision on final labels, oldest first: new / changed / withdrawn, the code before and after, who
    decided, when, the reviewer's note and the evidence (which codings disagreed)."""
    q = _history_select().order_by(ROUND.c.name, ITEM.c.ref, DIM.c.position, HISTORY.c.id)
    q = _narrow(q, f, round=ROUND.c.name, dimension=DIM.c.key, item=ITEM.c.ref)
    return _frame(engine, q, HISTORY_COLUMNS)


def final_label_options(engine: Engine) -> dict[str, list[str]]:
    """What final labels can be narrowed by: their dimensions (codebook order) and the coded repositories."""
    finals = CODES.c.value_source == "final"
    position = func.min(CODES.c.dimension_position)
    with engine.connect() as conn:
        dimensions = conn.execute(
            select(CODES.c.dimension).where(finals).group_by(CODES.c.dimension).order_by(position, CODES.c.dimension)
        )
        repositories = conn.execute(
            select(CODES.c.repository)
            .where(finals, CODES.c.repository.is_not(None))
            .distinct()
            .order_by(CODES.c.repository)
        )
        return {"dimensions": list(dimensions.scalars()), "repositories": list(repositories.scalars())}


def _newest_finals(f: LabelFilter) -> Any:
    """The final label of each item × dimension in the filtered rounds: the newest decision (latest `coded_at`,
    then the later round name) when several rounds decided it."""
    # a multi-label dimension has several final labels per item and round (one per theme): the round's newest
    # decision on the item and dimension dates all of them, and all of the newest round's are kept
    round_time = (
        func.max(CODES.c.coded_at)
        .over(partition_by=(CODES.c.item_id, CODES.c.dimension, CODES.c.round))
        .label("round_time")
    )
    q = select(CODES, round_time).where(CODES.c.value_source == "final")
    timed = _codes_narrowed(q, LabelFilter(rounds=f.rounds, repositories=f.repositories, item=f.item)).subquery()
    rank = (
        func.dense_rank()
        .over(
            partition_by=(timed.c.item_id, timed.c.dimension),
            order_by=(timed.c.round_time.desc(), timed.c.round.desc()),
        )
        .label("rank")
    )
    ranked = select(timed, rank).subquery()
    return select(*[ranked.c[c.name] for c in CODES.c]).where(ranked.c.rank == 1).subquery()


def taxonomy_distribution(engine: Engine, f: LabelFilter, dimension: str) -> pd.DataFrame:
    """Counts and shares of each code of `dimension` per converter repository (newest final labels)."""
    finals = _newest_finals(f)
    n = func.count()
    q = (
        select(
            finals.c.repository,
            finals.c.code,
            finals.c.label,
            n,
            cast(n, Float) / func.sum(n).over(partition_by=finals.c.repository),
        )
        .where(finals.c.dimension == dimension)
        .group_by(finals.c.repository, finals.c.code, finals.c.label)
        .order_by(finals.c.repository, n.desc(), finals.c.code)
    )
    return _frame(engine, q, ["repository", "code", "label", "count", "share"])


def crosstab(engine: Engine, f: LabelFilter, rows: str = "symptom", columns: str = "cause") -> pd.DataFrame:
    """Items per (row code × column code), e.g. symptom × cause, from the newest final labels; labels sorted,
    an empty frame when no item carries both dimensions."""
    finals = _newest_finals(f)
    a, b = finals.alias("a"), finals.alias("b")
    q = (
        select(a.c.label, b.c.label, func.count())
        .select_from(a.join(b, and_(a.c.item_id == b.c.item_id, b.c.dimension == columns)))
        .where(a.c.dimension == rows)
        .group_by(a.c.label, b.c.label)
    )
    cells = _frame(engine, q, [rows, columns, "items"])
    if cells.empty:
        return pd.DataFrame()
    return cells.pivot_table(index=rows, columns=columns, values="items", aggfunc="sum", fill_value=0).astype(int)


# --- themes of free-text survey answers ----------------------------------------------------------------------


def theme_counts(
    bind: Engine | Connection | Session, survey: str, question: str, round: str | None = None
) -> pd.DataFrame:
    """Per round, multi-label dimension and theme of a free-text question's coded answers: how many answers carry
    the theme (final labels) and the denominators: `n_coded` answers with at least one theme in that dimension,
    `n_answers` answers coded in the round at all (some carry no theme); `share` = count / n_coded."""
    items = (
        select(ITEM.c.id)
        .join(ANSWER, ANSWER.c.id == ITEM.c.survey_answer_id)
        .join(QUESTION, QUESTION.c.id == ANSWER.c.question_id)
        .join(SURVEY, SURVEY.c.id == QUESTION.c.survey_id)
        .where(SURVEY.c.name == survey, QUESTION.c.qid == question)
    )
    in_question = FINAL.c.item_id.in_(items)
    counts = (
        select(
            ROUND.c.name,
            DIM.c.key,
            DIM.c.position,
            CODE.c.code,
            CODE.c.label,
            func.count(distinct(FINAL.c.item_id)),
        )
        .select_from(FINAL)
        .join(ROUND, ROUND.c.id == FINAL.c.round_id)
        .join(DIM, DIM.c.id == FINAL.c.dimension_id)
        .join(CODE, CODE.c.id == FINAL.c.code_id)
        .where(in_question)
        .group_by(ROUND.c.name, DIM.c.key, DIM.c.position, CODE.c.code, CODE.c.label)
    )
    coded = (
        select(ROUND.c.name, DIM.c.key, func.count(distinct(FINAL.c.item_id)))
        .select_from(FINAL)
        .join(ROUND, ROUND.c.id == FINAL.c.round_id)
        .join(DIM, DIM.c.id == FINAL.c.dimension_id)
        .where(in_question)
        .group_by(ROUND.c.name, DIM.c.key)
    )
    answered = (
        select(ROUND.c.name, func.count(distinct(CODING.c.item_id)))
        .select_from(CODING)
        .join(ROUND, ROUND.c.id == CODING.c.round_id)
        .where(CODING.c.item_id.in_(items), CODING.c.valid.is_(True))
        .group_by(ROUND.c.name)
    )
    if round is not None:
        counts, coded, answered = (q.where(ROUND.c.name == round) for q in (counts, coded, answered))
    columns = ["round", "dimension", "theme", "count", "n_coded", "n_answers", "share"]
    with _connect(bind) as conn:
        rows = conn.execute(counts).all()
        n_coded = {(r, d): n for r, d, n in conn.execute(coded).all()}
        n_answers: dict[str, int] = {r: n for r, n in conn.execute(answered).all()}
    frame = pd.DataFrame(
        [
            {
                "round": rnd,
                "dimension": dim,
                "position": pos,
                "code": code,
                "theme": label,
                "count": n,
                "n_coded": n_coded[(rnd, dim)],
                "n_answers": n_answers.get(rnd, n_coded[(rnd, dim)]),
                "share": n / n_coded[(rnd, dim)],
            }
            for rnd, dim, pos, code, label, n in rows
        ],
        columns=["round", "dimension", "position", "code", *columns[2:]],
    )
    frame = frame.sort_values(["round", "position", "count", "code"], ascending=[True, True, False, True])
    return frame.drop(columns=["position"]).reset_index(drop=True)[["round", "dimension", "code", *columns[2:]]]


def _connect(bind: Engine | Connection | Session) -> AbstractContextManager[Connection]:
    """A connection to read with: a new one from an engine, else the caller's (left open)."""
    if isinstance(bind, Engine):
        return bind.connect()
    return nullcontext(bind.connection() if isinstance(bind, Session) else bind)


# --- text and model predictions (model-assisted coding) ---------------------------------------------------------


def item_texts(engine: Engine, item_ids: Sequence[int]) -> pd.DataFrame:
    """What a text classifier reads of each item: the issue's title and body, and the study sheets' description
    of it (today the `note` of its codings in sheet rounds, where `import-sheet` keeps the Description column).
    One row per item id given (unknown ids are absent); `sheet_text` joins distinct sheet descriptions."""
    ids = sorted({int(i) for i in item_ids})
    if not ids:
        return pd.DataFrame(columns=["item_id", "item", "title", "body", "sheet_text"])
    base = _frame(
        engine,
        select(ITEM.c.id, ITEM.c.ref, ISSUE.c.title, ISSUE.c.body)
        .select_from(ITEM.outerjoin(ISSUE, ISSUE.c.id == ITEM.c.issue_id))
        .where(ITEM.c.id.in_(ids))
        .order_by(ITEM.c.id),
        ["item_id", "item", "title", "body"],
    )
    notes = _frame(
        engine,
        select(CODING.c.item_id, CODING.c.note)
        .join(ROUND, ROUND.c.id == CODING.c.round_id)
        .where(CODING.c.item_id.in_(ids), ROUND.c.source == "sheet", CODING.c.note.is_not(None))
        .order_by(CODING.c.item_id, ROUND.c.id, CODING.c.id),
        ["item_id", "note"],
    )
    joined = notes.groupby("item_id")["note"].agg(lambda v: "\n".join(dict.fromkeys(str(x) for x in v)))
    base["sheet_text"] = base["item_id"].map(joined)
    return base


PREDICTION_COLUMNS = [
    "round",
    "dimension",
    "dimension_position",
    "item_id",
    "item",
    "code",
    "label",
    "score",
    "model_version",
    "created_at",
]


def predictions(engine: Engine, f: LabelFilter, model_version: str | None = None) -> pd.DataFrame:
    """A model's suggested codes (never codings): one row per round, item, dimension and model version, with the
    code, its label and the model's score; `model_version` narrows to one version."""
    q = _prediction_select()
    if model_version:
        q = q.where(PREDICTION.c.model_version == model_version)
    q = _narrow(q, f, round=ROUND.c.name, dimension=DIM.c.key, repository=REPO.c.full_name, item=ITEM.c.ref)
    return _frame(engine, q, PREDICTION_COLUMNS)


def issue_predictions(engine: Engine, issue_id: int) -> pd.DataFrame:
    """One issue's suggested codes, every round and model version (the columns of `predictions`)."""
    q = _prediction_select().where(ITEM.c.id.in_(_issue_items(issue_id)))
    return _frame(engine, q, PREDICTION_COLUMNS)


def _prediction_select() -> Select[Any]:
    """Suggested codes with their round, item (and its repository), dimension and code, in reading order."""
    return (
        select(
            ROUND.c.name,
            DIM.c.key,
            DIM.c.position,
            ITEM.c.id,
            ITEM.c.ref,
            CODE.c.code,
            CODE.c.label,
            PREDICTION.c.score,
            PREDICTION.c.model_version,
            PREDICTION.c.created_at,
        )
        .select_from(PREDICTION)
        .join(ROUND, ROUND.c.id == PREDICTION.c.round_id)
        .join(ITEM, ITEM.c.id == PREDICTION.c.item_id)
        .outerjoin(ISSUE, ISSUE.c.id == ITEM.c.issue_id)
        .outerjoin(REPO, REPO.c.id == ISSUE.c.repository_id)
        .join(DIM, DIM.c.id == PREDICTION.c.dimension_id)
        .join(CODE, CODE.c.id == PREDICTION.c.code_id)
        .order_by(ROUND.c.name, PREDICTION.c.model_version, ITEM.c.id, DIM.c.position)
    )


# --- one issue's codes (the Issues page's detail and `interop issues show`) ------------------------------------


def _issue_items(issue_id: int) -> Any:
    return select(ITEM.c.id).where(ITEM.c.issue_id == int(issue_id))


def issue_codings(engine: Engine, issue_id: int) -> pd.DataFrame:
    """Every coder's valid codes of one issue: round, dimension (codebook order), coder, code, label, coded_at."""
    q = (
        select(
            ROUND.c.name,
            DIM.c.key,
            DIM.c.position,
            CODER.c.name,
            CODE.c.code,
            CODE.c.label,
            func.coalesce(CODING.c.updated_at, CODING.c.created_at, CODING.c.stored_at),
        )
        .select_from(VALUE)
        .join(CODING, CODING.c.id == VALUE.c.coding_id)
        .join(ROUND, ROUND.c.id == CODING.c.round_id)
        .join(CODER, CODER.c.id == CODING.c.coder_id)
        .join(DIM, DIM.c.id == VALUE.c.dimension_id)
        .join(CODE, CODE.c.id == VALUE.c.code_id)
        .where(CODING.c.valid.is_(True), CODING.c.item_id.in_(_issue_items(issue_id)))
        .order_by(ROUND.c.created_at, ROUND.c.id, DIM.c.position, CODER.c.name)
    )
    columns = ["round", "dimension", "dimension_position", "coder", "code", "label", "coded_at"]
    return _frame(engine, q, columns)


def issue_invalid_codings(engine: Engine, issue_id: int) -> pd.DataFrame:
    """One issue's codings rejected against the codebook (never counted): round, coder, problems."""
    q = (
        select(ROUND.c.name, CODER.c.name, CODING.c.problems)
        .select_from(CODING)
        .join(ROUND, ROUND.c.id == CODING.c.round_id)
        .join(CODER, CODER.c.id == CODING.c.coder_id)
        .where(CODING.c.valid.is_(False), CODING.c.item_id.in_(_issue_items(issue_id)))
        .order_by(ROUND.c.created_at, ROUND.c.id, CODER.c.name)
    )
    return _frame(engine, q, ["round", "coder", "problems"])


def issue_finals(engine: Engine, issue_id: int) -> pd.DataFrame:
    """One issue's final labels: round, dimension, code, label, who or what decided, the note, when."""
    q = (
        select(
            ROUND.c.name,
            DIM.c.key,
            DIM.c.position,
            CODE.c.code,
            CODE.c.label,
            FINAL.c.decided_by,
            FINAL.c.note,
            FINAL.c.decided_at,
        )
        .select_from(FINAL)
        .join(ROUND, ROUND.c.id == FINAL.c.round_id)
        .join(DIM, DIM.c.id == FINAL.c.dimension_id)
        .join(CODE, CODE.c.id == FINAL.c.code_id)
        .where(FINAL.c.item_id.in_(_issue_items(issue_id)))
        .order_by(ROUND.c.created_at, ROUND.c.id, DIM.c.position)
    )
    columns = ["round", "dimension", "dimension_position", "code", "label", "decided_by", "note", "decided_at"]
    return _frame(engine, q, columns)


def issue_adjudication_history(engine: Engine, issue_id: int) -> pd.DataFrame:
    """Every decision on one issue's final labels, oldest first: the code before and after, who, when, the note."""
    q = (
        _history_select()
        .where(HISTORY.c.item_id.in_(_issue_items(issue_id)))
        .order_by(ROUND.c.created_at, ROUND.c.id, DIM.c.position, HISTORY.c.decided_at, HISTORY.c.id)
    )
    frame = _frame(engine, q, HISTORY_COLUMNS).drop(columns=["item", "detail", "run_id"])
    return frame.astype({"previous_code": "Int64", "code": "Int64"})


def issue_ls_tasks(engine: Engine, issue_id: int) -> pd.DataFrame:
    """Where one issue sits in Label Studio: round, purpose (coding | review), the coder, project and task ids."""
    q = (
        select(ROUND.c.name, PROJECT.c.purpose, CODER.c.name, PROJECT.c.ls_project_id, TASK.c.ls_task_id)
        .select_from(TASK)
        .join(PROJECT, PROJECT.c.id == TASK.c.project_id)
        .join(ROUND, ROUND.c.id == PROJECT.c.round_id)
        .outerjoin(CODER, CODER.c.id == PROJECT.c.coder_id)
        .where(TASK.c.item_id.in_(_issue_items(issue_id)))
        .order_by(ROUND.c.created_at, ROUND.c.id, PROJECT.c.purpose, CODER.c.name)
    )
    return _frame(engine, q, ["round", "purpose", "coder", "ls_project_id", "ls_task_id"])


def ls_task_url(base_url: str, project_id: int, task_id: int) -> str:
    """The Label Studio page of one task (its data manager opened on the task)."""
    return f"{base_url.rstrip('/')}/projects/{int(project_id)}/data?task={int(task_id)}"


def codes_side_by_side(codings: pd.DataFrame, finals: pd.DataFrame) -> pd.DataFrame:
    """One row per round × dimension: each coder's code in a column of its own, whether they agree, and the final
    code with who decided it and the note (coders' columns in name order; codes written `label (code)`)."""

    def shown(label: Any, code: Any) -> str:
        return f"{label} ({code})"

    coders = sorted(set(codings["coder"])) if not codings.empty else []
    reserved = {"round", "dimension", "agree", "final", "decided_by", "note"}
    column = {c: f"{c} (coder)" if c in reserved else c for c in coders}
    keys: dict[tuple[str, str], int] = {}
    for frame in (codings, finals):
        for row in frame.itertuples(index=False):
            keys.setdefault((row.round, row.dimension), int(row.dimension_position))
    rounds_order = list(dict.fromkeys([*codings["round"], *finals["round"]]))
    rows = []
    for rnd, dim in sorted(keys, key=lambda k: (rounds_order.index(k[0]), keys[k], k[1])):
        given = codings[(codings["round"] == rnd) & (codings["dimension"] == dim)]
        by_coder = {r.coder: shown(r.label, r.code) for r in given.itertuples(index=False)}
        final = finals[(finals["round"] == rnd) & (finals["dimension"] == dim)]
        f = final.iloc[0] if not final.empty else None
        distinct_codes = set(given["code"])
        rows.append(
            {
                "round": rnd,
                "dimension": dim,
                **{column[c]: by_coder.get(c) for c in coders},
                "agree": None if len(given) < 2 else len(distinct_codes) == 1,
                "final": shown(f["label"], f["code"]) if f is not None else None,
                "decided_by": f["decided_by"] if f is not None else None,
                "note": f["note"] if f is not None else None,
            }
        )
    columns = ["round", "dimension", *column.values(), "agree", "final", "decided_by", "note"]
    return pd.DataFrame(rows, columns=columns).astype({"agree": "boolean"})


def suggestions_beside_finals(predicted: pd.DataFrame, finals: pd.DataFrame) -> pd.DataFrame:
    """One row per round × model version × dimension: the model's suggested code and score beside the final code
    of that round, and whether they match (None without a final code). Suggestions are never codes."""
    final_code = {(r.round, r.dimension): (r.code, f"{r.label} ({r.code})") for r in finals.itertuples(index=False)}
    rows = []
    for r in predicted.sort_values(["round", "model_version", "dimension_position"], kind="stable").itertuples(
        index=False
    ):
        code, final = final_code.get((r.round, r.dimension), (None, None))
        rows.append(
            {
                "round": r.round,
                "model_version": r.model_version,
                "dimension": r.dimension,
                "suggested": f"{r.label} ({r.code})",
                "score": float(r.score),
                "final": final,
                "matches_final": None if code is None else bool(code == r.code),
            }
        )
    columns = ["round", "model_version", "dimension", "suggested", "score", "final", "matches_final"]
    return pd.DataFrame(rows, columns=columns).astype({"matches_final": "boolean"})


__all__ = [
    "LabelFilter",
    "adjudication_history",
    "codebook_versions",
    "coded_items",
    "coder_progress",
    "codes_side_by_side",
    "crosstab",
    "final_label_options",
    "final_labels",
    "invalid_codings",
    "issue_adjudication_history",
    "issue_codings",
    "issue_finals",
    "issue_invalid_codings",
    "issue_ls_tasks",
    "issue_predictions",
    "item_texts",
    "ls_task_url",
    "predictions",
    "proposed_codes",
    "ratings",
    "rounds",
    "suggestions_beside_finals",
    "taxonomy_distribution",
    "theme_counts",
]
