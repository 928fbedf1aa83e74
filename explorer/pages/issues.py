"""Issues: filter mined issues (repository, labels, state, sample, text), see them over time, open one."""

from __future__ import annotations

import altair as alt
import streamlit as st

from db.queries import issue_browser
from explorer.common import empty_state, multiselect_param, param, query, select_param, set_params

PAGE_SIZE = 50

st.title("Issues")
options = query(issue_browser.filter_options)
if not options["repositories"]:
    empty_state(
        "GitHub issues",
        'interop mine github --repo pytorch/pytorch --label "module: onnx" --state closed',
        "interop label import-sheet ../shared/data/paper-artifact/failure-analysis/FailureAnalysis.xlsx",
    )
    st.stop()

with st.container(border=True):
    a, b, c, d = st.columns([2, 3, 1, 2])
    with a:
        repository = select_param("Repository", "repo", options["repositories"])
    with b:
        labels = multiselect_param("Labels (any of)", "label", options["labels"])
    with c:
        state = select_param("State", "state", options["states"])
    with d:
        sample = select_param("Sample", "sample", options["samples"])
    e, f, g = st.columns([4, 2, 2])
    with e:
        text = st.text_input("Title or body contains", value=param("q"), key="param_q")
    set_params(q=text.strip())
    rules = query(issue_browser.fix_rule_versions)
    with f:
        fixed = select_param("Fix-linked", "fixed", ["yes", "no"], help="by the stored verdicts of the rule version")
    with g:
        rule = select_param("Rule version", "rule", rules[1:], all_label=rules[0]) if len(rules) > 1 else ""
filters = {
    "repository": repository or None,
    "labels": labels,
    "state": state or None,
    "sample": sample or None,
    "text": text.strip() or None,
    "fix_linked": {"yes": True, "no": False}.get(fixed),
}
if rule:
    filters["rule_version"] = rule
rule_name = rule or (rules[0] if rules else "study-v1")

summary = query(issue_browser.state_summary, **filters)
total = int(summary["issues"].sum()) if not summary.empty else 0
m1, m2, m3, m4 = st.columns(4)
m1.metric("Matching issues", f"{total:,}")
m2.metric("Closed", f"{int(summary['closed'].sum()) if total else 0:,}")
m3.metric("With a commit in the timeline", f"{int(summary['with_commit_event'].sum()) if total else 0:,}")
if rules:
    m4.metric(f"Fix-linked ({rule_name})", f"{query(issue_browser.fix_linked_count, **filters):,}")
else:
    m4.metric("Fix-linked", "n/a", help="no verdicts stored yet: `interop issues relink` evaluates the rule")

over_time = query(issue_browser.issues_over_time, **filters)
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

coded = query(issue_browser.coded_over_time, dimension="symptom", **filters)
if not coded.empty:
    coded_chart = (
        alt.Chart(coded)
        .mark_bar()
        .encode(
            x=alt.X("yearquarter(month):T", title="quarter the issue was opened"),
            y=alt.Y("sum(issues):Q", title="coded issues"),
            color=alt.Color("code:N", title="symptom (final label)"),
            tooltip=["yearquarter(month):T", "code:N", "sum(issues):Q"],
        )
        .properties(height=220, title="Coded failures over time (final symptom labels)")
    )
    st.altair_chart(coded_chart, width="stretch")

pages = max(1, -(-total // PAGE_SIZE))
page = min(max(int(param("page", "1") or 1), 1), pages)
count, rows = query(issue_browser.issue_list, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, **filters)
st.caption(f"Page {page} of {pages} ({count:,} issues, newest first)")
st.dataframe(
    rows,
    hide_index=True,
    width="stretch",
    column_config={
        "html_url": st.column_config.LinkColumn("link", display_text="open"),
        "created_at": st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD"),
        "closed_at": st.column_config.DatetimeColumn("closed (UTC)", format="YYYY-MM-DD"),
        "hydrated": st.column_config.CheckboxColumn(
            "mined",
            help="unticked: known only by URL (e.g. from a coding sheet) until `interop mine github` fetches it",
        ),
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
if picked != "(choose one)" and "#" in picked:
    repo_name, _, number = picked.rpartition("#")
    detail = query(issue_browser.issue_detail, repository=repo_name, number=int(number))
    if detail is None:
        st.warning(f"{picked} is not in this database.")
    else:
        issue = detail["issue"]
        st.markdown(f"### {issue['title'] or '(no title: known only by URL)'}")
        st.caption(
            f"{issue['repository']}#{issue['number']} · {issue['state'] or 'unknown state'}"
            f" · by {issue['author'] or '?'} · labels: {', '.join(issue['labels'] or []) or 'none'}"
            f" · samples: {', '.join(detail['samples']) or 'none'}"
        )
        if issue.get("html_url"):
            st.link_button("Open on GitHub", issue["html_url"], icon=":material/open_in_new:")
        with st.expander("Body", expanded=True):
            st.text(issue["body"] or "(no body stored)")
        verdicts = detail.get("fix_verdicts")
        if verdicts is not None and not verdicts.empty:
            st.markdown("**Fix-link verdicts**")
            st.dataframe(verdicts, hide_index=True, width="stretch")
        st.markdown("**Timeline**")
        if detail["timeline"].empty:
            st.caption("No timeline events stored (a GitHub mine fetches them).")
        else:
            st.dataframe(detail["timeline"], hide_index=True, width="stretch")
