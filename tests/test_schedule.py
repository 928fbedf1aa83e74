"""Scheduling: `[[schedule]]` entries, APScheduler job options, and the database lease between schedulers."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from db import locks
from miners.schedule import ScheduleEntry, ScheduleError, build_scheduler, load_entries, next_run, run_job

ROOT = Path(__file__).resolve().parents[1]


def test_entries_are_validated() -> None:
    entries = load_entries(
        {
            "schedule": [
                {"cron": "*/30 * * * *", "command": "interop mine github --all"},
                {"name": "nightly", "cron": "0 3 * * *", "command": "db current"},
            ]
        }
    )
    assert [e.name for e in entries] == ["mine github --all", "nightly"]
    assert entries[0].command == ("mine", "github", "--all")
    assert next_run(entries[1]) is not None
    for bad, message in [
        ({"cron": "61 * * * *", "command": "x"}, "bad cron"),
        ({"cron": "* * * * *"}, "required"),
        ({"cron": "* * * * *", "command": "x", "when": 1}, "unknown key"),
    ]:
        with pytest.raises(ScheduleError, match=message):
            load_entries({"schedule": [bad]})
    with pytest.raises(ScheduleError, match="duplicate"):
        load_entries({"schedule": [{"cron": "* * * * *", "command": "x"}] * 2})


def test_scheduler_jobs_are_single_instance_and_coalesced(engine: Engine) -> None:
    entry = ScheduleEntry("mine", "*/5 * * * *", ("mine", "github", "--all"))
    scheduler = build_scheduler(engine, [entry], "me", blocking=False)
    scheduler.start(paused=True)
    try:
        job = scheduler.get_job("mine")
        assert job.coalesce is True and job.max_instances == 1 and job.next_run_time is not None
    finally:
        scheduler.shutdown(wait=False)


def test_lease_is_exclusive_renewable_and_expires(engine: Engine) -> None:
    assert locks.acquire(engine, "job", "A", 60)
    assert not locks.acquire(engine, "job", "B", 60)
    assert locks.acquire(engine, "job", "A", 60)  # renewal by the holder
    locks.release(engine, "job", "B")  # not B's to release
    assert locks.holder(engine, "job").owner == "A"  # type: ignore[union-attr]
    locks.release(engine, "job", "A")
    assert locks.acquire(engine, "job", "B", -1)  # an already expired lease (a crashed scheduler)
    assert locks.acquire(engine, "job", "C", 60)
    assert not locks.acquire(engine, "job", "B", 60)


def test_concurrent_acquire_has_exactly_one_winner(engine: Engine) -> None:
    barrier = threading.Barrier(6)
    wins: list[str] = []

    def contend(owner: str) -> None:
        barrier.wait()
        if locks.acquire(engine, "race", owner, 60):
            wins.append(owner)

    threads = [threading.Thread(target=contend, args=(f"s{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1


def test_two_schedulers_never_run_the_same_job_at_once(engine: Engine) -> None:
    entry = ScheduleEntry("mine", "* * * * *", ("mine", "github", "--all"))
    running, peak, calls = [0], [0], []
    guard = threading.Lock()

    def slow(args: tuple[str, ...]) -> int:
        with guard:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        calls.append(args)
        time.sleep(0.5)
        with guard:
            running[0] -= 1
        return 0

    outcomes: list[str] = []
    threads = [
        threading.Thread(
            target=lambda o=o: outcomes.append(
                run_job(engine, entry, o, lease_seconds=30, runner=slow, say=lambda _m: None)
            )
        )
        for o in ("A", "B")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1 and len(calls) == 1
    assert sorted(o.split(" ")[0] for o in outcomes) == ["ok", "skipped"]
    assert locks.holder(engine, "schedule:mine") is None  # released after the run
    assert run_job(engine, entry, "B", runner=lambda _a: 3, say=lambda _m: None) == "failed (exit 3)"


def test_schedule_cli_list_and_run_once(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wide_console: None
) -> None:
    toml = tmp_path / "interop.toml"
    toml.write_text('[[schedule]]\nname = "where"\ncron = "0 3 * * *"\ncommand = "interop db current"\n')
    monkeypatch.setenv("INTEROP_CONFIG", str(toml))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(ROOT)
    listed = cli("schedule", "list")
    assert listed.exit_code == 0 and "where" in listed.output and "03:00:00" in listed.output
    ran = cli("schedule", "run", "--once", "--job", "where")
    assert ran.exit_code == 0 and "where: ok" in ran.output
    missing = cli("schedule", "run", "--once", "--job", "nope")
    assert missing.exit_code == 2 and "no [[schedule]] entry" in missing.output
    toml.write_text('[[schedule]]\ncron = "bad"\ncommand = "db current"\n')
    bad = cli("schedule", "list")
    assert bad.exit_code == 2 and "bad cron" in bad.output


def test_two_apscheduler_instances_on_one_database_run_a_due_job_once(engine: Engine) -> None:
    """Two real schedulers (as two hosts would run) fire the same due job; the lease lets one run it."""
    entry = ScheduleEntry("mine", "0 3 * * *", ("mine", "github", "--all"))
    calls: list[str] = []
    said: list[str] = []
    done = threading.Event()

    def runner(args: tuple[str, ...]) -> int:
        calls.append(" ".join(args))
        time.sleep(2)  # long enough that the other scheduler fires while this one holds the lease
        return 0

    def say(message: str) -> None:
        said.append(message)
        if len([m for m in said if m.endswith(("ok", ")"))]) >= 2:
            done.set()

    schedulers = [
        build_scheduler(engine, [entry], owner, blocking=False, say=say, runner=runner)
        for owner in ("host-a", "host-b")
    ]
    for scheduler in schedulers:
        scheduler.start(paused=True)
        scheduler.get_job("mine").modify(next_run_time=datetime.now(UTC))
    for scheduler in schedulers:
        scheduler.resume()
    try:
        assert done.wait(15), said
    finally:
        for scheduler in schedulers:
            scheduler.shutdown(wait=True)
    assert calls == ["mine github --all"]
    assert sum("skipped (held by host-" in m for m in said) == 1 and sum(m == "mine: ok" for m in said) == 1


# -- every firing leaves an outcome -------------------------------------------------------------------


def _outcomes(engine: Engine) -> list[dict]:  # type: ignore[type-arg]
    from sqlmodel import Session, select

    from db.models import ScheduleOutcome

    with Session(engine) as s:
        return [r.model_dump() for r in s.exec(select(ScheduleOutcome).order_by(ScheduleOutcome.id)).all()]


def test_a_run_a_failure_before_the_miner_and_a_skip_are_all_recorded(engine: Engine) -> None:
    import os

    from db.ingest import recorded_run
    from db.queries.schedule import last_outcomes

    entry = ScheduleEntry("mine", "* * * * *", ("mine", "github", "--all"))

    def mines(_args: tuple[str, ...]) -> tuple[int, int]:
        with recorded_run(engine, "github-mine", {"repo": "a/b"}):
            time.sleep(0.2)
        return 0, os.getpid()

    quiet = {"say": lambda _m: None}
    assert run_job(engine, entry, "A", runner=mines, **quiet) == "ok"
    ran = _outcomes(engine)[-1]
    assert ran["outcome"] == "ran" and len(ran["run_ids"]) == 1 and "ok" in ran["detail"]
    assert ran["duration_seconds"] >= 0.2 and ran["owner"] == "A"
    assert run_job(engine, entry, "A", runner=lambda _a: 2, **quiet) == "failed (exit 2)"
    failed = _outcomes(engine)[-1]
    assert failed["outcome"] == "failed" and failed["exit_code"] == 2 and failed["run_ids"] == []
    assert failed["detail"] == "exit 2; before any run started"
    assert locks.acquire(engine, "schedule:mine", "host-x:4242:abcd", 60)
    assert run_job(engine, entry, "A", runner=mines, **quiet).startswith("skipped (held by host host-x, pid 4242")
    skipped = _outcomes(engine)[-1]
    assert skipped["outcome"] == "skipped" and "host host-x, pid 4242, since" in skipped["detail"]
    last = last_outcomes(engine)
    assert list(last["job"]) == ["mine"] and last.iloc[0]["outcome"] == "skipped"


def test_schedule_list_shows_last_outcome_duration_and_next_run(
    cli, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wide_console: None
) -> None:
    toml = tmp_path / "interop.toml"
    toml.write_text(
        '[[schedule]]\nname = "broken"\ncron = "0 3 * * *"\ncommand = "interop mine github --repo nope"\n\n'
        '[[schedule]]\nname = "where"\ncron = "0 4 * * *"\ncommand = "interop db current"\n'
    )
    monkeypatch.setenv("INTEROP_CONFIG", str(toml))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(ROOT)
    assert "never ran" in cli("schedule", "list").output
    broken = cli("schedule", "run", "--once", "--job", "broken")
    assert broken.exit_code == 1 and "broken: failed (exit 2)" in broken.output
    row = _outcomes(engine)[-1]
    assert row["job"] == "broken" and row["outcome"] == "failed" and "before any run started" in row["detail"]
    listed = cli("schedule", "list")
    assert listed.exit_code == 0, listed.output
    assert "failed at" in listed.output and "exit 2; before any run started" in listed.output
    assert " s " in listed.output and "never ran" in listed.output  # broken has a duration; where never ran


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_sigint_stops_schedule_run_as_cleanly_as_sigterm(db_url: str, tmp_path: Path, sig: str) -> None:
    import os
    import signal
    import subprocess
    import sys

    toml = tmp_path / "interop.toml"
    toml.write_text('[[schedule]]\nname = "yearly"\ncron = "0 0 1 1 *"\ncommand = "interop db current"\n')
    env = {**os.environ, "INTEROP_DATABASE_URL": db_url, "INTEROP_CONFIG": str(toml), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "schedule", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "started" in line:
            break
    proc.send_signal(getattr(signal, sig))
    rest, _ = proc.communicate(timeout=30)
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert f"{sig}: stopping the scheduler" in output and "scheduler stopped" in output
    assert "Traceback" not in output
