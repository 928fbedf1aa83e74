"""Read side of labeling as DataFrames: codebooks, codings (long format), final labels, distributions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from db.columns import many_columns
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
)

if TYPE_CHECKING:
    import pandas as pd


def _frame(engine: Engine, query, columns: list[str]) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    import pandas as pd

    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def codebook_versions(engine: Engine) -> pd.DataFrame:
    """One row per stored codebook version."""
    q = (
        select(
            col(Codebook.name),
            col(CodebookVersion.version),
            col(CodebookVersion.declared_version),
            col(CodebookVersion.source),
            col(CodebookVersion.loaded_at),
            col(CodebookVersion.content_hash),
        )
        .join(CodebookVersion, col(CodebookVersion.codebook_id) == col(Codebook.id))
        .order_by(Codebook.name, col(CodebookVersion.version))
    )
    return _frame(engine, q, ["codebook", "version", "declared_version", "source", "loaded_at", "content_hash"])


def rounds(engine: Engine) -> pd.DataFrame:
    """Rounds with their codebook version and how many codings they hold."""
    from sqlalchemy import func

    q = (
        select(
            col(LabelRound.name),
            col(LabelRound.source),
            col(Codebook.name),
            col(CodebookVersion.version),
            func.count(col(Coding.id)),
            col(LabelRound.created_at),
        )
        .join(CodebookVersion, col(CodebookVersion.id) == col(LabelRound.codebook_version_id))
        .join(Codebook, col(Codebook.id) == col(CodebookVersion.codebook_id))
        .outerjoin(Coding, col(Coding.round_id) == col(LabelRound.id))
        .group_by(
            col(LabelRound.id),
            LabelRound.name,
            LabelRound.source,
            Codebook.name,
            col(CodebookVersion.version),
            col(LabelRound.created_at),
        )
        .order_by(col(LabelRound.created_at), col(LabelRound.id))
    )
    return _frame(engine, q, ["round", "source", "codebook", "codebook_version", "codings", "created_at"])


def _item_columns():  # type: ignore[no-untyped-def]
    return LabelItem.id, LabelItem.kind, LabelItem.ref, Repository.full_name, Issue.number, Issue.title


def ratings(engine: Engine, round_name: str | None = None, dimension: str | None = None) -> pd.DataFrame:
    """Valid codings in long format: one row per round, item, coder and dimension, with the code given."""
    q = (
        select(
            col(LabelRound.name),
            col(CodebookDimension.key),
            col(CodebookDimension.position),
            *_item_columns(),
            col(Coder.name),
            col(CodebookCode.code),
            col(CodebookCode.label),
        )
        .select_from(CodingValue)
        .join(Coding, col(Coding.id) == col(CodingValue.coding_id))
        .join(LabelRound, col(LabelRound.id) == col(Coding.round_id))
        .join(Coder, col(Coder.id) == col(Coding.coder_id))
        .join(LabelItem, col(LabelItem.id) == col(Coding.item_id))
        .outerjoin(Issue, col(Issue.id) == col(LabelItem.issue_id))
        .outerjoin(Repository, col(Repository.id) == col(Issue.repository_id))
        .join(CodebookDimension, col(CodebookDimension.id) == col(CodingValue.dimension_id))
        .join(CodebookCode, col(CodebookCode.id) == col(CodingValue.code_id))
        .where(col(Coding.valid).is_(True))
        .order_by(LabelRound.name, col(CodebookDimension.position), col(LabelItem.id), col(Coder.name))
    )
    if round_name:
        q = q.where(col(LabelRound.name) == round_name)
    if dimension:
        q = q.where(col(CodebookDimension.key) == dimension)
    return _frame(
        engine,
        q,
        [
            "round",
            "dimension",
            "dimension_position",
            "item_id",
            "kind",
            "item",
            "repository",
            "number",
            "title",
            "coder",
            "code",
            "label",
        ],
    )


def round_coders(engine: Engine, round_name: str) -> list[str]:
    """Every coder with at least one coding (valid or not) in the round."""
    q = (
        select(col(Coder.name))
        .join(Coding, col(Coding.coder_id) == col(Coder.id))
        .join(LabelRound, col(LabelRound.id) == col(Coding.round_id))
        .where(col(LabelRound.name) == round_name)
        .distinct()
        .order_by(Coder.name)
    )
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(q).all()]


def invalid_codings(engine: Engine, round_name: str | None = None) -> pd.DataFrame:
    """Codings rejected against the codebook, with the reasons (kept for the report, never counted)."""
    q = (
        select(
            col(LabelRound.name),
            col(LabelItem.ref),
            col(Coder.name),
            col(Coding.ls_task_id),
            col(Coding.ls_annotation_id),
            col(Coding.problems),
            col(Coding.updated_at),
        )
        .join(LabelRound, col(LabelRound.id) == col(Coding.round_id))
        .join(Coder, col(Coder.id) == col(Coding.coder_id))
        .join(LabelItem, col(LabelItem.id) == col(Coding.item_id))
        .where(col(Coding.valid).is_(False))
        .order_by(LabelRound.name, LabelItem.ref, Coder.name)
    )
    if round_name:
        q = q.where(col(LabelRound.name) == round_name)
    return _frame(engine, q, ["round", "item", "coder", "ls_task_id", "ls_annotation_id", "problems", "updated_at"])


def final_labels(engine: Engine, round_name: str | None = None) -> pd.DataFrame:
    """Final labels (what analyses use) with the item, its repository and who or what decided."""
    q = (
        select(
            col(LabelRound.name),
            col(CodebookDimension.key),
            *_item_columns(),
            col(CodebookCode.code),
            col(CodebookCode.label),
            col(FinalLabel.decided_by),
            col(FinalLabel.decided_at),
            col(FinalLabel.note),
            col(FinalLabel.detail),
        )
        .select_from(FinalLabel)
        .join(LabelRound, col(LabelRound.id) == col(FinalLabel.round_id))
        .join(LabelItem, col(LabelItem.id) == col(FinalLabel.item_id))
        .outerjoin(Issue, col(Issue.id) == col(LabelItem.issue_id))
        .outerjoin(Repository, col(Repository.id) == col(Issue.repository_id))
        .join(CodebookDimension, col(CodebookDimension.id) == col(FinalLabel.dimension_id))
        .join(CodebookCode, col(CodebookCode.id) == col(FinalLabel.code_id))
        .order_by(LabelRound.name, col(LabelItem.id), col(CodebookDimension.position))
    )
    if round_name:
        q = q.where(col(LabelRound.name) == round_name)
    return _frame(
        engine,
        q,
        [
            "round",
            "dimension",
            "item_id",
            "kind",
            "item",
            "repository",
            "number",
            "title",
            "code",
            "label",
            "decided_by",
            "decided_at",
            "note",
            "detail",
        ],
    )


def adjudication_history(engine: Engine, round_name: str | None = None, item: str | None = None) -> pd.DataFrame:
    """Every decision on final labels, oldest first: new / changed / withdrawn, the code before and after, who
    decided, when, the reviewer's note and the evidence (which codings disagreed)."""
    from sqlalchemy.orm import aliased

    new_code, old_code = aliased(CodebookCode), aliased(CodebookCode)
    q = (
        select(
            *many_columns(
                col(LabelRound.name),
                col(LabelItem.ref),
                col(CodebookDimension.key),
                col(AdjudicationHistory.action),
                old_code.code,
                old_code.label,
                col(AdjudicationHistory.previous_decided_by),
                new_code.code,
                new_code.label,
                col(AdjudicationHistory.decided_by),
                col(AdjudicationHistory.note),
                col(AdjudicationHistory.detail),
                col(AdjudicationHistory.run_id),
                col(AdjudicationHistory.decided_at),
            )
        )
        .select_from(AdjudicationHistory)
        .join(LabelRound, col(LabelRound.id) == col(AdjudicationHistory.round_id))
        .join(LabelItem, col(LabelItem.id) == col(AdjudicationHistory.item_id))
        .join(CodebookDimension, col(CodebookDimension.id) == col(AdjudicationHistory.dimension_id))
        .outerjoin(new_code, col(new_code.id) == col(AdjudicationHistory.code_id))
        .outerjoin(old_code, col(old_code.id) == col(AdjudicationHistory.previous_code_id))
        .order_by(
            col(LabelRound.name), col(LabelItem.ref), col(CodebookDimension.position), col(AdjudicationHistory.id)
        )
    )
    if round_name:
        q = q.where(col(LabelRound.name) == round_name)
    if item:
        q = q.where(col(LabelItem.ref) == item)
    return _frame(
        engine,
        q,
        [
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
        ],
    )


def _latest_finals(engine: Engine, round_name: str | None) -> pd.DataFrame:
    """Final labels; without a round, the newest decision per item and dimension across rounds."""
    frame = final_labels(engine, round_name)
    if round_name or frame.empty:
        return frame
    frame = frame.sort_values("decided_at")
    return frame.drop_duplicates(["item_id", "dimension"], keep="last")


def taxonomy_distribution(engine: Engine, dimension: str, round_name: str | None = None) -> pd.DataFrame:
    """Counts and shares of each code of `dimension` per converter repository (final labels)."""
    import pandas as pd

    frame = _latest_finals(engine, round_name)
    frame = frame[frame["dimension"] == dimension]
    if frame.empty:
        return pd.DataFrame(columns=["repository", "code", "label", "count", "share"])
    out = frame.groupby(["repository", "code", "label"], dropna=False).size().rename("count").reset_index()
    out["share"] = out["count"] / out.groupby("repository")["count"].transform("sum")
    return out.sort_values(["repository", "count", "code"], ascending=[True, False, True]).reset_index(drop=True)


def crosstab(
    engine: Engine,
    rows: str = "symptom",
    columns: str = "cause",
    round_name: str | None = None,
    repository: str | None = None,
) -> pd.DataFrame:
    """Items per (row code × column code), e.g. symptom × cause, from final labels."""
    import pandas as pd

    frame = _latest_finals(engine, round_name)
    if repository:
        frame = frame[frame["repository"] == repository]
    wide = frame.pivot_table(index="item_id", columns="dimension", values="label", aggfunc="first")
    if wide.empty or rows not in wide or columns not in wide:
        return pd.DataFrame()
    return pd.crosstab(wide[rows], wide[columns])


__all__ = [
    "adjudication_history",
    "codebook_versions",
    "crosstab",
    "final_labels",
    "invalid_codings",
    "ratings",
    "round_coders",
    "rounds",
    "taxonomy_distribution",
]
