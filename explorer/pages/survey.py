"""Survey: per-question charts with their denominator; multi-select and free-text questions, and the themes
coded in free-text answers."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from db.queries import labeling as labeling_q
from db.queries import survey as survey_q
from explorer.common import MISSING, empty_state, for_display, param, query, select_param, set_params

DENOMINATORS = {
    "answered": "respondents who answered the question",
    "respondents": "all included respondents",
}

st.title("Survey")
surveys = query(survey_q.list_surveys)
if surveys.empty:
    empty_state(
        "survey responses",
        "interop survey import ../shared/data/paper-artifact/survey/interopSurvey.xlsx --survey interop",
    )
    st.stop()

names = surveys["survey"].tolist()
chosen = param("survey") if param("survey") in names else names[0]
if len(names) > 1:
    chosen = select_param("Survey", "survey", names, all_label=names[0]) or names[0]
info = surveys.set_index("survey").loc[chosen]

a, b, c, d = st.columns(4)
a.metric("Respondents", int(info["respondents"]))
b.metric("Included", int(info["included"]))
c.metric("Excluded", int(info["excluded"]), help="by the survey's exclusion rules (consent, screening)")
d.metric("Questions", int(info["questions"]))
source = info["source_file"] if isinstance(info["source_file"], str) else MISSING
st.caption(f"Imported from `{source}`; exclusion rules: {', '.join(info['exclusion_rules']) or 'none'}")

denominator = param("denom", "answered")
denominator = denominator if denominator in DENOMINATORS else "answered"
denominator = st.radio(
    "Percentages of",
    list(DENOMINATORS),
    index=list(DENOMINATORS).index(denominator),
    format_func=lambda k: DENOMINATORS[k],
    horizontal=True,
    key="param_denom",
)
set_params(denom="" if denominator == "answered" else denominator)


def show_themes(themes: pd.DataFrame) -> None:
    """The coded themes of a free-text question per round: a bar chart of answers per theme, with its denominator
    (answers given at least one theme; an answer may carry several, so shares add up to more than 100%)."""
    for (rnd, dim), group in themes.groupby(["round", "dimension"], sort=False):
        n_coded, n_answers = int(group["n_coded"].iloc[0]), int(group["n_answers"].iloc[0])
        st.markdown(f"**Themes** ({dim.replace('_', ' ')}, round `{rnd}`)")
        st.caption(
            f"n = {n_coded} answers with at least one theme ({n_answers} answers coded). "
            "Several themes per answer: percentages add up to more than 100%."
        )
        frame = group.assign(pct=(100 * group["share"]).round(1))
        frame["label"] = frame.apply(lambda r: f"{int(r['count'])} ({r['pct']:.1f}%)", axis=1)
        bars = (
            alt.Chart(frame)
            .mark_bar()
            .encode(
                x=alt.X("pct:Q", title=f"% of {n_coded} answers with a theme", scale=alt.Scale(domain=[0, 100])),
                y=alt.Y("theme:N", sort=frame["theme"].tolist(), title=None, axis=alt.Axis(labelLimit=420)),
                tooltip=["theme:N", "count:Q", alt.Tooltip("pct:Q", format=".1f")],
            )
        )
        st.altair_chart((bars + bars.mark_text(align="left", dx=4).encode(text="label:N")), width="stretch")


questions = query(survey_q.list_questions, flt=survey_q.SurveyFilter(chosen))
kinds = {"single": "single choice", "multi": "multi-select", "text": "free text"}
labels = {r.qid: f"{r.qid} ({kinds.get(r.kind, r.kind)}): {r.text or MISSING}" for r in questions.itertuples()}
preset = [q for q in param("q").split(",") if q in labels]
picked = st.multiselect(
    "Questions (none chosen: all)", list(labels), default=preset, format_func=lambda q: labels[q], key="param_q"
)
set_params(q=",".join(picked))
groupable = [r.qid for r in questions.itertuples() if r.kind in survey_q.CHOICE_KINDS]
compare_by = param("by") if param("by") in groupable else ""
compare_by = st.selectbox(
    "Compare by (subgroups; nothing stored changes)",
    ["", *groupable],
    index=(["", *groupable]).index(compare_by),
    format_func=lambda q: "(no comparison)" if not q else labels[q],
    key="param_by",
)
set_params(by=compare_by)
shown = questions[questions["qid"].isin(picked)] if picked else questions
counts = query(survey_q.survey_counts, flt=survey_q.SurveyFilter(chosen, kinds=survey_q.CHOICE_KINDS))
pct_column = f"pct_of_{denominator}"


def compare(qid: str, order: list[str]) -> None:
    """QID's answers per group of the compare-by question: % of each group, its n beside it, and the test."""
    table = query(survey_q.survey_crosstab, flt=survey_q.SurveyFilter(chosen, qid), by_qid=compare_by)
    if table.empty:
        st.caption(f"Nobody answered both {qid} and {compare_by}.")
        return
    groups = table.drop_duplicates("by_choice")
    sizes = ", ".join(f"{g.by_choice} n = {g.column_n}" for g in groups.itertuples())
    st.caption(
        f"By {compare_by} ({sizes}; {table['n_both'].iloc[0]} answered both): % of each group. "
        f"{survey_q.crosstab_test(table).summary()}"
    )
    table = table.assign(
        label=table.apply(lambda r: f"{r['count']}/{r['column_n']} ({r['pct_of_column']:.1f}%)", axis=1)
    )
    grouped = (
        alt.Chart(table)
        .mark_bar()
        .encode(
            x=alt.X("pct_of_column:Q", title=f"% of the {compare_by} group", scale=alt.Scale(domain=[0, 100])),
            y=alt.Y("choice:N", sort=order, title=None, axis=alt.Axis(labelLimit=0)),
            yOffset=alt.YOffset("by_choice:N"),
            color=alt.Color("by_choice:N", title=compare_by, legend=alt.Legend(labelLimit=0)),
            tooltip=["choice:N", "by_choice:N", "count:Q", "column_n:Q", "row_n:Q", "pct_of_column:Q", "pct_of_row:Q"],
        )
    )
    labels_ = grouped.mark_text(align="left", dx=4).encode(text="label:N")
    st.altair_chart((grouped + labels_).properties(height=alt.Step(14)), width="stretch")
    with st.expander(f"{qid} × {compare_by} as a table"):
        st.dataframe(
            for_display(table.drop(columns="label")),
            hide_index=True,
            width="stretch",
            column_config={"choice": st.column_config.TextColumn(width="large")},
        )


for row in shown.itertuples():
    st.markdown(f"#### {row.qid} · {kinds.get(row.kind, row.kind)}")
    st.markdown(row.text or MISSING)
    if row.kind == "text":
        texts = query(survey_q.question_counts, flt=survey_q.SurveyFilter(chosen, row.qid))
        st.caption(f"{int(row.n_answered)} of {int(info['included'])} included respondents wrote an answer")
        st.dataframe(
            for_display(texts[["choice", "count"]].rename(columns={"choice": "answer"})),
            hide_index=True,
            width="stretch",
            height=min(35 * (len(texts) + 1) + 3, 300),
        )
        show_themes(query(labeling_q.theme_counts, survey=chosen, question=row.qid))
        continue
    frame = counts[counts["qid"] == row.qid].copy()
    if frame.empty:
        st.caption("No answers.")
        continue
    n_answered, n_respondents = int(frame["n_answered"].iloc[0]), int(frame["n_respondents"].iloc[0])
    base = n_answered if denominator == "answered" else n_respondents
    note = " Several choices per respondent: percentages add up to more than 100%." if row.kind == "multi" else ""
    st.caption(f"n = {base} ({n_answered} answered of {n_respondents} included respondents).{note}")
    frame["pct"] = frame[pct_column].round(1)
    frame["label"] = frame.apply(lambda r: f"{int(r['count'])} ({r['pct']:.1f}%)", axis=1)
    order = frame["choice"].tolist()
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("pct:Q", title=f"% of {DENOMINATORS[denominator]}", scale=alt.Scale(domain=[0, 100])),
            y=alt.Y("choice:N", sort=order, title=None, axis=alt.Axis(labelLimit=0)),
            tooltip=["choice:N", "count:Q", alt.Tooltip("pct:Q", format=".1f")],
        )
    )
    text = bars.mark_text(align="left", dx=4).encode(text="label:N")
    st.altair_chart((bars + text).properties(height=alt.Step(26)), width="stretch")
    if compare_by and compare_by != row.qid:
        compare(row.qid, order)

if not picked:
    with st.expander("All counts as a table"):
        st.dataframe(
            for_display(pd.DataFrame(counts)),
            hide_index=True,
            width="stretch",
            column_config={"choice": st.column_config.TextColumn(width="large")},
        )
