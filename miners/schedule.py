"""Scheduled `interop` commands from `[[schedule]]` in interop.toml, run by APScheduler 3.

Each job runs at most once at a time in this process (max_instances=1), missed runs collapse into one
(coalesce), and a database lease (`scheduler_lock`) keeps two schedulers on the same database from
running the same job at once; a crashed holder's lease simply expires. Every firing leaves a
`schedule_outcome` row: ran (with the `ingest_run` ids its command recorded), failed (before any run
started, or with the failed run), or skipped (who held the lock, since when).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from db import locks
from db.errors import InteropError
from db.types import utcnow

DEFAULT_LEASE_SECONDS = locks.DEFAULT_LEASE_SECONDS
owner_id = locks.owner_id  # who holds a lease: host, process and a random part


class ScheduleError(InteropError):
    """A `[[schedule]]` entry that cannot be used (named in the message)."""


@dataclass(frozen=True)
class ScheduleEntry:
    name: str
    cron: str
    command: tuple[str, ...]
    timezone: str = "UTC"

    def trigger(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger

        return CronTrigger.from_crontab(self.cron, timezone=self.timezone)


def load_entries(config: dict[str, Any]) -> list[ScheduleEntry]:
    """Validated `[[schedule]]` entries: `cron` (5 fields), `command` (an interop command line), optional
    `name` (default: the command) and `timezone` (default UTC)."""
    raw = config.get("schedule") or []
    if not isinstance(raw, list):
        raise ScheduleError("interop.toml: `schedule` must be an array of tables ([[schedule]])")
    entries: list[ScheduleEntry] = []
    for i, item in enumerate(raw, 1):
        where = f"interop.toml [[schedule]] entry {i}"
        if not isinstance(item, dict):
            raise ScheduleError(f"{where}: not a table")
        unknown = set(item) - {"name", "cron", "command", "timezone"}
        if unknown:
            raise ScheduleError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        cron, command = item.get("cron"), item.get("command")
        if not isinstance(cron, str) or not isinstance(command, str) or not command.strip():
            raise ScheduleError(f"{where}: `cron` and `command` (strings) are required")
        args = shlex.split(command)
        if args and args[0] == "interop":
            args = args[1:]
        entry = ScheduleEntry(
            str(item.get("name") or " ".join(args)), cron, tuple(args), str(item.get("timezone", "UTC"))
        )
        try:
            entry.trigger()
        except (ValueError, LookupError) as exc:
            raise ScheduleError(f"{where}: bad cron expression {cron!r}: {exc}") from None
        if any(e.name == entry.name for e in entries):
            raise ScheduleError(f"{where}: duplicate name {entry.name!r}")
        entries.append(entry)
    return entries


def next_run(entry: ScheduleEntry, now: datetime | None = None) -> datetime | None:
    return entry.trigger().get_next_fire_time(None, now or utcnow())


_children: set[subprocess.Popen[bytes]] = set()


def run_command(args: tuple[str, ...]) -> tuple[int, int]:
    """Run `interop ARGS` in a child process (same interpreter, environment and working directory); returns
    its exit code and pid (the pid finds the runs it recorded)."""
    with subprocess.Popen([sys.executable, "-m", "cli.main", *args]) as child:
        _children.add(child)
        try:
            return child.wait(), child.pid
        finally:
            _children.discard(child)


def stop_children() -> None:
    """SIGTERM every job command still running (the scheduler is stopping): none is left orphaned."""
    for child in list(_children):
        if child.poll() is None:
            child.terminate()


def _last_run_id(engine: Engine) -> int:
    from sqlalchemy import func, select
    from sqlmodel import Session

    from db.models import IngestRun

    with Session(engine) as session:
        return int(session.execute(select(func.max(IngestRun.id))).scalar_one() or 0)


def _runs_since(engine: Engine, after_id: int, pid: int | None) -> list[tuple[int, str]]:
    """(id, status) of the runs recorded after `after_id` by the job's process (any process when unknown)."""
    import socket

    from sqlalchemy import select
    from sqlmodel import Session, col

    from db.models import IngestRun

    stmt = (
        select(col(IngestRun.id), col(IngestRun.status)).where(col(IngestRun.id) > after_id).order_by(col(IngestRun.id))
    )
    if pid is not None:
        stmt = stmt.where(col(IngestRun.pid) == pid).where(col(IngestRun.host) == socket.gethostname())
    with Session(engine) as session:
        return [(int(i), str(st)) for i, st in session.execute(stmt).all()]


def record_outcome(
    engine: Engine,
    job: str,
    owner: str,
    outcome: str,
    detail: str | None,
    started: datetime,
    *,
    exit_code: int | None = None,
    run_ids: list[int] | None = None,
) -> None:
    """Store one firing of `job` (a scheduler must never die of its bookkeeping: errors are reported only)."""
    from sqlmodel import Session

    from db.models import ScheduleOutcome

    finished = utcnow()
    row = ScheduleOutcome(
        job=job,
        outcome=outcome,
        detail=detail,
        exit_code=exit_code,
        run_ids=run_ids or [],
        owner=owner,
        started_at=started,
        finished_at=finished,
        duration_seconds=round((finished - started).total_seconds(), 3),
    )
    with Session(engine) as session:
        session.add(row)
        session.commit()


def run_job(
    engine: Engine,
    entry: ScheduleEntry,
    owner: str,
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    runner: Callable[[tuple[str, ...]], int | tuple[int, int]] = run_command,
    say: Callable[[str], None] = print,
) -> str:
    """Run one job under its database lease; returns "ok", "failed (exit N)" or "skipped (held by …)".

    A command that itself finds its own lock busy (a miner run started by hand, say) exits with
    `locks.BUSY_EXIT_CODE`: that is a skip too, not a failure.
    """
    lock_name = f"schedule:{entry.name}"
    started = utcnow()
    if not locks.acquire(engine, lock_name, owner, lease_seconds):
        held = locks.holder(engine, lock_name)
        who = held.describe() if held else "another scheduler"
        outcome = f"skipped (held by {who})"
        say(f"{entry.name}: {outcome}")
        record_outcome(engine, entry.name, owner, "skipped", f"lock held by {who}", started)
        return outcome
    before = _last_run_id(engine)
    code: int = -1
    pid: int | None = None
    try:
        with locks.Heartbeat(engine, lock_name, owner, lease_seconds):  # keeps the lease while a long job runs
            say(f"{entry.name}: running `interop {shlex.join(entry.command)}`")
            answer = runner(entry.command)
            code, pid = answer if isinstance(answer, tuple) else (answer, None)
    except BaseException as exc:  # the scheduler is stopping (Ctrl-C, SIGTERM) or the command could not start
        runs = _runs_since(engine, before, pid)
        why = "interrupted" if isinstance(exc, KeyboardInterrupt | SystemExit) else f"could not start: {exc}"
        record_outcome(engine, entry.name, owner, "failed", why, started, run_ids=[i for i, _ in runs])
        raise
    finally:
        locks.release(engine, lock_name, owner)
    runs = _runs_since(engine, before, pid)
    ids = [i for i, _ in runs]
    statuses = ", ".join(f"run {i} {st}" for i, st in runs)
    if code == locks.BUSY_EXIT_CODE:
        outcome = "skipped (its command found another run holding its lock)"
        record_outcome(
            engine,
            entry.name,
            owner,
            "skipped",
            "its command found another run holding its lock",
            started,
            exit_code=code,
            run_ids=ids,
        )
    elif code == 0:
        outcome = "ok"
        record_outcome(engine, entry.name, owner, "ran", statuses or "exit 0", started, exit_code=0, run_ids=ids)
    else:
        outcome = f"failed (exit {code})"
        detail = f"exit {code}; " + (statuses if runs else "before any run started")
        record_outcome(engine, entry.name, owner, "failed", detail, started, exit_code=code, run_ids=ids)
    say(f"{entry.name}: {outcome}" + (f" [{statuses}]" if statuses else ""))
    return outcome


def build_scheduler(
    engine: Engine,
    entries: list[ScheduleEntry],
    owner: str,
    *,
    blocking: bool = True,
    say: Callable[[str], None] = print,
    runner: Callable[[tuple[str, ...]], int | tuple[int, int]] = run_command,
) -> Any:
    """An APScheduler scheduler with one cron job per entry: one instance at a time, missed runs coalesced."""
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    cls = BlockingScheduler if blocking else BackgroundScheduler
    scheduler = cls(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600})
    for entry in entries:
        scheduler.add_job(
            run_job,
            entry.trigger(),
            args=(engine, entry, owner),
            kwargs={"say": say, "runner": runner},
            id=entry.name,
            name=entry.name,
        )
    return scheduler
