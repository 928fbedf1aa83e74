"""Issues, the coding workbench: filter issues (db.queries.issues.IssueFilter) by their fields and by round, coder,
code and agreement; see them over time and by code; open one with its discussion and every coder's codes."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Literal

import altair as alt
import pandas as pd
import streamlit as st

from db.models.github_mining import DEFAULT_FIX_RULE_VERSION
from db.queries import issues as issues_q
from db.queries.issues import AGREEMENT_STATES, IssueFilter, IssueRef
from db.queries.labeling import ls_task_url
from explorer.common import (
    MISSING,
    empty_state,
    for_display,
    multiselect_param,
    param,
    query,
    select_param,
    set_params,
)
from explorer.formatting import readable_markdown

PAGE_SIZE = 50
#: The list's columns, in order, with widths (px) that fit a laptop screen; the rest stay in the detail.
WIDTHS = {
    "repository": 150,
    "number": 60,
    "title": 300,
    "state": 60,
    "agreement": 100,
    "labels": 130,
    "fix_linked": 70,
    "created_at": 90,
    "html_url": 50,
}


#: Width (px) of each codebook dimension's column in the list.
CODE_WIDTH = 140
#: What the list shows as the title of an issue known only by its URL (from a coding sheet).
URL_ONLY_TITLE = "(known only by URL: not mined yet)"
DETAILS = {"mined": True, "url-only": False}


def _label_studio_url() -> str:
    from db.config import get_settings

    return get_settings().label_studio_url


def _table(frame: pd.DataFrame, **columns: tuple[str, Literal["small", "medium", "large"]]) -> None:
    """One of the issue detail's tables, whole width, with text columns renamed and sized: name=(header, width)."""
    config = {name: st.column_config.TextColumn(header, width=width) for name, (header, width) in columns.items()}
    st.dataframe(for_display(frame), hide_index=True, width="stretch", column_config=config)


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
    details = select_param(
        "Details",
        "mined",
        list(DETAILS),
        all_label="all issues",
        format_func=lambda v: {"mined": "mined from GitHub", "url-only": "known only by URL (coding sheets)"}.get(v, v),
        help="Issues imported from coding sheets are known by their URL until `interop mine github` fetches them.",
    )
coding = query(issues_q.coding_options)
rounds: list[str] = []
coders: list[str] = []
codes: list[str] = []
agreement = ""
if coding["rounds"]:
    with st.container(border=True):
        k, l_, m, n = st.columns([2, 2, 2, 4])
        with k:
            rounds = multiselect_param("Rounds", "round", coding["rounds"], placeholder="all rounds")
        with l_:
            coders = multiselect_param("Coded by", "coder", coding["coders"], placeholder="anyone")
        with m:
            agreement = select_param(
                "Agreement",
                "agreement",
                list(AGREEMENT_STATES),
                help="agreed: coders gave the same codes (or one coded); disagreed: a dimension where they differ "
                "without a final code; adjudicated: every difference decided; uncoded: no codes yet",
            )
        with n:
            pairs = [f"{d}={c}" for d in coding["dimensions"] for c in coding["codes"].get(d, [])]
            codes = multiselect_param(
                "Codes (dimension = code)",
                "code",
                pairs,
                placeholder="any codes",
                format_func=lambda p: p.replace("=", " = ", 1),
                help="The final code, or a coder's code where there is no final code; several must all hold.",
            )

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
    mined=DETAILS.get(details),
    rounds=tuple(rounds),
    coders=tuple(coders),
    codes=tuple(codes),
    agreement=agreement or None,
)

summary = query(issues_q.issue_summary, f=selected)
total = int(summary["issues"].sum())
by_url = query(issues_q.issue_summary, f=replace(selected, mined=False)) if selected.mined is not False else summary
unmined = int(by_url["issues"].sum())
mined_total = total - unmined if selected.mined is None else (0 if selected.mined is False else total)
m1, m2, m3, m4 = st.columns(4)
m1.metric("Matching issues", f"{total:,}")
closed = int(summary["closed"].sum())
if unmined:
    m2.metric(
        "Closed",
        f"{closed:,} of {mined_total:,}" if mined_total else "unknown",
        help=f"state unknown for {unmined:,} issue(s) known only by URL (`interop mine github` fetches it)",
    )
else:
    m2.metric("Closed", f"{closed:,}")
m3.metric("With a commit in the timeline", f"{int(summary['with_commit_event'].sum()):,}")
if rules:
    m4.metric(f"Fix-linked ({selected.rule_version})", f"{int(summary['fix_linked'].sum()):,}")
else:
    m4.metric("Fix-linked", "—", help="no verdicts stored yet: `interop issues relink` evaluates the rule")
if unmined:
    st.caption(
        f"{unmined:,} matching issue(s) are known only by URL from coding sheets "
        f"({', '.join(f'{n} of {r}' for r, n in zip(by_url['repository'], by_url['issues'], strict=True))}): "
        "their title, state, dates and discussion are unknown until "
        "`interop mine github --repo OWNER/NAME` fetches them."
    )

if len(summary) > 1:
    unknown = by_url.set_index("repository")["issues"].reindex(summary["repository"]).fillna(0).astype(int)
    per_repo = summary.assign(
        unknown=unknown.to_numpy(), open=summary["issues"] - summary["closed"] - unknown.to_numpy()
    ).melt(id_vars="repository", value_vars=["open", "closed", "unknown"], var_name="state", value_name="n")
    st.altair_chart(
        alt.Chart(per_repo)
        .mark_bar()
        .encode(
            x=alt.X("n:Q", title="matching issues"),
            y=alt.Y("repository:N", title=None, axis=alt.Axis(labelLimit=300)),
            color=alt.Color(
                "state:N", scale=alt.Scale(domain=["open", "closed", "unknown"]), title="state (unknown: not mined)"
            ),
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
    if unmined:
        st.caption(f"Not in this chart: {unmined:,} issue(s) known only by URL (no dates yet).")
elif total:
    st.info(
        f"No chart of issues opened and closed per month: none of the {total:,} matching issue(s) has an opening "
        f"date{f' ({unmined:,} known only by URL)' if unmined else ''}. "
        "`interop mine github --repo OWNER/NAME` fetches them.",
        icon=":material/info:",
    )

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
elif total and coding["rounds"]:
    why = (
        f"{unmined:,} of the matching issues are known only by URL and have no opening date"
        if unmined
        else "no matching issue has a final symptom code and an opening date"
    )
    st.info(
        f"No chart of coded failures over time (final symptom codes per quarter opened): {why}.", icon=":material/info:"
    )

pages = max(1, -(-total // PAGE_SIZE))
page = min(max(int(param("page")) if param("page").isdigit() else 1, 1), pages)
rows = query(issues_q.issue_list, f=selected, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
order = "in drawn order" if selected.sample else "newest first"
st.caption(f"Page {page} of {pages} ({total:,} issues, {order})")
refs = [f"{r.repository}#{r.number}" for r in rows.itertuples(index=False)]
dimensions: list[str] = []
if coding["rounds"]:
    codes_of = query(issues_q.issue_coding_columns, f=selected, issues=refs)
    dimensions = [c for c in codes_of.columns if c not in ("repository", "number", "agreement")]
    rows = rows.merge(codes_of, on=["repository", "number"], how="left")
    st.caption(
        "Code columns: the final code, else the coders' codes (`A | B` where they differ)"
        + (f", in round(s) {', '.join(rounds)}" if rounds else "")
        + "."
    )
rows["title"] = rows["title"].where(rows["mined"] | rows["title"].notna(), URL_ONLY_TITLE)
shown = [c for c in WIDTHS if (c != "fix_linked" or rules) and (c != "agreement" or coding["rounds"])]
anchor = shown.index("agreement" if "agreement" in shown else "state") + 1
shown[anchor:anchor] = dimensions
st.dataframe(
    for_display(rows[shown], dates=("created_at",)),
    hide_index=True,
    width="stretch",
    column_config={
        "repository": st.column_config.TextColumn("repository", width=WIDTHS["repository"], pinned=True),
        "number": st.column_config.NumberColumn("#", format="%d", width=WIDTHS["number"], pinned=True),
        "title": st.column_config.TextColumn("title", width=WIDTHS["title"]),
        "state": st.column_config.TextColumn("state", width=WIDTHS["state"], help="— not mined yet"),
        "agreement": st.column_config.TextColumn("agreement", width=WIDTHS["agreement"]),
        **{d: st.column_config.TextColumn(d, width=CODE_WIDTH) for d in dimensions},
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
    mined = bool(issue.get("hydrated"))
    st.markdown(f"### {issue['title'] or URL_ONLY_TITLE}")
    st.caption(
        f"{issue['repository']}#{issue['number']} · {issue['state'] or 'state unknown'}"
        f" · by {issue['author'] or 'unknown author'} · labels: {', '.join(issue['labels'] or []) or 'none'}"
        f" · samples: {', '.join(detail.samples) or 'none'}"
    )
    if not mined:
        what = "state, body and discussion" if issue["title"] else "title, state, body and discussion"
        st.info(
            f"{picked} is known only by its URL, from a coding sheet"
            + (" (the title is the sheet's)" if issue["title"] else "")
            + f": its {what} come with `interop mine github --repo {issue['repository']}`. Its codes are below.",
            icon=":material/info:",
        )
    buttons = st.columns([1, 1, 3])
    if issue.get("html_url"):
        buttons[0].link_button("Open on GitHub", issue["html_url"], icon=":material/open_in_new:")
    tasks = detail.ls_tasks
    if not tasks.empty:
        base = _label_studio_url()
        first = tasks.iloc[0]
        buttons[1].link_button(
            "Open in Label Studio",
            ls_task_url(base, first["ls_project_id"], first["ls_task_id"]),
            icon=":material/edit_note:",
        )
        links = []
        for t in tasks.itertuples(index=False):
            whose = f"{t.coder}'s " if isinstance(t.coder, str) else ""
            url = ls_task_url(base, t.ls_project_id, t.ls_task_id)
            links.append(f"[round `{t.round}`, {whose}{t.purpose} project, task {t.ls_task_id}]({url})")
        st.markdown("**Label Studio:** " + " · ".join(links))
    with st.expander("Body", expanded=True):
        if issue["body"]:
            st.markdown(readable_markdown(issue["body"]))
        else:
            st.caption("(no body stored" + (": known only by URL)" if not mined else ")"))

    st.markdown("#### Codes")
    codes = detail.codes
    if codes.empty:
        st.caption("Not coded in any round yet.")
    for rnd, part in codes.groupby("round", sort=False):
        coders = [c for c in part.columns if c not in ("round", "dimension", "agree", "final", "decided_by", "note")]
        st.markdown(
            f"**Round `{rnd}`** · coders: {', '.join(coders) or 'none (final codes only)'}"
            f" · final codes: {part['final'].notna().sum()} of {len(part)} dimension(s)"
        )
        table = part.drop(columns="round")
        if not coders:
            table = table.drop(columns="agree")
        _table(table, agree=("coders agree", "small"), decided_by=("decided by", "medium"), note=("note", "large"))
    for bad in detail.invalid_codings.itertuples(index=False):
        st.caption(
            f"Not counted: {bad.coder}'s coding in round `{bad.round}` broke the codebook "
            f"({'; '.join(bad.problems or []) or 'no reason stored'})."
        )
    suggestions = detail.suggestions
    if not suggestions.empty:
        st.markdown("**Model suggestions** (`interop label suggest`: never codes, never counted in agreement)")
        _table(suggestions, model_version=("model version", "medium"), matches_final=("matches final", "small"))
    if not detail.history.empty:
        st.markdown("**Adjudication history** (oldest first)")
        _table(detail.history, note=("note", "large"))

    discussion = detail.discussion
    st.markdown(f"#### Discussion ({len(discussion)} comment{'s' if len(discussion) != 1 else ''})")
    if discussion.empty:
        counted = issue.get("comment_count")
        if not mined:
            st.caption("No comments stored: the issue is known only by URL.")
        elif counted:
            st.caption(f"No comments stored, though GitHub counted {counted}: a GitHub mine fetches them.")
        else:
            st.caption("No comments.")
    for comment in discussion.itertuples(index=False):
        with st.container(border=True):
            when = comment.created_at.strftime("%Y-%m-%d %H:%M") if pd.notna(comment.created_at) else MISSING
            edited = (
                f" · edited {comment.updated_at:%Y-%m-%d %H:%M}"
                if pd.notna(comment.updated_at)
                and pd.notna(comment.created_at)
                and comment.updated_at > comment.created_at
                else ""
            )
            deleted = " · deleted on GitHub (kept for the record)" if comment.deleted else ""
            st.markdown(f"**{comment.author or 'unknown author'}** · {when} UTC{edited}{deleted}")
            st.markdown(readable_markdown(comment.body) or "_(empty comment)_")

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
