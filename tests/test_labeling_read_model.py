"""The one labeling read model (db.queries.labeling): its filter, progress, and the newest final label in SQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.models import CodebookCode, CodebookDimension, FinalLabel, LabelItem, LabelRound, LsProject, LsTask
from db.models.labeling import Coder
from db.queries.labeling import (
    LabelFilter,
    coder_progress,
    crosstab,
    final_label_options,
    final_labels,
    invalid_codings,
    ratings,
    rounds,
    taxonomy_distribution,
)
from tests.support.codings import T, seed_codings


@pytest.fixture
def coded(engine: Engine) -> Engine:
    """seed_codings, plus round r2 that re-decides the issue's cause a day later (code 1 instead of 2)."""
    seed_codings(engine)
    with Session(engine) as s:
        r1 = s.exec(select(LabelRound).where(LabelRound.name == "r1")).one()
        r2 = LabelRound(name="r2", codebook_version_id=r1.codebook_version_id, source="labelstudio")
        s.add(r2)
        s.flush()
        item = s.exec(select(LabelItem).where(LabelItem.kind == "issue")).one()
        cause = s.exec(select(CodebookDimension).where(CodebookDimension.key == "cause")).one()
        code = s.exec(select(CodebookCode).where(CodebookCode.dimension_id == cause.id, CodebookCode.code == 1)).one()
        s.add(
            FinalLabel(
                round_id=r2.id or 0,
                item_id=item.id or 0,
                dimension_id=cause.id or 0,
                code_id=code.id or 0,
                decided_by="review:dan",
                decided_at=T + timedelta(days=1),
            )
        )
        s.commit()
    return engine


def test_ratings_and_invalid_codings_narrow_by_every_field(coded: Engine) -> None:
    everything = ratings(coded, LabelFilter())
    assert len(everything) == 5 and set(everything["round"]) == {"r1"}
    assert ratings(coded, LabelFilter(coders=("bob",)))["label"].tolist() == ["symptom 1", "cause 2"]
    assert ratings(coded, LabelFilter(dimensions=["cause"]))["coder"].tolist() == ["alice", "bob"]
    assert ratings(coded, LabelFilter(repositories=("acme/conv",)))["number"].unique().tolist() == [42]
    assert ratings(coded, LabelFilter(item="s1:R_1:Q8"))["kind"].tolist() == ["survey_answer"]
    assert ratings(coded, LabelFilter(rounds=("r2",))).empty
    invalid = invalid_codings(coded, LabelFilter(rounds=("r1",)))
    assert invalid[["item", "coder"]].values.tolist() == [["s1:R_1:Q8", "bob"]]
    assert invalid_codings(coded, LabelFilter(coders=("alice",))).empty
    assert rounds(coded, LabelFilter(rounds=("r1",)))["codings"].tolist() == [4]


def test_the_newest_final_label_counts_unless_a_round_is_named(coded: Engine) -> None:
    assert len(final_labels(coded, LabelFilter())) == 3
    assert final_labels(coded, LabelFilter(item="acme/conv#42", dimensions=("cause",)))["round"].tolist() == [
        "r1",
        "r2",
    ]
    newest = taxonomy_distribution(coded, LabelFilter(), "cause")
    assert newest[["repository", "label", "count", "share"]].values.tolist() == [["acme/conv", "cause 1", 1, 1.0]]
    first = taxonomy_distribution(coded, LabelFilter(rounds=("r1",)), "cause")
    assert first["label"].tolist() == ["cause 2"]
    table = crosstab(coded, LabelFilter(), "symptom", "cause")
    assert table.to_dict() == {"cause 1": {"symptom 1": 1}}
    assert table.index.name == "symptom" and table.columns.name == "cause"
    assert crosstab(coded, LabelFilter(rounds=("r2",)), "symptom", "cause").empty  # r2 decided no symptom
    assert crosstab(coded, LabelFilter(repositories=("other/repo",)), "symptom", "cause").empty
    assert final_label_options(coded) == {"dimensions": ["symptom", "cause"], "repositories": ["acme/conv"]}


def test_progress_counts_coded_of_assigned(coded: Engine) -> None:
    with Session(coded) as s:
        r1 = s.exec(select(LabelRound).where(LabelRound.name == "r1")).one()
        carol = Coder(name="carol")
        s.add(carol)
        s.flush()
        project = LsProject(round_id=r1.id or 0, coder_id=carol.id, purpose="coding", ls_project_id=9, config_hash="x")
        s.add(project)
        s.flush()
        for n, item in enumerate(s.exec(select(LabelItem)).all()):
            s.add(LsTask(project_id=project.id or 0, item_id=item.id or 0, ls_task_id=n))
        s.commit()
    progress = coder_progress(coded, LabelFilter(rounds=("r1",))).set_index("coder")
    assert progress.loc["alice", ["items_coded", "codes", "invalid_codings", "items_in_round"]].tolist() == [2, 3, 0, 2]
    assert progress.loc["bob", ["items_coded", "codes", "invalid_codings"]].tolist() == [1, 2, 1]
    assert progress.loc["bob", "share"] == 0.5 and progress["assigned"].isna().loc["bob"]
    assert progress.loc["carol", "assigned"] == 2 and progress.loc["carol", "share"] == 0.0
    assert coder_progress(coded, LabelFilter(coders=("carol",)))["coder"].tolist() == ["carol"]
