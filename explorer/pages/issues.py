"""Issues: filter mined issues (db.queries.issues.IssueFilter), see them over time and by code, open one."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import altair as alt
import streamlit as st

from db.models.github_mining import DEFAULT_FIX_RULE_VERSION
from db.queries import issues as issues_q
from db.queries.issues import IssueFilter, IssueRef
from explorer.common import (
    empty_state,
    for_display,
    multiselect_param,
    param,
    query,
    select_param,
    set_params,
)

PAGE_SIZE = 50
#: The list's columns, in order, with widths (px) that fit a laptop screen; the rest stay in the detail.
WIDTHS = {
    "repository": 150,
    "number": 60,
    "title": 300,
    "state": 60,
    "labels": 130,
    "fix_linked": 70,
    "created_at": 90,
    "html_url": 50,
}


def _day(name: str) -> date | None:
    try:
        return date.fromisoformat(param(name)) if param(name) else None
    except ValueError:
        return None


st.title("Issues")
options = query(issues_q.filter_options)
if not options["repositories"]:
    empty_state(
        "GitHub issues",
        'interop mine github --repo pytorch/pytorch --label "module: onnx" --state closed',
        "interop label import-sheet ../shared/data/paper-artifact/failure-analysis/FailureAnalysis.xlsx",
    )
    st.stop()

rules = options["rule_versions"]
with st.container(border=True):
    a, b, c = st.columns([3, 4, 2])
    with a:
        repositories = multiselect_param("Repositories", "repo", options["repositories"], placeholder="all")
    with b:
        labels = multiselect_param("Labels", "label", options["labels"], placeholder="any label or none")
    with c:
        mode = st.radio(
            "Issues with",
            ["any", "all"],
            index=1 if param("match") == "all" else 0,
            format_func=lambda m: f"{m} of these labels",
            key="param_match",
        )
        set_params(match="" if mode == "any" else mode)
    d, e, f, g = st.columns([2, 2, 2, 2])
    with d:
        state = select_param("State", "state", options["states"])
    with e:
        sample = select_param("Sample", "sample", options["samples"])
    with f:
        since = st.date_input("Opened on or after", value=_day("since"), key="param_since", format="YYYY-MM-DD")
    with g:
        until = st.date_input("Opened on or before", value=_day("until"), key="param_until", format="YYYY-MM-DD")
    set_params(since=since.isoformat() if since else "", until=until.isoformat() if until else "")
    h, i, j = st.columns([4, 2, 2])
    with h:
        text = st.text_input("Title or body contains", value=param("q"), key="param_q")
    set_params(q=text.strip())
    with i:
        fixed = select_param("Fix-linked", "fixed", ["yes", "no"], help="by the stored verdicts of the rule version")
    with j:
        rule = select_param("Rule version", "rule", rules[1:], all_label=rules[0]) if len(rules) > 1 else ""

selected = IssueFilter(
    repositories=tuple(repositories),
    labels=tuple(labels),
    label_mode="all" if mode == "all" else "any",
    state=state or None,
    since=since or None,
    until=until or None,
    text=text,
    sample=sample or None,
    fix_linked={"yes": True, "no": False}.get(fixed),
    rule_version=rule or (rules[0] if rules else DEFAULT_FIX_RULE_VERSION),
)

summary = query(issues_q.issue_summary, f=selected)
total = int(summary["issues"].sum())
m1, m2, m3, m4 = st.columns(4)
m1.metric("Matching issues", f"{total:,}")
m2.metric("Closed", f"{int(summary['closed'].sum()):,}")
m3.metric("With a commit in the timeline", f"{int(summary['with_commit_event'].sum()):,}")
if rules:
    m4.metric(f"Fix-linked ({selected.rule_version})", f"{int(summary['fix_linked'].sum()):,}")
else:
    m4.metric("Fix-linked", "—", help="no verdicts stored yet: `interop issues relink` evaluates the rule")
by_url = query(issues_q.issue_summary, f=replace(selected, mined=False))
if not by_url.empty:
    st.caption(
        f"Not listed: {int(by_url['issues'].sum()):,} matching issue(s) known only by URL from coding sheets "
        f"({', '.join(f'{n} of {r}' for r, n in zip(by_url['repository'], by_url['issues'], strict=True))}); "
        "`interop mine github --repo OWNER/NAME` fetches their details."
    )

if len(summary) > 1:
    per_repo = summary.assign(open=summary["issues"] - summary["closed"]).melt(
        id_vars="repository", value_vars=["open", "closed"], var_name="state", value_name="n"
    )
    st.altair_chart(
        alt.Chart(per_repo)
        .mark_bar()
        .encode(
            x=alt.X("n:Q", title="matching issues"),
            y=alt.Y("repository:N", title=None, axis=alt.Axis(labelLimit=300)),
            color=alt.Color("state:N", scale=alt.Scale(domain=["open", "closed"])),
            tooltip=["repository", "state", "n"],
        )
        .properties(height=alt.Step(24), title="Matching issues per repository"),
        width="stretch",
    )

over_time = query(issues_q.issues_over_time, f=selected)
if not over_time.empty:
    chart = (
        alt.Chart(over_time)
        .mark_line(point=True)
        .encode(
            x=alt.X("month:T", title="month"),
            y=alt.Y("sum(issues):Q", title="issues"),
            color=alt.Color("repository:N"),
            strokeDash=alt.StrokeDash("what:N", title=""),
            tooltip=["month:T", "repository:N", "what:N", "sum(issues):Q"],
        )
        .properties(height=260, title="Issues opened and closed per month")
    )
    st.altair_chart(chart, width="stretch")

coded = query(issues_q.coded_over_time, f=selected, dimension="symptom")
if not coded.empty:
    coded_chart = (
        alt.Chart(coded)
        .mark_bar()
        .encode(
            x=alt.X("yearquarter(month):O", title="quarter the issue was opened"),
            y=alt.Y("sum(issues):Q", title="coded issues"),
            color=alt.Color("code:N", title="symptom (final label)", legend=alt.Legend(labelLimit=300)),
            tooltip=[alt.Tooltip("yearquarter(month):O", title="quarter"), "code:N", "sum(issues):Q"],
        )
        .properties(height=220, title="Coded failures over time (final symptom labels)")
    )
    st.altair_chart(coded_chart, width="stretch")

pages = max(1, -(-total // PAGE_SIZE))
page = min(max(int(param("page")) if param("page").isdigit() else 1, 1), pages)
rows = query(issues_q.issue_list, f=selected, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
order = "in drawn order" if selected.sample else "newest first"
st.caption(f"Page {page} of {pages} ({total:,} issues, {order})")
shown = [c for c in WIDTHS if c != "fix_linked" or rules]  # no verdicts stored: no column of dashes
st.dataframe(
    for_display(rows[shown], dates=("created_at",)),
    hide_index=True,
    width="stretch",
    column_config={
        "repository": st.column_config.TextColumn("repository", width=WIDTHS["repository"], pinned=True),
        "number": st.column_config.NumberColumn("#", format="%d", width=WIDTHS["number"], pinned=True),
        "title": st.column_config.TextColumn("title", width=WIDTHS["title"]),
        "state": st.column_config.TextColumn("state", width=WIDTHS["state"]),
        "labels": st.column_config.ListColumn("labels", width=WIDTHS["labels"]),
        "fix_linked": st.column_config.TextColumn(
            "fix-linked", width=WIDTHS["fix_linked"], help=f"verdict of rule {selected.rule_version} (— not evaluated)"
        ),
        "created_at": st.column_config.TextColumn("opened", width=WIDTHS["created_at"], help="UTC day"),
        "html_url": st.column_config.LinkColumn("link", display_text="open", width=WIDTHS["html_url"]),
    },
)
if pages > 1:
    chosen = st.number_input("Page", min_value=1, max_value=pages, value=page, key="param_page")
    set_params(page=str(chosen) if chosen != 1 else "")

st.subheader("Issue detail")
choices = [f"{r.repository}#{r.number}" for r in rows.itertuples(index=False)]
current = param("issue")
if current and current not in choices:
    choices.insert(0, current)
picked = st.selectbox(
    "Issue", ["(choose one)", *choices], index=choices.index(current) + 1 if current else 0, key="param_issue"
)
set_params(issue="" if picked == "(choose one)" else picked)
if picked != "(choose one)":
    try:
        ref = IssueRef.parse(picked)
    except ValueError as exc:
        st.warning(str(exc))
        st.stop()
    detail = query(issues_q.issue_detail, ref=ref)
    if detail is None:
        st.warning(f"{picked} is not in this database.")
        st.stop()
    issue = detail.issue
    st.markdown(f"### {issue['title'] or '(no title: known only by URL)'}")
    st.caption(
        f"{issue['repository']}#{issue['number']} · {issue['state'] or 'state unknown'}"
        f" · by {issue['author'] or '—'} · labels: {', '.join(issue['labels'] or []) or 'none'}"
        f" · samples: {', '.join(detail.samples) or 'none'}"
    )
    if issue.get("html_url"):
        st.link_button("Open on GitHub", issue["html_url"], icon=":material/open_in_new:")
    with st.expander("Body", expanded=True):
        st.text(issue["body"] or "(no body stored)")
    if not detail.fix_verdicts.empty:
        st.markdown("**Fix-link verdicts**")
        verdicts = detail.fix_verdicts.assign(
            evidence=detail.fix_verdicts["evidence"].map(
                lambda ev: "; ".join(str(e.get("why", e)) for e in ev or []) or None
            )
        )
        st.dataframe(
            for_display(verdicts),
            hide_index=True,
            width="stretch",
            column_config={"evidence": st.column_config.TextColumn("evidence", width="large")},
        )
    st.markdown("**Timeline**")
    timeline = detail.timeline
    if timeline.empty:
        st.caption("No timeline events stored (a GitHub mine fetches them).")
    else:
        source = timeline["source_repository"].fillna("") + "#" + timeline["source_number"].astype("string")
        timeline = timeline.assign(source=source.where(timeline["source_repository"].notna(), None))
        columns = ["created_at", "event", "actor", "commit_id", "source", "source_state", "source_is_pull_request"]
        st.dataframe(
            for_display(timeline[columns]),
            hide_index=True,
            width="stretch",
            column_config={
                "created_at": st.column_config.TextColumn("when (UTC)", width="small"),
                "commit_id": st.column_config.TextColumn("commit", width="medium"),
                "source": st.column_config.TextColumn("cross-referenced from", width="medium"),
                "source_is_pull_request": st.column_config.TextColumn("a PR", width="small"),
            },
        )
