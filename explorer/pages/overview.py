"""Overview: how much data each area holds and how fresh each miner's last run is."""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from db.queries import overview
from explorer.common import empty_state, for_display, query, schema_missing

FRESHNESS = {
    "kind": "what ran",
    "last_success_at": "last success (UTC)",
    "last_failure_at": "last failure (UTC)",
    "last_started_at": "last start (UTC)",
    "last_error": "error of the last failure",
}
JOBS = {
    "job": "job",
    "outcome": "last outcome",
    "detail": "detail",
    "run_ids": "runs",
    "started_at": "fired (UTC)",
    "duration_seconds": "seconds",
    "next_run": "next run (UTC)",
}
RUNS = {"started_at": "started (UTC)", "finished_at": "finished (UTC)", "duration_s": "seconds"}


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells shown literally: st.table reads cells as Markdown, and an error message is not Markdown."""
    return frame.map(lambda v: re.sub(r"([\\`*_{}\[\]<>#|~])", r"\\\1", v) if isinstance(v, str) else v)


def age(delta: pd.Timedelta) -> str:
    """`3 d 4 h`, `25 min`: how long ago, readable at a glance."""
    seconds = int(delta.total_seconds())
    days, hours, minutes = seconds // 86400, seconds % 86400 // 3600, seconds % 3600 // 60
    return f"{days} d {hours} h" if days else (f"{hours} h {minutes} min" if hours else f"{minutes} min")


def next_runs() -> dict[str, str]:
    """Job name → its next firing, from interop.toml's [[schedule]] entries (none when it has none or is bad:
    `interop schedule list` names what is wrong)."""
    from db.config import load_toml
    from db.errors import InteropError
    from miners.schedule import load_entries, next_run

    try:
        entries = load_entries(load_toml())
    except (InteropError, ValueError, OSError):
        return {}
    return {e.name: f"{t:%Y-%m-%d %H:%M}" if (t := next_run(e)) else "never" for e in entries}


st.title("Overview")
st.caption("Counts per area, freshness of every miner, import and campaign, and the latest runs.")

try:
    counts = query(overview.area_counts)
except Exception as exc:
    if not schema_missing(exc):
        raise
    counts = None
if counts is None or "ingest_run" not in set(counts["table"]):
    empty_state("schema", "interop db upgrade")
    st.stop()

totals = counts.groupby("area", as_index=False)["rows"].sum()
columns = st.columns(max(len(totals), 1))
for column, row in zip(columns, totals.itertuples(index=False), strict=False):
    column.metric(str(row.area), f"{int(row.rows):,}", help="rows over all tables of this area")
with st.expander("Rows per table", expanded=False):
    st.table(counts.set_index(["area", "table"]), border="horizontal")

st.subheader("Freshness")
fresh = query(overview.miner_freshness)
if fresh.empty:
    empty_state(
        "miner, import or campaign runs",
        "interop survey import FILE --survey NAME",
        "interop mine github --all",
        "interop experiment run --preset quick",
    )
else:
    now = pd.Timestamp.now(tz="UTC")
    since = fresh["last_success_at"].map(lambda t: age(now - t) if pd.notna(t) else "never")
    fresh.insert(1, "since last success", since)
    # st.table wraps long errors instead of cutting columns off at the page's edge
    st.table(plain(for_display(fresh)).rename(columns=FRESHNESS), border="horizontal", hide_index=True)
    failing = fresh[
        fresh["last_failure_at"].notna()
        & (fresh["last_success_at"].isna() | (fresh["last_failure_at"] > fresh["last_success_at"]))
    ]
    for row in failing.itertuples(index=False):
        st.warning(f"`{row.kind}` failed last ({row.last_failure_at:%Y-%m-%d %H:%M} UTC): {row.last_error}")

st.subheader("Scheduled jobs")
try:
    jobs = query(overview.schedule_outcomes)
except Exception as exc:  # a database from before schedule outcomes were kept: `db upgrade` is already asked
    if not schema_missing(exc):
        raise
    jobs = pd.DataFrame(columns=list(JOBS))
upcoming = next_runs()
never = [{"job": name, "outcome": "never ran"} for name in upcoming if name not in set(jobs["job"])]
if never:
    jobs = pd.concat([jobs, pd.DataFrame(never)], ignore_index=True) if len(jobs) else pd.DataFrame(never)
if jobs.empty:
    st.caption("No scheduled job yet: add [[schedule]] entries to interop.toml and run `interop schedule run`.")
else:
    jobs = jobs.reindex(columns=[c for c in JOBS if c != "next_run"])
    jobs["run_ids"] = jobs["run_ids"].map(
        lambda ids: ", ".join(map(str, ids)) if isinstance(ids, list) and ids else None
    )
    jobs["duration_seconds"] = jobs["duration_seconds"].map(lambda s: f"{s:.1f}" if pd.notna(s) else None)
    jobs["started_at"] = pd.to_datetime(jobs["started_at"], utc=True)
    jobs["next_run"] = jobs["job"].map(upcoming)
    st.table(plain(for_display(jobs)).rename(columns=JOBS), border="horizontal", hide_index=True)
    for row in jobs[jobs["outcome"] == "failed"].itertuples(index=False):
        st.warning(f"Scheduled job `{row.job}` failed last ({row.started_at:%Y-%m-%d %H:%M} UTC): {row.detail}")

st.subheader("Recent runs")
limit = int(st.session_state.get("recent_limit", 20))
runs = query(overview.recent_runs, flt=overview.OverviewFilter(limit=limit))
if runs.empty:
    st.caption("No runs recorded yet.")
else:
    runs["duration_s"] = runs["duration_s"].map(lambda s: f"{s:.1f}" if pd.notna(s) else None)
    st.table(plain(for_display(runs)).rename(columns=RUNS), border="horizontal", hide_index=True)
    st.number_input("rows shown", min_value=5, max_value=500, step=5, value=20, key="recent_limit")
