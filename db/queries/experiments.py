"""Read-side queries over conversion campaigns, as DataFrames for the CLI, the app and reports."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from db.columns import many_columns
from db.models.experiments import Campaign, ConversionRun, ModelUnderTest


def campaign_summary(engine: Engine, campaign: str | None = None) -> pd.DataFrame:
    """Runs per campaign × converter × exporter × status; a campaign without runs is one row with 0 runs."""
    keys = many_columns(
        col(Campaign.name), col(ConversionRun.converter), col(ConversionRun.exporter), col(ConversionRun.status)
    )
    stmt = (
        select(
            *many_columns(
                col(Campaign.name).label("campaign"),
                col(ConversionRun.converter),
                col(ConversionRun.exporter),
                col(ConversionRun.status),
                func.count(col(ConversionRun.id)).label("runs"),
            )
        )
        .select_from(Campaign)
        .outerjoin(ConversionRun, col(ConversionRun.campaign_id) == col(Campaign.id))
        .group_by(*keys)
        .order_by(*keys)
    )
    if campaign is not None:
        stmt = stmt.where(col(Campaign.name) == campaign)
    with engine.connect() as conn:
        return pd.DataFrame(
            conn.execute(stmt).mappings().all(), columns=["campaign", "converter", "exporter", "status", "runs"]
        )


def campaign_names(engine: Engine) -> list[str]:
    """Every campaign's name, oldest first: what a `--campaign` option may name."""
    with engine.connect() as conn:
        return list(conn.execute(select(col(Campaign.name)).order_by(col(Campaign.id))).scalars())


def campaigns_frame(engine: Engine) -> pd.DataFrame:
    """One row per campaign: kind, spec, when it started/finished, and how many runs and models it stored."""
    runs = (
        select(
            col(ConversionRun.campaign_id),
            func.count().label("runs"),
            func.count(func.distinct(ConversionRun.model_id)).label("models"),
        )
        .group_by(col(ConversionRun.campaign_id))
        .subquery()
    )
    stmt = (
        select(
            col(Campaign.id),
            col(Campaign.name),
            col(Campaign.kind),
            col(Campaign.spec),
            col(Campaign.created_at),
            col(Campaign.finished_at),
            func.coalesce(runs.c.runs, 0).label("runs"),
            func.coalesce(runs.c.models, 0).label("models"),
        )
        .outerjoin(runs, runs.c.campaign_id == Campaign.id)
        .order_by(col(Campaign.id))
    )
    with engine.connect() as conn:
        return pd.DataFrame(
            conn.execute(stmt).mappings().all(),
            columns=["id", "name", "kind", "spec", "created_at", "finished_at", "runs", "models"],
        )


def judged_tolerances(engine: Engine, campaign: str | None = None) -> pd.DataFrame:
    """Runs per converter × (atol, rtol) their stored passed/mismatch verdict was judged at (runs without one: none)."""
    keys = many_columns(col(ConversionRun.converter), col(ConversionRun.atol), col(ConversionRun.rtol))
    stmt = (
        select(*keys, func.count().label("runs"))
        .join(Campaign, col(Campaign.id) == col(ConversionRun.campaign_id))
        .where(col(ConversionRun.status).in_(["passed", "mismatch"]), col(ConversionRun.atol).is_not(None))
        .group_by(*keys)
        .order_by(*keys)
    )
    if campaign is not None:
        stmt = stmt.where(col(Campaign.name) == campaign)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(stmt).mappings().all(), columns=["converter", "atol", "rtol", "runs"])


def runs_frame(engine: Engine, campaign: str | None = None) -> pd.DataFrame:
    """One row per conversion run with its model's source, node count and operators; `requested_opset` is what
    the converter was asked for, `produced_opset` what the produced model has (`opset_differs` flags the two)."""
    stmt = (
        select(
            *many_columns(
                col(ConversionRun.id).label("run_id"),
                col(Campaign.name).label("campaign"),
                col(ModelUnderTest.id).label("model_id"),
                col(ModelUnderTest.source),
                col(ModelUnderTest.framework),
                col(ModelUnderTest.name).label("model"),
                col(ModelUnderTest.node_count),
                col(ModelUnderTest.operators),
                col(ConversionRun.converter),
                col(ConversionRun.converter_version),
                col(ConversionRun.exporter),
                col(ConversionRun.registry_name),
                col(ConversionRun.opset).label("requested_opset"),
                col(ConversionRun.produced_opset),
                col(ConversionRun.input_seed),
                col(ConversionRun.status),
                ConversionRun.stage,
                ConversionRun.error_class,
                ConversionRun.message,
                ConversionRun.onnx_graph,
                ConversionRun.durations,
                ConversionRun.peak_rss_mb,
            )
        )
        .join(Campaign, col(Campaign.id) == col(ConversionRun.campaign_id))
        .join(ModelUnderTest, col(ModelUnderTest.id) == col(ConversionRun.model_id))
        .order_by(col(ConversionRun.id))
    )
    if campaign is not None:
        stmt = stmt.where(col(Campaign.name) == campaign)
    with engine.connect() as conn:
        rows: list[Any] = list(conn.execute(stmt).mappings().all())
    frame = pd.DataFrame(rows, columns=list(stmt.selected_columns.keys()))
    produced = frame["produced_opset"].astype("Int64")
    # True/False where the produced model's opset is known, missing where it is not
    frame["opset_differs"] = (produced != frame["requested_opset"].astype("Int64")).astype("boolean")
    return frame


OUTCOMES = ("passed", "mismatch", "failed", "crash", "timeout", "oom")


def outcome_rates(
    engine: Engine,
    campaign: str | None = None,
    by: tuple[str, ...] = ("converter", "exporter", "node_count", "produced_opset"),
) -> pd.DataFrame:
    """Runs and the share of each outcome per group (default converter × exporter × node count × the opset the
    produced model really has), with the requested opsets that ended in each group.

    A run that produced no readable model (it failed at export, or it was imported) has no produced opset: its
    group's `produced_opset` is empty and `requested_opsets` says what was asked.
    """
    runs = runs_frame(engine, campaign)
    columns = [*by, "requested_opsets", "runs", *OUTCOMES, *(f"{o}_rate" for o in OUTCOMES)]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    keys = list(by)
    nullable = [k for k in ("node_count", "produced_opset", "requested_opset") if k in keys]
    runs = runs.assign(**{k: runs[k].fillna(-1).astype(int) for k in nullable})
    table = runs.pivot_table(index=keys, columns="status", values="run_id", aggfunc="count", fill_value=0)
    table = table.reindex(columns=list(OUTCOMES), fill_value=0)
    table.insert(0, "runs", table.sum(axis=1))
    for outcome in OUTCOMES:
        table[f"{outcome}_rate"] = table[outcome] / table["runs"]
    asked = runs.groupby(keys)["requested_opset"].agg(lambda s: ",".join(str(v) for v in sorted(set(s))))
    table.insert(0, "requested_opsets", asked)
    table = table.reset_index()
    table.columns.name = None
    for key in nullable:
        table[key] = table[key].where(table[key] >= 0).astype("Int64")
    return table[columns]


def opset_changes(engine: Engine, campaign: str | None = None) -> pd.DataFrame:
    """Runs whose produced model has another default-domain opset than the converter was asked for, per
    campaign × converter plug-in × requested × produced opset (torch 2.13's dynamo exporter: 11 → 18)."""
    keys = many_columns(
        col(Campaign.name).label("campaign"),
        func.coalesce(col(ConversionRun.registry_name), col(ConversionRun.converter)).label("converter"),
        col(ConversionRun.exporter),
        col(ConversionRun.opset).label("requested_opset"),
        col(ConversionRun.produced_opset),
    )
    stmt = (
        select(*keys, func.count().label("runs"))
        .join(Campaign, col(Campaign.id) == col(ConversionRun.campaign_id))
        .where(
            col(ConversionRun.produced_opset).is_not(None),
            col(ConversionRun.produced_opset) != col(ConversionRun.opset),
        )
        .group_by(*keys)
        .order_by(*keys)
    )
    if campaign is not None:
        stmt = stmt.where(col(Campaign.name) == campaign)
    with engine.connect() as conn:
        return pd.DataFrame(
            conn.execute(stmt).mappings().all(),
            columns=["campaign", "converter", "exporter", "requested_opset", "produced_opset", "runs"],
        )


def _operators_of(row: Any, level: str) -> set[str]:
    if level == "onnx":
        return {node[0] for node in (row.onnx_graph or [])}
    return set(row.operators or [])


def operator_rates(engine: Engine, campaign: str | None = None, level: str = "source") -> pd.DataFrame:
    """Study H1: per operator, how many runs contain it and their failure and mismatch rates.

    `level="source"` uses the model's framework operators (every run has them); `"onnx"` the ONNX node types
    (only runs whose export succeeded). A run counts once per operator it contains.
    """
    if level not in ("source", "onnx"):
        raise ValueError("level must be 'source' or 'onnx'")
    runs = runs_frame(engine, campaign)
    rows = []
    for run in runs.itertuples(index=False):
        for op in _operators_of(run, level):
            rows.append({"operator": op, "converter": run.converter, "exporter": run.exporter, "status": run.status})
    columns = ["operator", "converter", "exporter", "runs", "failures", "mismatches", "failure_rate", "mismatch_rate"]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    frame["failure"] = ~frame["status"].isin(["passed", "mismatch"])
    frame["mismatch_flag"] = frame["status"] == "mismatch"
    out = (
        frame.groupby(["operator", "converter", "exporter"])
        .agg(runs=("status", "size"), failures=("failure", "sum"), mismatches=("mismatch_flag", "sum"))
        .reset_index()
    )
    out["failure_rate"] = out["failures"] / out["runs"]
    judged = out["runs"] - out["failures"]
    out["mismatch_rate"] = (out["mismatches"] / judged.where(judged > 0)).astype(float)
    return out[columns].sort_values(["failure_rate", "runs"], ascending=[False, False], ignore_index=True)


def graph_paths(graph: list[Any], length: int) -> set[tuple[str, ...]]:
    """Node-type paths of `length` nodes along the edges of a [[op, [preds]]] graph."""
    if length < 1:
        raise ValueError("length must be >= 1")
    succ: dict[int, list[int]] = {i: [] for i in range(len(graph))}
    for i, (_op, preds) in enumerate(graph):
        for p in preds:
            succ.setdefault(int(p), []).append(i)
    paths: set[tuple[str, ...]] = set()

    def walk(node: int, acc: tuple[str, ...]) -> None:
        acc = (*acc, graph[node][0])
        if len(acc) == length:
            paths.add(acc)
            return
        for nxt in succ.get(node, []):
            walk(nxt, acc)

    for start in range(len(graph)):
        walk(start, ())
    return paths


def operator_sequences(engine: Engine, campaign: str | None = None, length: int = 2) -> pd.DataFrame:
    """Study H2 input: one row per (run, ONNX node-type path of `length` nodes) for runs that were compared."""
    runs = runs_frame(engine, campaign)
    rows = [
        {
            "run_id": run.run_id,
            "converter": run.converter,
            "exporter": run.exporter,
            "status": run.status,
            "sequence": " > ".join(path),
        }
        for run in runs.itertuples(index=False)
        if run.status in ("passed", "mismatch") and run.onnx_graph
        for path in sorted(graph_paths(run.onnx_graph, length))
    ]
    return pd.DataFrame(rows, columns=["run_id", "converter", "exporter", "status", "sequence"])


def sequence_comparison(
    engine: Engine, campaign: str | None = None, length: int = 2, min_runs: int = 1
) -> pd.DataFrame:
    """Study H2: how often each operator sequence occurs in mismatching vs. correct runs, with Fisher's exact test.

    p-values are Benjamini–Hochberg adjusted over the sequences tested.
    """
    from scipy.stats import fisher_exact
    from statsmodels.stats.multitest import multipletests

    seqs = operator_sequences(engine, campaign, length)
    columns = [
        "sequence",
        "mismatch_runs",
        "correct_runs",
        "mismatch_share",
        "correct_share",
        "odds_ratio",
        "p_value",
        "p_adjusted",
    ]
    if seqs.empty:
        return pd.DataFrame(columns=columns)
    totals = seqs.drop_duplicates("run_id")["status"].value_counts()
    n_mis, n_ok = int(totals.get("mismatch", 0)), int(totals.get("passed", 0))
    counts = seqs.pivot_table(index="sequence", columns="status", values="run_id", aggfunc="nunique", fill_value=0)
    counts = counts.reindex(columns=["mismatch", "passed"], fill_value=0)
    counts = counts[counts.sum(axis=1) >= min_runs]
    rows = []
    for seq, row in counts.iterrows():
        a, b = int(row["mismatch"]), int(row["passed"])
        odds, p = fisher_exact([[a, n_mis - a], [b, n_ok - b]]) if n_mis and n_ok else (float("nan"), 1.0)
        rows.append(
            {
                "sequence": seq,
                "mismatch_runs": a,
                "correct_runs": b,
                "mismatch_share": a / n_mis if n_mis else float("nan"),
                "correct_share": b / n_ok if n_ok else float("nan"),
                "odds_ratio": odds,
                "p_value": p,
            }
        )
    out = pd.DataFrame(rows, columns=columns[:-1])
    out["p_adjusted"] = multipletests(out["p_value"], method="fdr_bh")[1] if len(out) else []
    return out.sort_values(["p_value", "mismatch_runs"], ascending=[True, False], ignore_index=True)
