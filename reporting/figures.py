"""The report's charts: Altair specs rendered to PNG and SVG by vl-convert (no browser), from the report's tables.

Each function takes a table `build_report` made and returns an Altair chart, or None when the table has nothing to
draw; `save` writes NAME.png and NAME.svg. Denominators are in the titles and labels, as in the tables.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from db.outcomes import OUTCOMES

if TYPE_CHECKING:
    import altair as alt

#: pixels per PNG unit: sharp on high-density screens and in print
PNG_SCALE = 2
WIDTH = 560
#: title lines wrap at this many characters (question texts are long; nothing is cut)
TITLE_WRAP = 80
OUTCOME_COLOURS = {
    "passed": "#4c9a2a",
    "mismatch": "#e0a100",
    "failed": "#c0392b",
    "crash": "#7b241c",
    "timeout": "#6c3483",
    "oom": "#34495e",
}


def _title(text: str, subtitle: str | None = None) -> dict[str, object]:
    title: dict[str, object] = {"text": textwrap.wrap(text, TITLE_WRAP) or [""], "anchor": "start"}
    if subtitle:
        title["subtitle"] = textwrap.wrap(subtitle, TITLE_WRAP + 20)
    return title


def synthetic_outcomes(table: pd.DataFrame) -> alt.Chart | None:
    """Models per outcome by node count, one panel per converter (the synthetic_outcomes table)."""
    import altair as alt

    outcomes = [o for o in OUTCOMES if o in table.columns]
    if table.empty or not outcomes:
        return None
    long = table[["converter", "node_count", *outcomes]].melt(
        id_vars=["converter", "node_count"], var_name="outcome", value_name="models"
    )
    long = long[long["models"] > 0]
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X("node_count:O", title="nodes per model"),
            y=alt.Y("models:Q", title="models", stack="zero"),
            color=alt.Color(
                "outcome:N",
                sort=outcomes,
                scale=alt.Scale(domain=outcomes, range=[OUTCOME_COLOURS[o] for o in outcomes]),
            ),
            order=alt.Order("outcome_order:Q"),
            tooltip=["converter:N", "node_count:O", "outcome:N", "models:Q"],
        )
        .transform_calculate(outcome_order=f"indexof({outcomes!r}, datum.outcome)")
        .properties(width=WIDTH // 2, height=260)
        .facet(column=alt.Column("converter:N", title=None))
        .properties(title=_title("Synthetic models: outcome by node count per converter", "stored verdicts"))
    )


def symptom_cause_heatmap(crosstab: pd.DataFrame, title: str) -> alt.Chart | None:
    """Coded issues per symptom × cause (a failures_symptom_x_cause table, margins dropped)."""
    import altair as alt

    if crosstab.empty:
        return None
    index = crosstab.columns[0]
    body = crosstab[crosstab[index] != "total"].drop(columns=["total"], errors="ignore")
    long = body.melt(id_vars=[index], var_name="cause", value_name="issues").rename(columns={index: "symptom"})
    total = int(long["issues"].sum())
    base = alt.Chart(long).encode(
        x=alt.X("cause:N", title="cause", axis=alt.Axis(labelAngle=-35, labelLimit=0)),
        y=alt.Y("symptom:N", title="symptom", axis=alt.Axis(labelLimit=0)),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("issues:Q", scale=alt.Scale(scheme="blues")), tooltip=["symptom:N", "cause:N", "issues:Q"]
    )
    text = base.mark_text(fontSize=11).encode(
        text=alt.condition(alt.datum.issues > 0, "issues:Q", alt.value("")),
        color=alt.condition(alt.datum.issues > long["issues"].max() / 2, alt.value("white"), alt.value("black")),
    )
    return (cells + text).properties(title=_title(title, f"coded issues, n = {total}"))


def survey_bars(counts: pd.DataFrame, qid: str, text: str, kind: str) -> alt.Chart | None:
    """Counts per choice of one question as % of the respondents who answered it, each bar labelled count (%)."""
    import altair as alt

    frame = counts[counts["choice"] != "(free-text answers)"].copy()
    if frame.empty:
        return None
    answered, respondents = int(frame["n_answered"].iloc[0]), int(frame["n_respondents"].iloc[0])
    frame["label"] = [f"{int(n)} ({p:.1f}%)" for n, p in zip(frame["count"], frame["pct_of_answered"], strict=True)]
    several = "; several choices per respondent" if kind == "multi" else ""
    bars = (
        alt.Chart(frame)
        .mark_bar(color="#4c78a8")
        .encode(
            x=alt.X("pct_of_answered:Q", title=f"% of the {answered} who answered", scale=alt.Scale(domain=[0, 100])),
            y=alt.Y("choice:N", sort=list(frame["choice"]), title=None, axis=alt.Axis(labelLimit=0)),
            tooltip=["choice:N", "count:Q", "pct_of_answered:Q"],
        )
    )
    labels = bars.mark_text(align="left", dx=4).encode(text="label:N")
    subtitle = f"n = {answered} answered of {respondents} respondents{several}"
    return (bars + labels).properties(width=WIDTH // 2 + 80, title=_title(f"{qid}: {text}", subtitle))


def failure_trend(series: pd.DataFrame, title: str) -> alt.Chart | None:
    """Issues opened per month against ONNX operator changes per month (only when there is a series)."""
    import altair as alt

    if series.empty or not {"month", "issues", "changes"} <= set(series.columns):
        return None
    long = series.melt(id_vars=["month"], value_vars=["issues", "changes"], var_name="series", value_name="count")
    long["month"] = long["month"].astype(str)
    return (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(x=alt.X("month:T", title="month"), y=alt.Y("count:Q"), color="series:N")
        .properties(width=WIDTH, height=240, title=_title(title))
    )


def save(chart: alt.TopLevelMixin, out_dir: Path, name: str) -> tuple[Path, Path]:
    """NAME.png and NAME.svg in OUT_DIR, rendered without a browser (vl-convert)."""
    import vl_convert as vlc

    spec = chart.to_json()
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    png.write_bytes(vlc.vegalite_to_png(spec, scale=PNG_SCALE))
    svg.write_text(vlc.vegalite_to_svg(spec), encoding="utf-8")
    return png, svg
