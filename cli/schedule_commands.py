"""`interop schedule …`: run the `[[schedule]]` entries of interop.toml, or show when they run next."""

from __future__ import annotations

import typer

from cli.common import console, engine
from cli.output import new_table
from db.errors import InteropError

app = typer.Typer(help="Scheduled miner runs (the \\[\\[schedule]] entries of interop.toml).", no_args_is_help=True)


def _entries():  # type: ignore[no-untyped-def]
    from db.config import load_toml
    from miners.schedule import load_entries

    entries = load_entries(load_toml())
    if not entries:
        raise InteropError("interop.toml has no [[schedule]] entries")
    return entries


@app.command("list")
def list_jobs() -> None:
    """Each scheduled job with its cron expression, command, last outcome (and how long it took) and next run."""
    from sqlalchemy.exc import SQLAlchemyError

    from db.queries.schedule import last_outcomes
    from miners.schedule import next_run

    entries = _entries()
    try:
        last = {r["job"]: r for r in last_outcomes(engine()).to_dict("records")}
    except SQLAlchemyError:  # a database not yet upgraded: the schedule itself is still worth showing
        last = {}
    table = new_table("name", "cron", "timezone", "command", "last outcome", "duration", "next run")
    for entry in entries:
        when = next_run(entry)
        row = last.get(entry.name)
        if row:
            runs = f" (run {', '.join(map(str, row['run_ids']))})" if row["run_ids"] else ""
            outcome = f"{row['outcome']}{runs} at {row['started_at']:%Y-%m-%d %H:%M} UTC: {row['detail'] or ''}"
            duration = f"{row['duration_seconds']:.1f} s" if row["duration_seconds"] is not None else "—"
        else:
            outcome, duration = "never ran", "—"
        table.add_row(
            entry.name,
            entry.cron,
            entry.timezone,
            "interop " + " ".join(entry.command),
            outcome,
            duration,
            when.isoformat() if when else "never",
        )
    console.print(table)


@app.command("run")
def run(
    once: bool = typer.Option(False, "--once", help="Run the job(s) now, once, then exit (for cron/systemd)."),
    job: str | None = typer.Option(None, "--job", help="Only this job (by name)."),
    lease: float = typer.Option(600.0, "--lease", help="Seconds a database lease lasts (renewed while running)."),
) -> None:
    """Run the schedule until Ctrl-C (or `--once`); a database lease stops two schedulers running a job twice."""
    from miners.schedule import build_scheduler, next_run, owner_id, run_job

    entries = _entries()
    if job:
        entries = [e for e in entries if e.name == job]
        if not entries:
            raise InteropError(f"no [[schedule]] entry named {job!r}")
    eng = engine()
    owner = owner_id()

    def say(message: str) -> None:
        console.print(message, markup=False)

    if once:
        outcomes = [run_job(eng, e, owner, lease_seconds=lease, say=say) for e in entries]
        if any(o.startswith("failed") for o in outcomes):
            raise typer.Exit(1)
        return
    import threading

    stop = threading.Event()
    _stop_on_signals(stop)  # before anything starts: a signal at any moment ends the same way
    scheduler = build_scheduler(eng, entries, owner, say=say, blocking=False)
    scheduler.start()
    try:
        for entry in entries:
            console.print(f"{entry.name}: next run {next_run(entry)}")
        console.print(f"scheduler {owner} started; Ctrl-C stops it")
        while not stop.wait(1.0):
            pass
    finally:
        scheduler.shutdown(wait=False)
        from miners.schedule import stop_children

        stop_children()  # a job's command is stopped too (its outcome is recorded as failed)
    console.print("scheduler stopped")


def _stop_on_signals(stop) -> None:  # type: ignore[no-untyped-def]
    """SIGINT and SIGTERM both set `stop`: the scheduler shuts down the same way (no traceback from either)."""
    import signal

    def handler(signum: int, _frame: object) -> None:
        if not stop.is_set():
            console.print(f"{signal.Signals(signum).name}: stopping the scheduler")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
