"""Record each miner/import/campaign run in `ingest_run`, whatever way it ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from db.models.ingest import IngestRun, RunStatus
from db.types import utcnow


@dataclass
class RunLog:
    """A live handle on the run being recorded; callers bump `counts` as they go."""

    id: int
    counts: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())[:2000]


@contextmanager
def recorded_run(engine: Engine, kind: str, parameters: dict[str, Any] | None = None) -> Iterator[RunLog]:
    """Write a `running` row now (its own transaction) and close it as ok / failed / interrupted."""
    with Session(engine) as session:
        row = IngestRun(kind=kind, parameters=parameters or {})
        session.add(row)
        session.commit()
        log = RunLog(id=row.id or 0)
    status, error = RunStatus.ok, None
    try:
        yield log
    except KeyboardInterrupt:
        status, error = RunStatus.interrupted, "interrupted by the user"
        raise
    except BaseException as exc:
        status, error = RunStatus.failed, _one_line(exc)
        raise
    finally:
        with Session(engine) as session:
            row = session.get(IngestRun, log.id)
            if row is not None:
                row.status, row.error = status, error
                row.finished_at = utcnow()
                row.counts = dict(log.counts)
                session.add(row)
                session.commit()
