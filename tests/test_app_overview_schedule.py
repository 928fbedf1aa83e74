"""The Overview shows each scheduled job's last outcome (the schedule read model `interop schedule list` uses),
its duration and next run, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy.engine import Engine

from db.ingest import recorded_run
from miners.schedule import ScheduleEntry, run_job
from tests.support.apptest import open_page

QUIET = {"say": lambda _m: None}


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    st.cache_data.clear()
    yield
    st.cache_data.clear()


def test_overview_shows_each_scheduled_jobs_last_outcome(
    configured_db: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_cache: None
) -> None:
    toml = tmp_path / "interop.toml"
    toml.write_text(
        '[[schedule]]\nname = "mine"\ncron = "0 3 * * *"\ncommand = "interop mine github --all"\n\n'
        '[[schedule]]\nname = "broken"\ncron = "0 4 * * *"\ncommand = "interop mine github --repo nope"\n\n'
        '[[schedule]]\nname = "later"\ncron = "0 5 1 1 *"\ncommand = "interop db current"\n'
    )
    monkeypatch.setenv("INTEROP_CONFIG", str(toml))

    def mines(_args: tuple[str, ...]) -> tuple[int, int]:
        with recorded_run(engine, "github-mine", {"repo": "a/b"}):
            pass
        return 0, os.getpid()

    mine = ScheduleEntry("mine", "0 3 * * *", ("mine", "github", "--all"))
    broken = ScheduleEntry("broken", "0 4 * * *", ("mine", "github", "--repo", "nope"))
    assert run_job(engine, broken, "A", runner=mines, **QUIET) == "ok"  # ran once, then failed: the last counts
    assert run_job(engine, broken, "A", runner=lambda _a: 2, **QUIET) == "failed (exit 2)"
    assert run_job(engine, mine, "A", runner=mines, **QUIET) == "ok"

    at = open_page()
    table = next(t.value for t in at.table if "last outcome" in t.value.columns).set_index("job")
    assert table.loc["mine", "last outcome"] == "ran" and "ok" in table.loc["mine", "detail"]
    assert table.loc["mine", "runs"] not in ("", "—") and float(table.loc["mine", "seconds"]) >= 0
    assert table.loc["broken", "last outcome"] == "failed"
    assert table.loc["broken", "detail"] == "exit 2; before any run started"
    assert table.loc["later", "last outcome"] == "never ran" and table.loc["later", "fired (UTC)"] == "—"
    assert table.loc["mine", "next run (UTC)"].endswith("03:00")
    assert any("Scheduled job `broken` failed last" in w.value for w in at.warning)
