"""Database leases so two schedulers on one database never run the same job at once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from db.models.github_mining import SchedulerLock
from db.types import utcnow


def acquire(engine: Engine, name: str, owner: str, lease_seconds: float) -> bool:
    """Take (or renew) the lease on `name` for `owner`; False if another owner holds an unexpired lease."""
    now = utcnow()
    expires = now + timedelta(seconds=lease_seconds)
    with Session(engine) as session:
        stmt = (
            update(SchedulerLock)
            .where(SchedulerLock.name == name)  # type: ignore[arg-type]
            .where((SchedulerLock.owner == owner) | (SchedulerLock.expires_at < now))  # type: ignore[arg-type]
            .values(owner=owner, acquired_at=now, expires_at=expires)
        )
        if session.execute(stmt).rowcount == 1:  # type: ignore[attr-defined]
            session.commit()
            return True
        session.rollback()
    try:
        with Session(engine) as session:
            session.add(SchedulerLock(name=name, owner=owner, acquired_at=now, expires_at=expires))
            session.commit()
            return True
    except IntegrityError:
        return False


def release(engine: Engine, name: str, owner: str) -> None:
    """Give the lease back (only if we still own it)."""
    with Session(engine) as session:
        session.execute(
            delete(SchedulerLock).where(SchedulerLock.name == name).where(SchedulerLock.owner == owner)  # type: ignore[arg-type]
        )
        session.commit()


def holder(engine: Engine, name: str) -> SchedulerLock | None:
    """The current lease on `name`, if any (expired or not)."""
    from sqlmodel import select

    with Session(engine) as session:
        return session.exec(select(SchedulerLock).where(SchedulerLock.name == name)).first()
