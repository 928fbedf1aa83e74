"""Scheduled `interop` commands from `[[schedule]]` in interop.toml, run by APScheduler 3.

Each job runs at most once at a time in this process (max_instances=1), missed runs collapse into one
(coalesce), and a database lease (`scheduler_lock`) keeps two schedulers on the same database from
running the same job at once; a crashed holder's lease simply expires.
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


def run_command(args: tuple[str, ...]) -> int:
    """Run `interop ARGS` in a child process (same interpreter, environment and working directory)."""
    return subprocess.call([sys.executable, "-m", "cli.main", *args])


def run_job(
    engine: Engine,
    entry: ScheduleEntry,
    owner: str,
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    runner: Callable[[tuple[str, ...]], int] = run_command,
    say: Callable[[str], None] = print,
) -> str:
    """Run one job under its database lease; returns "ok", "failed (exit N)" or "skipped (held by …)".

    A command that itself finds its own lock busy (a miner run started by hand, say) exits with
    `locks.BUSY_EXIT_CODE`: that is a skip too, not a failure.
    """
    lock_name = f"schedule:{entry.name}"
    if not locks.acquire(engine, lock_name, owner, lease_seconds):
        held = locks.holder(engine, lock_name)
        outcome = f"skipped (held by {held.describe() if held else 'another scheduler'})"
        say(f"{entry.name}: {outcome}")
        return outcome
    try:
        with locks.Heartbeat(engine, lock_name, owner, lease_seconds):  # keeps the lease while a long job runs
            say(f"{entry.name}: running `interop {shlex.join(entry.command)}`")
            code = runner(entry.command)
    finally:
        locks.release(engine, lock_name, owner)
    if code == locks.BUSY_EXIT_CODE:
        outcome = "skipped (its command found another run holding its lock)"
    else:
        outcome = "ok" if code == 0 else f"failed (exit {code})"
    say(f"{entry.name}: {outcome}")
    return outcome


def build_scheduler(
    engine: Engine,
    entries: list[ScheduleEntry],
    owner: str,
    *,
    blocking: bool = True,
    say: Callable[[str], None] = print,
    runner: Callable[[tuple[str, ...]], int] = run_command,
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
