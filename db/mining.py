"""The contract every miner follows (survey import, GitHub issues, Label Studio pulls), after GrimoireLab Perceval.

A miner fetches raw items from one source and hands them on in `Batch`es; its loader stores each batch together
with the cursor the batch reaches, so a killed run resumes where the last stored batch ended. A batch only
reaches as far as the data the miner understood: an item it cannot read ends the fetch with an error before
the batch holding it is yielded, so the cursor never moves past it. `mine` runs one miner as a recorded
`ingest_run` (db/ingest.py). It lives in db/ because every miner package (miners/, labeling/) may import db/.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.engine import Engine

from db.ingest import RunLog, recorded_run

ItemT = TypeVar("ItemT")
CursorT = TypeVar("CursorT")


@dataclass
class Batch(Generic[ItemT, CursorT]):
    """Items fetched and understood, and the cursor position they cover (None: the source has no cursor).

    `context` names what the batch belongs to when one run walks several cursors (a Label Studio project)."""

    items: list[ItemT] = field(default_factory=list)
    cursor: CursorT | None = None
    context: Any = None
    final: bool = False  # the last batch of a fetch that went through to the end


class Miner(Protocol[ItemT, CursorT]):
    """One source: `fetch` yields batches oldest first, `load` stores one with its cursor, atomically."""

    kind: str  # the `ingest_run` kind, e.g. github-mine

    def parameters(self) -> dict[str, Any]:
        """What the run is asked to do, stored (masked) with its `ingest_run` row."""
        ...

    def opened(self, run: RunLog) -> AbstractContextManager[Any]:
        """What spans the whole run: a lock, a transaction, accounting; entered after the run is recorded."""
        ...

    def fetch(self, run: RunLog) -> Iterator[Batch[ItemT, CursorT]]:
        """Batches from where the stored cursor stands (or from the start), oldest first."""
        ...

    def load(self, batch: Batch[ItemT, CursorT], run: RunLog) -> None:
        """Store the batch's items and move its cursor to `batch.cursor`, in one transaction."""
        ...


def mine(engine: Engine, miner: Miner[Any, Any]) -> RunLog:
    """Run `miner` as one recorded run: every batch it fetches is loaded before the next is fetched."""
    with recorded_run(engine, miner.kind, miner.parameters()) as run, miner.opened(run):
        for batch in miner.fetch(run):
            miner.load(batch, run)
    return run
