"""Experiments: one campaign at a time (the newest live one first), outcomes by converter × node count × produced
opset, time per stage, diffs at any tolerance, runs in detail with how to re-run them."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd
import streamlit as st

from db.models.failures import DEFAULT_SIGNATURE_RULE
from db.queries import experiments as xq
from db.queries import failures as fq
from explorer.common import empty_state, param, query, select_param, set_params
from explorer.formatting import MISSING, dashed, format_duration

ATOL_CHOICES = [0.0, *(10.0**d for d in range(-12, 4))]
OUTCOME_COLORS = alt.Scale(
    domain=list(xq.OUTCOMES), range=["#4c9f70", "#e3a32b", "#d1495b", "#7b2d26", "#8d6a9f", "#4a4e69"]
)


def default_campaign(listed: pd.DataFrame) -> str:
    """The newest live campaign (the list is newest first), else the newest of any kind."""
    live = listed[listed["kind"] == "live"]
    return str((live if not live.empty else listed)["campaign"].iloc[0])


def run_label(run: dict) -> str:
    """How the run picker names a run: model · converter plug-in (exporter) · opset · outcome, then its id."""
    converter = run.get("registry_name") or run.get("converter")
    return (
        f"{run['model']} · {converter} ({run['exporter']}) · opset {run['requested_opset']} · {run['outcome']}"
        f"  #{run['run_id']}"
    )


def reproduction(detail: dict) -> tuple[str, str] | str:
    """(the `interop experiment repro` line, the equivalent campaign.toml) of a run, or why it has none."""
    from experiments.repro import ReproError, recipe

    try:
        rec = recipe(detail)
    except ReproError as exc:
        return str(exc)
    return f"interop experiment repro {rec.run_id}", rec.toml()


def opset_text(run: dict) -> str:
    """`opset 17`, or `opset 11 requested → 18 produced` when the converter did not produce what it was asked."""
    asked, got = run.get("opset"), run.get("produced_opset")
    if got is None:
        return f"opset {asked} requested (no model produced, or not recorded)"
    if got != asked:
        return f"opset {asked} requested → **{got} produced**"
    return f"opset {asked}"


st.title("Experiments")
version = query(xq.data_version)  # heavy aggregates below are reused until runs are added or removed
campaigns = query(xq.campaigns, version=version)
if campaigns.empty:
    empty_state(
        "conversion campaigns",
        "interop experiment run --preset quick",
        "interop experiment import-results ../shared/data/paper-artifact/synthetic-models/exporter_test_results",
    )
    st.stop()

names = campaigns["campaign"].tolist()
kinds = dict(zip(campaigns["campaign"], campaigns["kind"], strict=True))
wanted = param("campaign") or default_campaign(campaigns)
campaign = st.selectbox(
    "Campaign",
    names,
    index=names.index(wanted) if wanted in names else names.index(default_campaign(campaigns)),
    format_func=lambda n: f"{n} ({kinds[n]})",
    key="param_campaign",
    help="Each view covers one campaign: the newest live one first; historical imports are the study's results",
)
set_params(campaign="" if campaign == default_campaign(campaigns) else campaign)
filters = xq.RunFilter(campaign=campaign).as_dict()
scope = f"campaign `{campaign}`"
this = campaigns.set_index("campaign").loc[campaign]
cols = st.columns(4)
cols[0].metric("Runs", f"{int(this['runs']):,}")
cols[1].metric("Models", f"{int(this['models']):,}")
judged = int(this["passed"]) + int(this["mismatch"])
cols[2].metric("Compared", f"{judged / this['runs']:.1%}" if this["runs"] else MISSING, help="passed or mismatch")
cols[3].metric("Mismatch of compared", f"{int(this['mismatch']) / judged:.1%}" if judged else MISSING)
started, finished = this["created_at"], this["finished_at"]
took = format_duration((finished - started).total_seconds()) if not pd.isna(finished) else "not finished"
st.caption(
    f"{this['kind']} campaign, started {started:%Y-%m-%d %H:%M} UTC, "
    + (f"finished after {took}" if not pd.isna(finished) else took)
    + " · "
    + ", ".join(f"{k} {this[k]}" for k in ("torch", "tensorflow", "onnxruntime") if not pd.isna(this[k]))
)
with st.expander(f"All {len(campaigns)} campaigns"):
    st.dataframe(
        dashed(campaigns.drop(columns=["spec"])),
        hide_index=True,
        width="stretch",
        column_config={
            "campaign": st.column_config.TextColumn("campaign", width="large"),
            "created_at": st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm"),
            "finished_at": st.column_config.TextColumn("finished (UTC)"),
            "cpu": st.column_config.TextColumn("cpu", width="large"),
        },
    )

# --- outcomes ------------------------------------------------------------------------------------------
st.subheader("Outcomes by converter × node count × opset")
counts = query(xq.outcome_counts, version=version, filters=filters)
if counts.empty:
    st.caption(f"No runs in {scope}.")
else:
    counts["node_count"] = counts["node_count"].astype("Int64")
    counts["produced_opset"] = counts["produced_opset"].astype("Int64")
    counts["opset"] = counts["produced_opset"].map(lambda o: "none" if pd.isna(o) else str(int(o)))
    counts["variant"] = counts["converter"] + " · " + counts["exporter"]
    opsets = sorted(counts["opset"].unique().tolist(), key=lambda o: (o == "none", int(o) if o != "none" else 0))
    opset = param("opset")
    if len(opsets) > 1:
        opset = select_param("Opset (of the produced model)", "opset", opsets, all_label="(every opset)")
    shown = counts[counts["opset"] == str(opset)] if opset else counts
    moved = shown[shown["produced_opset"].notna() & (shown["produced_opset"] != shown["requested_opset"])]
    if not moved.empty:
        pairs = moved.groupby(["variant", "requested_opset", "produced_opset"])["runs"].sum()
        st.warning(
            "Opsets are those of the produced ONNX models. Some converters produced another opset than asked: "
            + "; ".join(f"{v}: {int(n):,} runs asked {a} got {g}" for (v, a, g), n in pairs.items())
        )
    if (shown["opset"] == "none").any():
        st.caption(
            '"none": runs that produced no readable ONNX model (failed at export) or whose produced opset was '
            "never recorded (historical imports, runs stored before it was)."
        )
    totals = shown.groupby("variant")["runs"].sum()
    st.caption(
        f"{int(shown['runs'].sum()):,} runs in {scope}; per variant: "
        + ", ".join(f"{v}: {int(n):,}" for v, n in totals.items())
    )
    by_nodes = shown.assign(nodes=shown["node_count"].map(lambda n: "n/a" if pd.isna(n) else str(int(n))))
    node_order = sorted(by_nodes["nodes"].unique(), key=lambda v: (v == "n/a", int(v) if v != "n/a" else 0))
    chart = (
        alt.Chart(by_nodes.drop(columns=["node_count", "produced_opset"]))
        .mark_bar()
        .encode(
            x=alt.X("nodes:O", title="nodes per model", sort=node_order),
            y=alt.Y("sum(runs):Q", stack="normalize", title="share of runs", axis=alt.Axis(format="%")),
            color=alt.Color("status:N", scale=OUTCOME_COLORS, title="outcome"),
            tooltip=["variant", "nodes", "opset", "requested_opset", "status", "sum(runs):Q"],
        )
        .properties(height=220, width=max(160, min(28 * len(node_order), 760 // max(1, by_nodes["variant"].nunique()))))
        .facet(column=alt.Column("variant:N", title=None, header=alt.Header(labelLimit=400, labelFontSize=12)))
    )
    st.altair_chart(chart)
    table = by_nodes.pivot_table(
        index=["variant", "nodes", "opset", "requested_opset"],
        columns="status",
        values="runs",
        aggfunc="sum",
        fill_value=0,
    )
    table.insert(0, "runs", table.sum(axis=1))
    with st.expander("As a table"):
        st.dataframe(table.reset_index(), hide_index=True, width="stretch")

    stages = query(xq.failure_stages, version=version, filters=filters)
    if not stages.empty:
        st.markdown("**Where runs fail** (stage and error class)")
        stage_chart = (
            alt.Chart(stages)
            .mark_bar()
            .encode(
                x=alt.X("sum(runs):Q", title="runs"),
                y=alt.Y("stage:N", title=None, sort="-x", axis=alt.Axis(labelOverlap=False)),
                color=alt.Color("status:N", scale=OUTCOME_COLORS, title="outcome"),
                row=alt.Row(
                    "converter:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left", labelLimit=200)
                ),
                tooltip=["converter", "stage", "status", "error_class", "runs"],
            )
            .properties(height=alt.Step(18), width=520)
        )
        st.altair_chart(stage_chart)
        with st.expander("Failures by error class"):
            st.dataframe(
                dashed(stages),
                hide_index=True,
                width="stretch",
                column_config={"error_class": st.column_config.TextColumn("error class", width="large")},
            )

# --- time ----------------------------------------------------------------------------------------------
times = query(xq.stage_durations, version=version, filters=filters)
if not times.empty:
    st.subheader("Time per stage")
    order = [s for s in xq.Stage if s in set(times["stage"])]
    timing = times.assign(mean=times["mean_s"].map(format_duration), longest=times["max_s"].map(format_duration))
    st.altair_chart(
        alt.Chart(timing)
        .mark_bar()
        .encode(
            x=alt.X("mean_s:Q", title="mean seconds per run"),
            y=alt.Y("stage:N", sort=[s.value for s in order], title=None),
            color=alt.Color("converter:N"),
            yOffset="converter:N",
            tooltip=["converter", "stage", "runs", "mean", "longest"],
        )
        .properties(height=alt.Step(14)),
        width="stretch",
    )
    with st.expander("As a table"):
        st.dataframe(
            timing[["converter", "stage", "runs", "mean", "longest"]],
            hide_index=True,
            width="stretch",
        )

# --- tolerance -----------------------------------------------------------------------------------------
st.subheader("Differences and tolerance")
st.caption(
    "Verdicts are recomputed from the stored comparison numbers (the atol each output needs at the chosen "
    "rtol); nothing is re-run. Stored verdicts keep the tolerance they were judged at."
)
a, b = st.columns(2)
rtol_now = float(param("rtol", "0") or 0)
rtol = a.selectbox(
    "rtol",
    xq.RTOL_GRID,
    index=xq.RTOL_GRID.index(rtol_now) if rtol_now in xq.RTOL_GRID else 0,
    format_func=lambda v: f"{v:g}",
    key="param_rtol",
)
atol_now = float(param("atol", "1e-05") or 1e-5)
atol = b.select_slider(
    "atol",
    options=ATOL_CHOICES,
    value=min(ATOL_CHOICES, key=lambda v: abs(v - atol_now)),
    format_func=lambda v: f"{v:g}",
    key="param_atol",
)
set_params(rtol="" if rtol == 0 else f"{rtol:g}", atol="" if atol == 1e-5 else f"{atol:g}")
# one scan per rtol gives every atol of the slider
buckets = query(xq.tolerance_buckets, version=version, rtol=rtol, filters=filters)
judged = xq.rejudge(buckets, atol) if not buckets.empty else buckets
if judged.empty or int(judged["compared"].sum()) == 0:
    st.caption(f"No compared runs in {scope}.")
else:
    cols = st.columns(max(len(judged), 1))
    for col, row in zip(cols, judged.itertuples(), strict=False):
        rate = f"{row.mismatch_rate:.1%}" if pd.notna(row.mismatch_rate) else MISSING
        delta = int(row.mismatch) - int(row.stored_mismatch)
        why = (
            f"{int(row.passed)} pass, {int(row.mismatch)} mismatch; {int(row.not_judgeable)} without numbers "
            f"for this rtol, {int(row.without_numbers)} without stored numbers (historical)"
        )
        col.metric(
            f"{row.converter}: mismatch at atol={atol:g}, rtol={rtol:g}",
            rate,
            delta=f"{delta:+d} runs vs stored verdicts" if row.with_numbers else None,
            delta_color="inverse" if delta else "off",
            help=why,
        )
    st.dataframe(dashed(judged), hide_index=True, width="stretch")
    order = xq.BUCKETS
    hist = buckets[buckets["bucket"].isin(order)].groupby(["converter", "bucket"], as_index=False)["runs"].sum()
    if not hist.empty:
        bars = (
            alt.Chart(hist)
            .mark_bar()
            .encode(
                x=alt.X("bucket:N", sort=order, title=f"atol needed to pass at rtol={rtol:g}"),
                y=alt.Y("runs:Q", title="compared runs"),
                color=alt.Color("converter:N"),
                xOffset="converter:N",
                tooltip=["converter", "bucket", "runs"],
            )
            .properties(height=240)
        )
        edge = xq.bucket_label(round(math.log10(atol))) if atol > 0 else "0"
        rule = alt.Chart(pd.DataFrame({"bucket": [edge]})).mark_rule(color="black", strokeDash=[4, 4])
        st.altair_chart(bars + rule.encode(x=alt.X("bucket:N", sort=order)), width="stretch")
        st.caption(
            'Dashed line: the chosen atol; runs left of it (and on it) pass. "cannot pass": shapes, dtypes '
            "or NaN/Inf positions disagree."
        )

# --- distinct failures ---------------------------------------------------------------------------------
st.subheader("Distinct failures")
signed = query(fq.signatures, filters=filters)
if signed.empty:
    st.caption(
        f"No signatures for {scope}: `interop experiment signatures --campaign {campaign}` groups its failed, "
        "crashed and mismatching runs into distinct failures."
    )
else:
    per_stage = query(fq.signature_counts, filters=filters)
    st.caption(
        f"{int(signed['runs'].sum()):,} runs without a passing verdict are **{len(signed)} distinct failures** "
        "(signature: converter × stage × error class × normalised message × operator, "
        f"rule `{DEFAULT_SIGNATURE_RULE}`)."
    )
    st.dataframe(dashed(per_stage), hide_index=True, width="stretch")
    links = query(fq.upstream, filters=filters)[["signature", "upstream"]]
    signed = signed.merge(links, on="signature", how="left")
    st.caption(
        "upstream: an issue confirmed with `interop experiment link SIGNATURE ISSUE --confirm`, else the stored "
        "issues of the converter's repositories most similar to the failure (TF-IDF, cosine), else none."
    )
    st.dataframe(
        dashed(signed[["signature", "upstream", *(c for c in fq.SIGNATURE_COLUMNS[1:] if c != "campaigns")]]),
        hide_index=True,
        width="stretch",
        column_config={
            "message": st.column_config.TextColumn("normalised message", width="large"),
            "first_seen": st.column_config.DatetimeColumn("first seen (UTC)", format="YYYY-MM-DD HH:mm"),
            "last_seen": st.column_config.DatetimeColumn("last seen (UTC)", format="YYYY-MM-DD HH:mm"),
            "repro": st.column_config.TextColumn("repro command"),
            "upstream": st.column_config.TextColumn("known upstream", width="large"),
        },
    )

# --- minimal repros of mismatches ---------------------------------------------------------------------
st.subheader("Minimal repros of mismatches")
reduced_runs = query(fq.reductions, filters=filters)
if reduced_runs.empty:
    st.caption(
        f"No mismatching run of {scope} has been reduced: `interop experiment reduce RUN_ID` finds its first "
        "diverging node (against the source framework's intermediate values), whose fault it is and a minimal model."
    )
else:
    summary = query(fq.reduction_summary, filters=filters)
    done = reduced_runs[reduced_runs["status"] == "reduced"]
    total = int(summary["mismatches"].sum())
    st.caption(
        f"**{len(done)} of {total} mismatching runs reduced** ({len(reduced_runs) - len(done)} with no diverging "
        f"node); median nodes {done['nodes_before'].median():.0f} → {done['nodes_after'].median():.0f}. "
        "cause: converter = onnxruntime agrees with the ONNX spec but not the source; runtime = onnxruntime departs "
        "from a spec that agrees with the source."
        if len(done)
        else f"{len(reduced_runs)} of {total} mismatching runs tried: no diverging node found."
    )
    st.dataframe(
        dashed(summary),
        hide_index=True,
        width="stretch",
        column_config={
            "share_reduced": st.column_config.ProgressColumn("share reduced", format="percent", max_value=1)
        },
    )
    st.caption("First diverging operators:")
    st.dataframe(dashed(query(fq.diverging_operators, filters=filters)), hide_index=True, width="stretch")
    with st.expander(f"The {len(reduced_runs)} reductions"):
        st.dataframe(
            dashed(reduced_runs),
            hide_index=True,
            width="stretch",
            column_config={
                "reduction": st.column_config.ProgressColumn("reduction", format="percent", max_value=1),
                "reduced_at": st.column_config.DatetimeColumn("reduced (UTC)", format="YYYY-MM-DD HH:mm"),
            },
        )

# --- failures against ONNX's evolution ---------------------------------------------------------------
with st.expander("Failures against ONNX's evolution"):
    from pathlib import Path

    from reporting.evolution import EvolutionError, evolution

    default_diff = Path("..") / "shared" / "data" / "paper-artifact" / "failure-analysis" / "onnx_opset_diff.json"
    diff_file = st.text_input(
        "ONNX operator changes per opset (the study's onnx_opset_diff.json)", str(default_diff), key="opset_diff"
    )
    try:
        found = query(evolution, diff_path=diff_file, campaign=campaign) if Path(diff_file).is_file() else None
    except EvolutionError as exc:
        st.error(str(exc))
        found = None
    if found is None:
        st.caption(f"No file {diff_file}: give the path of onnx_opset_diff.json.")
    else:
        changes = found["changes"].rename_axis("month").reset_index(name="operators changed")
        monthly = found["monthly_issues"]
        bars = (
            alt.Chart(changes)
            .mark_bar(color="#8d6a9f")
            .encode(
                x=alt.X("month:T", title="month"), y=alt.Y("operators changed:Q", title="ONNX operators added/updated")
            )
        )
        if monthly.empty:
            st.altair_chart(bars.properties(height=220), width="stretch")
        else:
            lines = (
                alt.Chart(monthly)
                .mark_line(point=True)
                .encode(x="month:T", y=alt.Y("issues:Q", title="issues opened"), color="repository:N")
            )
            layered = alt.layer(bars, lines).resolve_scale(y="independent").properties(height=220)
            st.altair_chart(layered, width="stretch")
        for name, trend in found["trends"].items():
            st.caption(f"**{name}**: {trend.verdict}" + (f" — {'; '.join(trend.notes)}" if trend.notes else ""))
        st.caption(f"Failing operators of {scope} against the opset that introduced or last changed them:")
        st.dataframe(dashed(found["operators"]), hide_index=True, width="stretch")

# --- operators -----------------------------------------------------------------------------------------
st.subheader("Per operator")
show_ops = st.toggle(
    "Compute per-operator rates (study H1)",
    value=param("ops") == "1",
    key="param_ops",
    help="Joins every run with its model's operator list: seconds on millions of runs",
)
set_params(ops="1" if show_ops else "")
ops = query(xq.operator_rates, version=version, filters=filters) if show_ops else None
if ops is None:
    st.caption("Switch on to see, per source operator, how many runs contain it and their failure and mismatch rates.")
elif ops.empty:
    st.caption("No operator lists stored for these runs (historical imports carry none).")
else:
    minimum = st.number_input("Only operators in at least N runs", min_value=1, value=1, key="ops_min")
    frame = ops[ops["runs"] >= minimum]
    st.dataframe(
        dashed(frame),
        hide_index=True,
        width="stretch",
        column_config={
            "failure_rate": st.column_config.ProgressColumn("failure rate", format="percent", max_value=1),
            "mismatch_rate": st.column_config.ProgressColumn("mismatch rate", format="percent", max_value=1),
        },
    )
if not reduced_runs.empty:
    with st.expander("ONNX operators vs mismatches, reduced mismatches counted for their diverging operator"):
        attributed = query(fq.operator_failures, version=version, filters=filters, diverging=True)
        st.dataframe(dashed(attributed[attributed["mismatches_any_node"] > 0]), hide_index=True, width="stretch")
        st.caption(
            "mismatches: a reduced run counts only for its first diverging operator; mismatches_any_node: for every "
            "operator of its model (`interop experiment operators --diverging`)."
        )
with st.expander("Operator sequences in mismatching vs. correct models (study H2)"):
    length = st.number_input("Sequence length (nodes)", min_value=1, max_value=4, value=2, key="seq_len")
    if st.button("Compare sequences", help="Reads every compared run's ONNX graph of the chosen campaign"):
        seqs = query(xq.sequence_comparison, filters=filters, length=int(length))
        if seqs.empty:
            st.caption("No compared runs with stored ONNX graphs.")
        else:
            st.dataframe(dashed(seqs), hide_index=True, width="stretch")

# --- one run -------------------------------------------------------------------------------------------
st.subheader("Run detail")
c1, c2 = st.columns([1, 3])
status = c1.selectbox("Outcome", ["(any)", *xq.OUTCOMES], key="run_status")
outcomes = () if status == "(any)" else (status,)
picker = query(xq.runs, filters={**filters, "outcomes": outcomes}, limit=500)
labels = {str(r["run_id"]): run_label(r) for r in picker.to_dict("records")}
current = param("run")
options = list(labels)
if current and current not in options:
    options.insert(0, current)
picked = c2.selectbox(
    "Run (model · converter · opset · outcome, newest first)",
    ["(choose one)", *options],
    index=options.index(current) + 1 if current else 0,
    format_func=lambda v: labels.get(v, f"run #{v}") if v != "(choose one)" else v,
    key="param_run",
)
set_params(run="" if picked == "(choose one)" else picked)
if picked != "(choose one)":
    detail = query(xq.run_detail, run_id=int(picked))
    if detail is None:
        st.warning(f"Run {picked} is not in this database.")
    else:
        run, model, camp = detail["run"], detail["model"], detail["campaign"]
        where = f" at stage `{run['stage']}`" if run["stage"] else ""
        plugin = f" — plug-in `{run['registry_name']}`" if run.get("registry_name") else ""
        st.markdown(
            f"**{run['converter']} · {run['exporter']}** (version {run['converter_version']}){plugin}, "
            f"{opset_text(run)}: **{run['status']}**{where}"
        )
        if run.get("produced_opset") is not None:
            st.caption(
                f"Produced model: opset {run['produced_opset']}, IR version {run.get('onnx_ir_version') or MISSING}, "
                f"producer {run.get('onnx_producer') or MISSING} {run.get('onnx_producer_version') or ''}"
                + (f" · kept at `{run['onnx_path']}`" if run.get("onnx_path") else "")
            )
        if run.get("error_class") or run.get("message"):
            st.error(f"{run.get('error_class') or ''}: {run.get('message') or ''}")
        if run.get("stderr_excerpt"):
            with st.expander("stderr excerpt"):
                st.code(run["stderr_excerpt"], language=None)
        left, right = st.columns(2)
        with left:
            st.markdown("**Model**")
            st.json(
                {
                    k: model.get(k)
                    for k in (
                        "name",
                        "source",
                        "framework",
                        "node_count",
                        "seed",
                        "params",
                        "operators",
                        "location",
                        "content_hash",
                        "resolved_params",
                    )
                },
                expanded=False,
            )
            if run.get("parameters"):
                st.markdown("**Run parameters**")
                st.json(run["parameters"], expanded=False)
        with right:
            st.markdown("**Environment** (campaign `" + str(camp.get("name")) + "`)")
            st.json(
                {
                    k: camp.get(k)
                    for k in (
                        "kind",
                        "python_version",
                        "torch_version",
                        "tensorflow_version",
                        "tf2onnx_version",
                        "onnx_version",
                        "onnxruntime_version",
                        "nnsmith_version",
                        "cpu",
                    )
                },
                expanded=False,
            )
        durations = run.get("durations") or {}
        peak = run.get("peak_rss_mb")
        st.markdown(
            "**Time per stage:** "
            + (" · ".join(f"{k} {format_duration(v)}" for k, v in durations.items()) or MISSING)
            + (f" (total {format_duration(sum(durations.values()))})" if durations else "")
            + f" · **peak memory** {f'{peak:,.0f} MB' if peak is not None else MISSING}"
        )
        if not detail["outputs"].empty:
            st.markdown("**Comparison numbers per input and output**")
            st.dataframe(dashed(detail["outputs"]), hide_index=True, width="stretch")
        st.markdown("**How to reproduce**")
        how = reproduction(detail)
        if isinstance(how, tuple):
            command, toml = how
            st.code(command, language="bash", wrap_lines=True)
            st.caption(
                "Re-runs exactly this run in an isolated worker and compares the outcome (nothing is written to "
                "the database). The equivalent campaign, to run with `interop experiment run repro.toml`:"
            )
            st.code(toml, language="toml")
        else:
            recorded = model.get("location") or model.get("name")
            st.caption(f"{how}. Model as recorded: `{recorded}`.")
