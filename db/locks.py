"""Database leases so two processes on one database never run the same job at once (schedulers, miners).

A lease names its owner (`host:pid:random`) and when it was taken; the holder renews it while it works, a
crashed holder's lease expires, and a holder on this machine whose process is gone is replaced at once.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from db.errors import InteropError
from db.models.github_mining import SchedulerLock
from db.types import utcnow

#: Exit code of a command that found its lock held by another run (sysexits' EX_TEMPFAIL: try again later).
BUSY_EXIT_CODE = 75
DEFAULT_LEASE_SECONDS = 600.0


def owner_id() -> str:
    """Who holds a lease: host, process and a random part (two holders in one process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Holder:
    """A lease as read from the database, with the host and pid its owner string names (if it names them)."""

    name: str
    owner: str
    since: datetime
    expires_at: datetime

    @property
    def host(self) -> str | None:
        parts = self.owner.rsplit(":", 2)
        return parts[0] if len(parts) == 3 and parts[1].isdigit() else None

    @property
    def pid(self) -> int | None:
        parts = self.owner.rsplit(":", 2)
        return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None

    def describe(self) -> str:
        """`host H, pid P, since … UTC (lease until … UTC)`, or the bare owner for owners of another form."""
        who = f"host {self.host}, pid {self.pid}" if self.host is not None else self.owner
        return (
            f"{who}, since {self.since:%Y-%m-%d %H:%M:%S} UTC "
            f"(lease renewed until {self.expires_at:%Y-%m-%d %H:%M:%S} UTC)"
        )


class LockBusy(InteropError):
    """Another owner holds the lease (after waiting as long as allowed)."""

    def __init__(self, holder: Holder | None, name: str) -> None:
        self.holder, self.name = holder, name
        who = holder.describe() if holder else "another process (it was released while we looked)"
        super().__init__(f"{name} is held by {who}")


def _holder_is_dead(lock: SchedulerLock) -> bool:
    """Whether the owner is a process of this machine that no longer runs (killed, crashed)."""
    import psutil

    held = Holder(lock.name, lock.owner, lock.acquired_at, lock.expires_at)
    if held.host != socket.gethostname() or held.pid is None:
        return False
    try:
        created = psutil.Process(held.pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True
    except psutil.Error:
        return False
    return created > held.since.timestamp() + 1.0  # the pid was reused by a younger process


def acquire(engine: Engine, name: str, owner: str, lease_seconds: float) -> bool:
    """Take (or renew) the lease on `name` for `owner`; False if another live owner holds an unexpired lease.

    A renewal keeps `acquired_at` (it says since when the owner holds the lease); a takeover resets it.
    """
    now = utcnow()
    expires = now + timedelta(seconds=lease_seconds)
    table = SchedulerLock.__table__  # type: ignore[attr-defined]
    with Session(engine) as session:
        renewed = session.exec(
            update(table).where(table.c.name == name, table.c.owner == owner).values(expires_at=expires)
        )
        if renewed.rowcount == 1:
            session.commit()
            return True
        current = session.exec(select(SchedulerLock).where(SchedulerLock.name == name)).first()
        if current is not None and (current.expires_at < now or _holder_is_dead(current)):
            took = session.exec(
                update(table)
                .where(table.c.name == name, table.c.owner == current.owner)
                .values(owner=owner, acquired_at=now, expires_at=expires)
            )
            if took.rowcount == 1:
                session.commit()
                return True
            session.rollback()
            return False
        session.rollback()
        if current is not None:
            return False
    try:
        with Session(engine) as session:
            session.add(SchedulerLock(name=name, owner=owner, acquired_at=now, expires_at=expires))
            session.commit()
            return True
    except IntegrityError:
        return False


def release(engine: Engine, name: str, owner: str) -> None:
    """Give the lease back (only if we still own it)."""
    table = SchedulerLock.__table__  # type: ignore[attr-defined]
    with Session(engine) as session:
        session.execute(delete(table).where(table.c.name == name, table.c.owner == owner))
        session.commit()


def holder(engine: Engine, name: str) -> Holder | None:
    """The current lease on `name`, if any (expired or not)."""
    with Session(engine) as session:
        row = session.exec(select(SchedulerLock).where(SchedulerLock.name == name)).first()
        return Holder(row.name, row.owner, row.acquired_at, row.expires_at) if row is not None else None


class Heartbeat:
    """Renews a held lease every third of its length in a daemon thread, so a long job keeps it."""

    def __init__(self, engine: Engine, name: str, owner: str, lease_seconds: float) -> None:
        self.engine, self.name, self.owner, self.lease_seconds = engine, name, owner, lease_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease:{name}", daemon=True)
        self.lost = False

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                if not acquire(self.engine, self.name, self.owner, self.lease_seconds):
                    self.lost = True  # someone took it over after it expired: nothing more we can do here
            except Exception:  # a database hiccup: try again at the next beat, the lease has slack
                continue

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@contextmanager
def held(
    engine: Engine,
    name: str,
    *,
    owner: str | None = None,
    wait_seconds: float = 0.0,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    poll_seconds: float = 1.0,
    on_wait: Callable[[Holder | None], None] | None = None,
) -> Iterator[str]:
    """Hold the lease on `name` for the duration of the block (renewed meanwhile, released after).

    If another live owner holds it, wait up to `wait_seconds` (calling `on_wait` once with the holder), then
    raise `LockBusy` naming the holder. Yields the owner id used.
    """
    owner = owner or owner_id()
    deadline = time.monotonic() + max(0.0, wait_seconds)
    told = False
    while not acquire(engine, name, owner, lease_seconds):
        current = holder(engine, name)
        if time.monotonic() >= deadline:
            raise LockBusy(current, name)
        if on_wait is not None and not told:
            on_wait(current)
            told = True
        time.sleep(min(poll_seconds, max(0.05, deadline - time.monotonic())))
    try:
        with Heartbeat(engine, name, owner, lease_seconds):
            yield owner
    finally:
        release(engine, name, owner)
