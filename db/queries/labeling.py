"""The labeling read model: one typed filter and the SQL behind codebooks, codings, progress and final labels.

The CLI (`interop label …`), the app's Labeling page and `interop report paper` call these functions.
Codings and final labels are read from the `issue_codes` view (revision 0015), where they are one row per
item × dimension × coder or final; "the newest final label" is decided here, once, in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Float, Select, and_, cast, distinct, func, select, union
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased

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
)
from db.models.views import issue_codes

CODES = issue_codes


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


def _narrow(stmt: Select[Any], f: LabelFilter, **columns: Any) -> Select[Any]:
    """`stmt` narrowed by the fields of `f` whose column is given (round=…, dimension=…, coder=…, …)."""
    wanted = {"round": f.rounds, "dimension": f.dimensions, "coder": f.coders, "repository": f.repositories}
    for name, values in wanted.items():
        if values and name in columns:
            stmt = stmt.where(columns[name].in_(values))
    if f.item and "item" in columns:
        stmt = stmt.where(columns["item"] == f.item)
    return stmt


def _frame(engine: Engine, stmt: Select[Any], columns: list[str]) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


# --- codebooks and rounds -----------------------------------------------------------------------------------


def codebook_versions(engine: Engine) -> pd.DataFrame:
    """One row per stored codebook version."""
    q = (
        select(
            Codebook.name,
            CodebookVersion.version,
            CodebookVersion.declared_version,
            CodebookVersion.source,
            CodebookVersion.loaded_at,
            CodebookVersion.content_hash,
        )
        .join(CodebookVersion, CodebookVersion.codebook_id == Codebook.id)
        .order_by(Codebook.name, CodebookVersion.version)
    )
    return _frame(engine, q, ["codebook", "version", "declared_version", "source", "loaded_at", "content_hash"])


def rounds(engine: Engine, f: LabelFilter | None = None) -> pd.DataFrame:
    """Rounds (oldest first) with their source, codebook version and how many codings they hold."""
    q = (
        select(
            LabelRound.name,
            LabelRound.source,
            Codebook.name,
            CodebookVersion.version,
            func.count(Coding.id),
            LabelRound.created_at,
        )
        .join(CodebookVersion, CodebookVersion.id == LabelRound.codebook_version_id)
        .join(Codebook, Codebook.id == CodebookVersion.codebook_id)
        .outerjoin(Coding, Coding.round_id == LabelRound.id)
        .group_by(
            LabelRound.id,
            LabelRound.name,
            LabelRound.source,
            Codebook.name,
            CodebookVersion.version,
            LabelRound.created_at,
        )
        .order_by(LabelRound.created_at, LabelRound.id)
    )
    q = _narrow(q, f or LabelFilter(), round=LabelRound.name)
    return _frame(engine, q, ["round", "source", "codebook", "codebook_version", "codings", "created_at"])


# --- codings ------------------------------------------------------------------------------------------------


def _codes_narrowed(stmt: Select[Any], f: LabelFilter) -> Select[Any]:
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
            Issue.title,
            CODES.c.coder,
            CODES.c.code,
            CODES.c.label,
        )
        .select_from(CODES.outerjoin(Issue, Issue.id == CODES.c.issue_id))
        .where(CODES.c.value_source == "coding")
        .order_by(CODES.c.round, CODES.c.dimension_position, CODES.c.item_id, CODES.c.coder)
    )
    columns = ["round", "dimension", "dimension_position", "item_id", "kind", "item", "repository", "number"]
    return _frame(engine, _codes_narrowed(q, f), [*columns, "title", "coder", "code", "label"])


def invalid_codings(engine: Engine, f: LabelFilter) -> pd.DataFrame:
    """Codings rejected against the codebook, with the reasons (kept for the report, never counted)."""
    q = (
        select(
            LabelRound.name,
            LabelItem.ref,
            Coder.name,
            Coding.ls_task_id,
            Coding.ls_annotation_id,
            Coding.problems,
            Coding.updated_at,
        )
        .join(LabelRound, LabelRound.id == Coding.round_id)
        .join(Coder, Coder.id == Coding.coder_id)
        .join(LabelItem, LabelItem.id == Coding.item_id)
        .where(Coding.valid.is_(False))
        .order_by(LabelRound.name, LabelItem.ref, Coder.name)
    )
    q = _narrow(q, f, round=LabelRound.name, coder=Coder.name, item=LabelItem.ref)
    return _frame(engine, q, ["round", "item", "coder", "ls_task_id", "ls_annotation_id", "problems", "updated_at"])


def coder_progress(engine: Engine, f: LabelFilter) -> pd.DataFrame:
    """Per round and coder (with codings or Label Studio tasks): items coded, codes given, invalid codings, items
    assigned in Label Studio, items of the round, and `share` done = coded of assigned (sheet rounds: of the
    round's coded items), with the round's source and codebook version."""
    pairs = union(
        select(Coding.round_id, Coding.coder_id),
        select(LsProject.round_id, LsProject.coder_id)
        .join(LsTask, LsTask.project_id == LsProject.id)
        .where(LsProject.purpose == "coding", LsProject.coder_id.is_not(None)),
    ).subquery()
    valid = and_(Coding.round_id == pairs.c.round_id, Coding.valid.is_(True))

    def scalar(stmt: Select[Any]) -> Any:
        return stmt.scalar_subquery()

    items_coded = scalar(select(func.count(distinct(Coding.item_id))).where(valid, Coding.coder_id == pairs.c.coder_id))
    codes = scalar(
        select(func.count())
        .select_from(CodingValue)
        .join(Coding, Coding.id == CodingValue.coding_id)
        .where(valid, Coding.coder_id == pairs.c.coder_id)
    )
    invalid = scalar(
        select(func.count()).where(
            Coding.round_id == pairs.c.round_id, Coding.coder_id == pairs.c.coder_id, Coding.valid.is_(False)
        )
    )
    assigned = scalar(
        select(func.count(distinct(LsTask.item_id)))
        .join(LsProject, LsProject.id == LsTask.project_id)
        .where(
            LsProject.round_id == pairs.c.round_id,
            LsProject.coder_id == pairs.c.coder_id,
            LsProject.purpose == "coding",
        )
    )
    in_round = scalar(select(func.count(distinct(Coding.item_id))).where(valid))
    q = (
        select(
            LabelRound.name,
            Coder.name,
            items_coded,
            codes,
            invalid,
            func.nullif(assigned, 0),
            in_round,
            cast(items_coded, Float) / func.nullif(func.coalesce(func.nullif(assigned, 0), in_round), 0),
            LabelRound.source,
            Codebook.name,
            CodebookVersion.version,
        )
        .select_from(pairs)
        .join(LabelRound, LabelRound.id == pairs.c.round_id)
        .join(Coder, Coder.id == pairs.c.coder_id)
        .join(CodebookVersion, CodebookVersion.id == LabelRound.codebook_version_id)
        .join(Codebook, Codebook.id == CodebookVersion.codebook_id)
        .order_by(LabelRound.created_at, LabelRound.id, Coder.name)
    )
    q = _narrow(q, f, round=LabelRound.name, coder=Coder.name)
    columns = ["round", "coder", "items_coded", "codes", "invalid_codings", "assigned", "items_in_round", "share"]
    frame = _frame(engine, q, [*columns, "source", "codebook", "codebook_version"])
    return frame.astype({"assigned": "Int64", "share": "float64"})


# --- final labels -------------------------------------------------------------------------------------------


def final_labels(engine: Engine, f: LabelFilter) -> pd.DataFrame:
    """Final labels (what analyses use) with the item, its repository and who or what decided."""
    q = (
        select(
            LabelRound.name,
            CodebookDimension.key,
            LabelItem.id,
            LabelItem.kind,
            LabelItem.ref,
            Repository.full_name,
            Issue.number,
            Issue.title,
            CodebookCode.code,
            CodebookCode.label,
            FinalLabel.decided_by,
            FinalLabel.decided_at,
            FinalLabel.note,
            FinalLabel.detail,
        )
        .select_from(FinalLabel)
        .join(LabelRound, LabelRound.id == FinalLabel.round_id)
        .join(LabelItem, LabelItem.id == FinalLabel.item_id)
        .outerjoin(Issue, Issue.id == LabelItem.issue_id)
        .outerjoin(Repository, Repository.id == Issue.repository_id)
        .join(CodebookDimension, CodebookDimension.id == FinalLabel.dimension_id)
        .join(CodebookCode, CodebookCode.id == FinalLabel.code_id)
        .order_by(LabelRound.name, LabelItem.id, CodebookDimension.position)
    )
    q = _narrow(
        q,
        f,
        round=LabelRound.name,
        dimension=CodebookDimension.key,
        repository=Repository.full_name,
        item=LabelItem.ref,
    )
    columns = ["round", "dimension", "item_id", "kind", "item", "repository", "number", "title", "code", "label"]
    return _frame(engine, q, [*columns, "decided_by", "decided_at", "note", "detail"])


def adjudication_history(engine: Engine, f: LabelFilter) -> pd.DataFrame:
    """Every decision on final labels, oldest first: new / changed / withdrawn, the code before and after, who
    decided, when, the reviewer's note and the evidence (which codings disagreed)."""
    new_code, old_code = aliased(CodebookCode), aliased(CodebookCode)
    q = (
        select(
            LabelRound.name,
            LabelItem.ref,
            CodebookDimension.key,
            AdjudicationHistory.action,
            old_code.code,
            old_code.label,
            AdjudicationHistory.previous_decided_by,
            new_code.code,
            new_code.label,
            AdjudicationHistory.decided_by,
            AdjudicationHistory.note,
            AdjudicationHistory.detail,
            AdjudicationHistory.run_id,
            AdjudicationHistory.decided_at,
        )
        .select_from(AdjudicationHistory)
        .join(LabelRound, LabelRound.id == AdjudicationHistory.round_id)
        .join(LabelItem, LabelItem.id == AdjudicationHistory.item_id)
        .join(CodebookDimension, CodebookDimension.id == AdjudicationHistory.dimension_id)
        .outerjoin(new_code, new_code.id == AdjudicationHistory.code_id)
        .outerjoin(old_code, old_code.id == AdjudicationHistory.previous_code_id)
        .order_by(LabelRound.name, LabelItem.ref, CodebookDimension.position, AdjudicationHistory.id)
    )
    q = _narrow(q, f, round=LabelRound.name, dimension=CodebookDimension.key, item=LabelItem.ref)
    columns = ["round", "item", "dimension", "action", "previous_code", "previous_label", "previous_decided_by"]
    return _frame(engine, q, [*columns, "code", "label", "decided_by", "note", "detail", "run_id", "decided_at"])


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
    rank = (
        func.row_number()
        .over(
            partition_by=(CODES.c.item_id, CODES.c.dimension),
            order_by=(CODES.c.coded_at.desc(), CODES.c.round.desc()),
        )
        .label("rank")
    )
    q = select(CODES, rank).where(CODES.c.value_source == "final")
    ranked = _codes_narrowed(q, LabelFilter(rounds=f.rounds, repositories=f.repositories, item=f.item)).subquery()
    return select(ranked).where(ranked.c.rank == 1).subquery()


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


__all__ = [
    "LabelFilter",
    "adjudication_history",
    "codebook_versions",
    "coder_progress",
    "crosstab",
    "final_label_options",
    "final_labels",
    "invalid_codings",
    "ratings",
    "rounds",
    "taxonomy_distribution",
]
