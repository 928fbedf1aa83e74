"""Ecosystem: the latest snapshot of every framework, converter, runtime and compiler repository, and their
stars over snapshots (`interop mine repos`)."""

from __future__ import annotations

import altair as alt
import streamlit as st

from db.queries import ecosystem
from explorer.common import empty_state, for_display, multiselect_param, param, query, set_params

SHOWN = {
    "full_name": "repository",
    "role": "role",
    "stars": "stars",
    "forks": "forks",
    "watchers": "watchers",
    "open_issues": "open issues",
    "open_prs": "open PRs",
    "onnx": "names ONNX",
    "license": "license",
    "language": "language",
    "latest_release": "latest release",
    "latest_release_at": "released (UTC)",
    "topics": "topics",
    "taken_at": "snapshot (UTC)",
    "snapshots": "snapshots",
}

st.title("Ecosystem")
st.caption(
    "Frameworks, converters, runtimes and compilers around ONNX: the newest snapshot of each repository "
    "(ONNX named in its topics, description or labels) and its stars over every snapshot taken."
)

onnx_only = st.toggle("Only repositories naming ONNX", value=param("onnx") == "1", key="param_onnx")
set_params(onnx="1" if onnx_only else None)
latest = query(ecosystem.latest_snapshots, onnx_only=onnx_only)
if latest.empty:
    empty_state("repository snapshots" + (" naming ONNX" if onnx_only else ""), "interop mine repos")
    st.stop()

found = latest[latest["found"].astype(bool)]
a, b, c = st.columns(3)
a.metric("Repositories", f"{len(found):,}", help="found on GitHub at their latest snapshot")
b.metric("Naming ONNX", f"{int(found['onnx'].astype(bool).sum()):,}")
c.metric("Latest snapshot", f"{latest['taken_at'].max():%Y-%m-%d}")
missing = latest.loc[~latest["found"].astype(bool), "full_name"]
if len(missing):
    st.warning("Not found on GitHub at their latest snapshot: " + ", ".join(missing))

shown = found.assign(topics=found["topics"].map(lambda t: ", ".join(t or [])))[list(SHOWN)]
st.dataframe(
    for_display(shown).rename(columns=SHOWN),
    hide_index=True,
    width="stretch",
    column_config={"stars": st.column_config.NumberColumn(format="%d")},
)

st.subheader("Stars over snapshots")
names = list(found["full_name"])
picked = multiselect_param("Repositories", "repo", names, placeholder="all")
points = query(ecosystem.history, repos=tuple(picked or names))
if points["snapshot_date"].nunique() < 2 and points.groupby("full_name").size().max() < 2:
    st.caption("One snapshot so far: run `interop mine repos` again (e.g. from a [[schedule]] entry) to see growth.")
chart = (
    alt.Chart(points)
    .mark_line(point=True)
    .encode(
        x=alt.X("taken_at:T", title="snapshot"),
        y=alt.Y("stars:Q", title="stars"),
        color=alt.Color("full_name:N", title="repository"),
        tooltip=["full_name:N", "taken_at:T", "stars:Q", "forks:Q", "open_issues:Q"],
    )
    .properties(height=320)
)
st.altair_chart(chart, width="stretch")
