"""The Miner contract (db/mining.py): batches are loaded as fetched, the run is recorded, the cursor stops before
anything not understood; the survey import, the GitHub miner and the Label Studio pull each implement it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.ingest import RunLog
from db.mining import Batch, mine
from db.models.ingest import IngestRun


class ListMiner:
    """A source of numbers read two at a time; the cursor is the index of the last number stored."""

    kind = "test-list"

    def __init__(self, items: list[Any]) -> None:
        self.items, self.stored, self.cursor = items, [], None  # type: ignore[var-annotated]

    def parameters(self) -> dict[str, Any]:
        return {"items": len(self.items)}

    def opened(self, run: RunLog) -> AbstractContextManager[None]:
        return nullcontext()

    def fetch(self, run: RunLog) -> Iterator[Batch[int, int]]:
        start = 0 if self.cursor is None else self.cursor + 1
        batch: list[int] = []
        for index in range(start, len(self.items)):
            if not isinstance(self.items[index], int):
                raise ValueError(f"item {index} is not a number")
            batch.append(self.items[index])
            if len(batch) == 2:
                yield Batch(batch, index)
                batch = []
        yield Batch(batch, len(self.items) - 1, final=True)

    def load(self, batch: Batch[int, int], run: RunLog) -> None:
        self.stored.extend(batch.items)
        self.cursor = batch.cursor
        run.add("stored", len(batch.items))


def runs(engine: Engine) -> list[IngestRun]:
    with Session(engine) as session:
        return list(session.exec(select(IngestRun).where(IngestRun.kind == "test-list").order_by(IngestRun.id)))


def test_the_cursor_stops_before_what_was_not_understood_and_the_next_run_resumes(engine: Engine) -> None:
    miner = ListMiner([1, 2, 3, 4, 5, "six", 7])
    with pytest.raises(ValueError, match="item 5"):
        mine(engine, miner)
    assert miner.stored == [1, 2, 3, 4] and miner.cursor == 3  # 5 waits for the batch the bad item ended
    failed = runs(engine)[-1]
    assert failed.status == "failed" and failed.counts == {"stored": 4} and "item 5" in (failed.error or "")

    miner.items[5] = 6
    run = mine(engine, miner)
    assert miner.stored == [1, 2, 3, 4, 5, 6, 7] and miner.cursor == 6
    assert run.counts == {"stored": 3}
    assert [r.status for r in runs(engine)] == ["failed", "ok"]


def test_the_three_pipelines_are_miners() -> None:
    from labeling.pull import LabelPull
    from miners.github.miner import GitHubMiner
    from miners.survey.workflow import SurveyImport

    for miner, kind in ((SurveyImport, "survey-import"), (GitHubMiner, "github-mine"), (LabelPull, "label-pull")):
        assert miner.kind == kind
        assert all(callable(getattr(miner, verb)) for verb in ("parameters", "opened", "fetch", "load"))
