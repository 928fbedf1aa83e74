"""Labeling: progress per coder and round, agreement with intervals and warnings, disagreements, taxonomy."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd
import streamlit as st

from db.queries import labeling as labeling_q
from db.queries.labeling import LabelFilter
from explorer.common import MISSING, empty_state, for_display, param, query, select_param
from labeling.summary import round_categories

COEFFICIENTS = {
    "percent_agreement": "percent agreement",
    "cohen_kappa": "Cohen's κ",
    "fleiss_kappa": "Fleiss' κ",
    "krippendorff_alpha": "Krippendorff's α",
    "gwet_ac1": "Gwet's AC1",
}


@st.cache_data(ttl=600, show_spinner="Computing agreement (bootstrap, 1,000 resamples)…")
def agreement_rows(ratings: pd.DataFrame, categories: dict[tuple[str, str], list[int]]) -> pd.DataFrame:
    """Agreement per dimension of one round (labeling.agreement), cached on the ratings themselves."""
    from labeling.agreement import agreement_report

    return pd.DataFrame([r.as_row() for r in agreement_report(ratings, categories)])


def fmt_ci(value: float, ci: tuple[float, float]) -> str:
    """A coefficient with its 95% interval, or MISSING when it cannot be computed."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    lo, hi = ci if isinstance(ci, tuple | list) else (float("nan"), float("nan"))
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]" if not math.isnan(lo) else f"{value:.3f}"


st.title("Labeling")
rounds = query(labeling_q.rounds)
if rounds.empty:
    empty_state(
        "coding rounds",
        "interop label codebook load ../shared/codebook/onnx-converter-failures.yaml",
        "interop label import-sheet ../shared/data/paper-artifact/failure-analysis/PilotStudy.xlsx",
        "interop label push --sample pilot --round pilot --coders alice,bob   # then: interop label pull",
    )
    st.stop()

progress = query(labeling_q.coder_progress, f=LabelFilter())
names = rounds["round"].tolist()
coded = progress[progress["items_coded"] > 0]
coders_per_round = coded.groupby("round")["coder"].nunique()
items_per_round = coded.groupby("round")["items_in_round"].max()
multi = [r for r in names if coders_per_round.get(r, 0) >= 2]
default = max(multi, key=lambda r: int(items_per_round.get(r, 0))) if multi else names[0]
chosen = param("round") if param("round") in names else default
chosen = select_param("Round", "round", names, all_label=chosen) or chosen

st.subheader("Progress per coder and round")
if progress.empty:
    st.caption("No codings yet.")
else:
    st.caption(
        "Done: items coded of those assigned to the coder in Label Studio, or, for rounds imported from sheets, "
        "of the items coded in the round."
    )
    shown_progress = progress.drop(columns=["codebook", "codebook_version"])  # the rounds' codebooks: `label rounds`
    st.dataframe(
        for_display(shown_progress),
        hide_index=True,
        width="stretch",
        column_config={
            "round": st.column_config.TextColumn("round", width=190, pinned=True),
            "coder": st.column_config.TextColumn("coder", width=90),
            "items_coded": st.column_config.NumberColumn("items coded", format="%d", width=80),
            "codes": st.column_config.NumberColumn("codes", format="%d", width=60),
            "invalid_codings": st.column_config.NumberColumn("invalid", format="%d", width=60),
            "assigned": st.column_config.TextColumn(
                "assigned", width=70, help="tasks in the coder's Label Studio project"
            ),
            "items_in_round": st.column_config.NumberColumn("items in round", format="%d", width=90),
            "share": st.column_config.ProgressColumn("done", format="percent", min_value=0, max_value=1, width=130),
            "source": st.column_config.TextColumn("coded in", width=80),
        },
    )

invalid = query(labeling_q.invalid_codings, f=LabelFilter(rounds=(chosen,)))
if not invalid.empty:
    with st.expander(f"Invalid codings in round `{chosen}`: {len(invalid)} (kept, never counted)"):
        st.dataframe(
            for_display(invalid.assign(problems=invalid["problems"].map(lambda p: "; ".join(p or [])))),
            hide_index=True,
            width="stretch",
            column_config={"problems": st.column_config.TextColumn("why rejected", width="large")},
        )

st.subheader(f"Agreement in round `{chosen}`")
ratings = query(labeling_q.ratings, f=LabelFilter(rounds=(chosen,)))
if ratings.empty or ratings["coder"].nunique() < 2:
    st.info(
        f"Round `{chosen}` has fewer than two coders: no agreement to measure. "
        "Pilot rounds (PilotStudy.xlsx, or `interop label push --overlap 1.0`) have two or more."
    )
else:
    table = agreement_rows(ratings, query(round_categories))
    measures = {
        "items": table["items"].map(str),
        "coders": table["coders"].map(str),
        **{
            label: [fmt_ci(v, c) for v, c in zip(table[k], table.get(f"{k}_ci", [None] * len(table)), strict=True)]
            for k, label in COEFFICIENTS.items()
            if k in table
        },
        "reading (Landis–Koch)": table["reading"],
        "α reading (Krippendorff)": table["krippendorff_alpha_reading"],
    }
    # one row per measure, one column per dimension: fits the page however many coefficients there are
    shown = pd.DataFrame(
        [{"measure": name, **dict(zip(table["dimension"], values, strict=True))} for name, values in measures.items()]
    )
    st.dataframe(
        for_display(shown),
        hide_index=True,
        width="stretch",
        column_config={
            "measure": st.column_config.TextColumn("", width=190, pinned=True),
            **{d: st.column_config.TextColumn(d, width=170) for d in table["dimension"]},
        },
    )
    st.caption(
        "95% intervals: seeded bootstrap over items (1,000 resamples). κ is read on the Landis & Koch (1977) "
        "scale (of Cohen's κ for two coders, Fleiss' κ for more); Krippendorff's α on its own (Krippendorff 2004): "
        "≥ 0.800 reliable, ≥ 0.667 tentative conclusions only, below that unreliable."
    )
    for row in table.itertuples():
        for warning in row.warnings:
            st.warning(f"**{row.dimension}**: {warning}")
    long = []
    for k, label in COEFFICIENTS.items():
        if k not in table or f"{k}_ci" not in table:
            continue
        for row in table.itertuples():
            lo, hi = getattr(row, f"{k}_ci")
            long.append(
                {"dimension": row.dimension, "coefficient": label, "value": getattr(row, k), "lo": lo, "hi": hi}
            )
    if long:
        frame = pd.DataFrame(long)
        base = alt.Chart(frame).encode(
            y=alt.Y("coefficient:N", title=None, axis=alt.Axis(labelOverlap=False)),
            color=alt.Color("coefficient:N", legend=None),
        )
        scale = alt.Scale(domain=[-0.2, 1])
        rule = base.mark_rule().encode(x=alt.X("lo:Q", title="value (95% CI)", scale=scale), x2="hi:Q")
        point = base.mark_point(filled=True, size=60).encode(x="value:Q", tooltip=["coefficient", "value", "lo", "hi"])
        chart = (rule + point).properties(height=alt.Step(20), width=260)
        st.altair_chart(chart.facet(facet=alt.Facet("dimension:N", title=None), columns=3))

    from labeling.agreement import confusion_matrix, disagreements

    with st.expander("Coder × coder confusion matrix", expanded=False):
        coders = sorted(ratings["coder"].unique())
        dims = ratings.drop_duplicates("dimension").sort_values("dimension_position")["dimension"].tolist()
        c1, c2, c3 = st.columns(3)
        dim = c1.selectbox("Dimension", dims, key="confusion_dim")
        coder_a = c2.selectbox("Coder (rows)", coders, index=0, key="confusion_a")
        coder_b = c3.selectbox("Coder (columns)", coders, index=min(1, len(coders) - 1), key="confusion_b")
        st.dataframe(confusion_matrix(ratings, chosen, dim, coder_a, coder_b), width="stretch")
    st.markdown("**Disagreements**")
    diff = disagreements(ratings)
    if diff.empty:
        st.caption("The coders agree on every item.")
    else:
        st.caption(f"{len(diff)} item × dimension pairs with different codes")
        st.dataframe(
            for_display(diff.drop(columns=["round", "item_id"], errors="ignore")),
            hide_index=True,
            width="stretch",
            column_config={
                "dimension": st.column_config.TextColumn("dimension", width=90, pinned=True),
                "item": st.column_config.TextColumn("item", width=190, pinned=True),
                "title": st.column_config.TextColumn("title", width=250),
            },
        )

st.subheader("Taxonomy (final labels)")
finals_at = query(labeling_q.final_label_options)
dims = finals_at["dimensions"]
if not dims:
    empty_state(
        "final labels",
        "interop label import-sheet ../shared/data/paper-artifact/failure-analysis/FailureAnalysis.xlsx",
        "interop label adjudicate --round ROUND",
    )
    st.stop()
dimension = param("dim") if param("dim") in dims else ("symptom" if "symptom" in dims else dims[0])
dimension = select_param("Dimension", "dim", dims, all_label=dimension) or dimension
dist = query(labeling_q.taxonomy_distribution, f=LabelFilter(), dimension=dimension)
if not dist.empty:
    totals = dist.groupby("repository", dropna=False)["count"].sum()
    st.caption(
        "The newest final label of each item; per converter repository, share of its coded issues; n = "
        + ", ".join(f"{repo if isinstance(repo, str) else MISSING}: {int(n)}" for repo, n in totals.items())
    )
    chart = (
        alt.Chart(dist.fillna({"repository": "(not an issue)"}))
        .mark_bar()
        .encode(
            x=alt.X("share:Q", axis=alt.Axis(format="%"), title=f"share of coded issues ({dimension})"),
            y=alt.Y("label:N", title=None, sort="-x", axis=alt.Axis(labelLimit=300)),
            color=alt.Color("repository:N", title="converter"),
            yOffset="repository:N",
            tooltip=["repository", "label", "count", alt.Tooltip("share:Q", format=".1%")],
        )
        .properties(height=alt.Step(14))
    )
    st.altair_chart(chart, width="stretch")

repos = finals_at["repositories"]
a, b, c = st.columns(3)
rows_dim = a.selectbox("Rows", dims, index=dims.index("symptom") if "symptom" in dims else 0, key="xt_rows")
cols_dim = b.selectbox(
    "Columns", dims, index=dims.index("cause") if "cause" in dims else min(1, len(dims) - 1), key="xt_cols"
)
repo = c.selectbox("Converter", ["(both)", *repos], key="xt_repo")
xt_filter = LabelFilter(repositories=() if repo == "(both)" else (repo,))
xt = query(labeling_q.crosstab, f=xt_filter, rows=rows_dim, columns=cols_dim)
if xt.empty:
    st.caption("No items carry both dimensions.")
else:
    cells = xt.stack().rename("items").reset_index()
    cells.columns = ["row", "column", "items"]
    heat = (
        alt.Chart(cells)
        .mark_rect()
        .encode(
            x=alt.X("column:N", title=cols_dim, axis=alt.Axis(labelAngle=-35, labelLimit=200, labelOverlap=False)),
            y=alt.Y("row:N", title=rows_dim, axis=alt.Axis(labelLimit=200, labelOverlap=False)),
            color=alt.Color("items:Q", scale=alt.Scale(scheme="blues")),
            tooltip=["row", "column", "items"],
        )
    )
    labels = heat.mark_text(baseline="middle").encode(text="items:Q", color=alt.value("black"))
    st.altair_chart(
        (heat + labels).properties(title=f"{rows_dim} × {cols_dim} (items)", height=alt.Step(30)), width="stretch"
    )

st.subheader(f"Decisions in round `{chosen}`")
decided = query(labeling_q.final_labels, f=LabelFilter(rounds=(chosen,)))
if decided.empty:
    st.caption(f"No final labels in round `{chosen}` yet: `interop label adjudicate --round {chosen}`.")
else:
    from labeling.finals import evidence_text

    st.caption("Who or what decided each final label, the reviewer's note, and the codings weighed.")

    def coded(code: pd.Series, label: pd.Series) -> pd.Series:
        """`6 Incorrect Assignment` (the code and its label in one cell), None when there is none."""
        return pd.Series([f"{c:.0f} {lb}" if pd.notna(c) else None for c, lb in zip(code, label, strict=True)])

    wide = {
        "item": st.column_config.TextColumn("item", width=190, pinned=True),
        "dimension": st.column_config.TextColumn("dimension", width=90),
        "action": st.column_config.TextColumn("action", width=80),
        "previous": st.column_config.TextColumn("from", width=150),
        "previous_decided_by": st.column_config.TextColumn("decided by before", width=130),
        "code": st.column_config.TextColumn("code", width=150),
        "decided_by": st.column_config.TextColumn("decided by", width=130),
        "note": st.column_config.TextColumn("note", width=110),
        "evidence": st.column_config.TextColumn("evidence", width=160),
        "decided_at": st.column_config.TextColumn("at (UTC)", width=120),
    }
    shown_decisions = pd.DataFrame(
        {
            "item": decided["item"],
            "dimension": decided["dimension"],
            "code": coded(decided["code"], decided["label"]),
            "decided_by": decided["decided_by"],
            "note": decided["note"],
            "evidence": decided["detail"].map(evidence_text).replace("", None),
            "decided_at": decided["decided_at"],
        }
    )
    st.dataframe(for_display(shown_decisions), hide_index=True, width="stretch", column_config=wide)
    history = query(labeling_q.adjudication_history, f=LabelFilter(rounds=(chosen,)))
    later = int((history["action"] != "new").sum())
    with st.expander(f"History: {len(history)} decisions, {later} of them changes or withdrawals"):
        shown_history = pd.DataFrame(
            {
                "item": history["item"],
                "dimension": history["dimension"],
                "action": history["action"],
                "previous": coded(history["previous_code"], history["previous_label"]),
                "previous_decided_by": history["previous_decided_by"],
                "code": coded(history["code"], history["label"]),
                "decided_by": history["decided_by"],
                "note": history["note"],
                "evidence": history["detail"].map(evidence_text).replace("", None),
                "decided_at": history["decided_at"],
            }
        )
        st.dataframe(for_display(shown_history), hide_index=True, width="stretch", column_config=wide)
