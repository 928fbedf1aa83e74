"""Interop Lab explorer: `interop app` (or `streamlit run streamlit_app.py`); pages live in explorer/pages/."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # page scripts import db/ and explorer/ from this checkout
    sys.path.insert(0, str(ROOT))

from db.queries import overview  # noqa: E402
from explorer import signin  # noqa: E402
from explorer.common import masked_url, query  # noqa: E402

PAGES = [
    ("overview", "Overview", ":material/dashboard:"),
    ("survey", "Survey", ":material/ballot:"),
    ("issues", "Issues", ":material/bug_report:"),
    ("labeling", "Labeling", ":material/label:"),
    ("experiments", "Experiments", ":material/science:"),
    ("ecosystem", "Ecosystem", ":material/hub:"),
    ("sql", "SQL", ":material/terminal:"),
]

st.set_page_config(page_title="Interop Lab", page_icon=":material/hub:", layout="wide")
pages = [
    st.Page(f"explorer/pages/{name}.py", title=title, icon=icon, url_path=name)
    for name, title, icon in PAGES[1:]
    if (ROOT / "explorer" / "pages" / f"{name}.py").exists()
]
# A default page is served at `/` only (its url_path just names it), so `/overview` is a second, hidden page
# running the same script: a link to either opens the Overview instead of a "Page not found" notice.
name, title, icon = PAGES[0]
home = st.Page(f"explorer/pages/{name}.py", title=title, icon=icon, url_path="home", default=True)
alias = st.Page(f"explorer/pages/{name}.py", title=title, icon=icon, url_path=name, visibility="hidden")
# Served beyond localhost, nothing but the sign-in shows (no page list, no page, no query) until someone signs
# in; the page asked for stays in the URL, so signing in lands on it.
navigation = st.navigation([home, *pages, alias], position="hidden" if signin.waiting() else "sidebar")
signin.gate()
with st.sidebar:
    st.caption(f"Database: `{masked_url()}`")
    if st.button("Refresh data", icon=":material/refresh:", help="Forget cached query results (kept 60 s)"):
        st.cache_data.clear()
try:
    schema = query(overview.schema_state)
except Exception as exc:  # unreachable server, bad URL, unreadable file: say so instead of a traceback
    from db.errors import first_line
    from db.masking import mask_text

    st.error(mask_text(f"Cannot read the database `{masked_url()}`: {first_line(exc)}"))
    st.stop()
if schema["current"] is None:
    st.warning("This database has no schema yet: run `interop db upgrade` (then the commands each page names).")
elif schema["current"] != schema["head"]:
    st.warning(
        f"The database is at schema revision `{schema['current']}`, this code expects `{schema['head']}`: "
        "run `interop db upgrade`."
    )
navigation.run()
