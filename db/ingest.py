"""Record each miner/import/campaign run in `ingest_run`, whatever way it ends."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psutil
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.masking import mask_text
from db.models.ingest import IngestRun, RunStatus
from db.types import utcnow


class Terminated(KeyboardInterrupt):
    """SIGTERM turned into an exception (the CLI installs the handler), so a run closes as `interrupted`."""


@dataclass
class RunLog:
    """A live handle on the run being recorded; callers bump `counts` as they go."""

    id: int
    counts: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


def _masked(value: Any) -> Any:
    """Parameters as stored: credentials inside any text (a base URL with a token…) masked, at any depth."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())[:2000]


def _process_alive(pid: int, started_at: datetime) -> bool:
    """Whether `pid` is still the process that started the run (a reused pid started later is another one)."""
    try:
        created = psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.Error:
        return True  # exists but cannot be inspected: assume it is ours
    return created <= started_at.timestamp() + 1.0


def close_abandoned_runs(engine: Engine) -> list[int]:
    """Mark `running` rows of this machine whose process is gone as `abandoned`; returns their ids.

    Only rows written with a host and pid on this machine can be checked; others are left as they are.
    """
    host = socket.gethostname()
    closed = []
    with Session(engine) as session:
        stmt = select(IngestRun).where(IngestRun.status == RunStatus.running.value, IngestRun.host == host)
        for row in session.exec(stmt):
            if row.pid is None or _process_alive(row.pid, row.started_at):
                continue
            row.status = RunStatus.abandoned.value
            row.error = (
                f"process {row.pid} on {host} ended without closing this run (killed or crashed); "
                f"noticed at {utcnow():%Y-%m-%d %H:%M:%S} UTC"
            )
            session.add(row)
            closed.append(int(row.id or 0))
        session.commit()
    return closed


@contextmanager
def recorded_run(engine: Engine, kind: str, parameters: dict[str, Any] | None = None) -> Iterator[RunLog]:
    """Write a `running` row now (its own transaction) and close it as ok / failed / interrupted.

    Rows left `running` by earlier processes of this machine that died are closed as `abandoned` first.
    """
    close_abandoned_runs(engine)
    with Session(engine) as session:
        row = IngestRun(kind=kind, parameters=_masked(parameters or {}), host=socket.gethostname(), pid=os.getpid())
        session.add(row)
        session.commit()
        log = RunLog(id=row.id or 0, parameters=dict(parameters or {}))
    status, error = RunStatus.ok, None
    try:
        yield log
    except KeyboardInterrupt as exc:
        status, error = RunStatus.interrupted, str(exc) or "interrupted by the user"
        raise
    except BaseException as exc:
        status, error = RunStatus.failed, mask_text(_one_line(exc))
        raise
    finally:
        with Session(engine) as session:
            stored = session.get(IngestRun, log.id)
            if stored is not None:
                stored.status, stored.error = status, error
                stored.finished_at = utcnow()
                stored.counts = dict(log.counts)
                stored.parameters = _masked(dict(log.parameters))  # callers may add what they learn during the run
                session.add(stored)
                session.commit()
