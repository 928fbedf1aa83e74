"""SQL console: one read-only statement at a time, time-limited, capped, downloadable as CSV or Parquet."""

from __future__ import annotations

import streamlit as st

from db.export import frame_to_bytes
from db.queries import overview
from db.readonly import (
    DEFAULT_ROW_CAP,
    DEFAULT_TIMEOUT_S,
    QueryError,
    QueryTimeout,
    ReadOnlyViolation,
    console_url,
    run_read_only,
)
from explorer.common import param, query, set_params

EXAMPLE = "SELECT kind, status, count(*) AS runs\nFROM ingest_run\nGROUP BY kind, status\nORDER BY kind"

st.title("SQL")
st.caption(
    "Read-only, one statement per run, time-limited and capped. PostgreSQL queries run only as the reader role "
    "of INTEROP_READER_DATABASE_URL (a role that can only read: `interop db create-reader`); SQLite is opened "
    "read-only. A shared link fills the box; nothing runs until you press Run. For whole tables use "
    "`interop export`."
)

try:
    url: str | None = console_url()
except QueryError as exc:  # no reader on PostgreSQL (UnsafeReader), or a reader URL that cannot be used
    url = None
    st.error(str(exc), icon=":material/lock:")

with st.sidebar.expander("Tables and columns", expanded=False):
    try:
        if url is None:
            raise QueryError("no reader connection")
        cols = query(overview.table_columns, url=url)  # what the reader can see, through the reader itself
        for table, group in cols.groupby("table", sort=True):
            st.markdown(f"**{table}**: " + ", ".join(f"`{c}`" for c in group["column"]))
    except Exception as exc:  # the schema browser is a help, never a blocker
        st.caption(f"schema unavailable: {exc}")

sql = st.text_area("Query", value=param("sql", EXAMPLE), height=160, key="sql_text")
left, middle, right = st.columns([1, 1, 2])
row_cap = left.number_input("Row cap", min_value=1, max_value=1_000_000, value=int(param("cap", str(DEFAULT_ROW_CAP))))
timeout = middle.number_input("Time limit (s)", min_value=1.0, max_value=600.0, value=DEFAULT_TIMEOUT_S, step=5.0)
run = right.button("Run", type="primary", icon=":material/play_arrow:", disabled=url is None)

# Only an explicit click runs a query: a link (`/sql?sql=…`) someone shared just fills the box.
if run and url is not None:
    set_params(sql=sql.strip(), cap=str(int(row_cap)) if int(row_cap) != DEFAULT_ROW_CAP else "")
    try:
        st.session_state["sql_result"] = run_read_only(url, sql.strip(), int(row_cap), float(timeout))
        st.session_state["sql_error"] = None
    except (ReadOnlyViolation, QueryTimeout, QueryError) as exc:
        st.session_state["sql_result"] = None
        st.session_state["sql_error"] = (type(exc).__name__, str(exc))
elif param("sql") and st.session_state.get("sql_result") is None and st.session_state.get("sql_error") is None:
    st.info("A shared query is in the box: read it, then press Run to run it.", icon=":material/info:")

error = st.session_state.get("sql_error")
result = st.session_state.get("sql_result")
if error:
    kind, message = error
    (st.warning if kind == "ReadOnlyViolation" else st.error)(message)
elif result is not None:
    if result.sql != sql.strip():
        st.info("The box has changed since this result: press Run to run what it holds.", icon=":material/info:")
    if result.truncated:
        st.warning(
            f"Truncated: showing the first {result.row_cap:,} rows; the query returns more. "
            f'Raise the row cap, or export everything with `interop export query "…" --format parquet`.',
            icon=":material/content_cut:",
        )
    st.caption(f"{result.row_count:,} rows · {result.elapsed_s:.2f} s")
    st.dataframe(result.frame, hide_index=True, width="stretch")
    if result.row_count:
        a, b, _ = st.columns([1, 1, 3])
        a.download_button(
            "Download CSV", frame_to_bytes(result.frame, "csv"), "query.csv", "text/csv", icon=":material/download:"
        )
        b.download_button(
            "Download Parquet",
            frame_to_bytes(result.frame, "parquet"),
            "query.parquet",
            "application/vnd.apache.parquet",
            icon=":material/download:",
        )
