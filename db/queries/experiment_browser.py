"""The Experiments page's reads, aggregated in SQL so they stay fast on millions of conversion runs.

Campaigns, outcomes by converter × exporter × node count × produced opset, failing stages, per-operator rates, and
verdicts re-judged at any tolerance from the stored comparison numbers (`needed_atol[rtol]` per output:
an output passes at (atol, rtol) iff shapes and dtypes agree, no NaN/Inf disagrees, and needed_atol <= atol).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from sqlalchemy import Float, Text, and_, case, cast, func, literal, or_, select, type_coerce
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from db.models.experiments import Campaign, ConversionRun, ModelOperator, ModelUnderTest, RunOutcome, RunOutput

RUN = ConversionRun.__table__  # type: ignore[attr-defined]
MODEL = ModelUnderTest.__table__  # type: ignore[attr-defined]
CAMPAIGN = Campaign.__table__  # type: ignore[attr-defined]
OUTPUT = RunOutput.__table__  # type: ignore[attr-defined]
OPERATOR = ModelOperator.__table__  # type: ignore[attr-defined]

OUTCOMES = [o.value for o in RunOutcome]
COMPARED = (RunOutcome.passed.value, RunOutcome.mismatch.value)
#: Decade edges of the "needed atol" histogram (values above the last edge go to the last bin).
DECADES = list(range(-12, 7))


def _frame(engine: Engine, stmt: Any, columns: list[str]) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(stmt)]
    return pd.DataFrame(rows, columns=columns)


def _in_campaign(stmt: Any, campaign: str | None) -> Any:
    if campaign:
        wanted = select(CAMPAIGN.c.id).where(CAMPAIGN.c.name == campaign).scalar_subquery()
        return stmt.where(RUN.c.campaign_id == wanted)
    return stmt


def campaigns(engine: Engine) -> pd.DataFrame:
    """Every campaign with its kind, environment versions, and runs per outcome."""
    per_status = (
        select(RUN.c.campaign_id, RUN.c.status, func.count().label("n")).group_by(RUN.c.campaign_id, RUN.c.status)
    ).subquery()
    counts = _frame(engine, select(per_status), ["campaign_id", "status", "n"])
    info = _frame(
        engine,
        select(
            CAMPAIGN.c.id,
            CAMPAIGN.c.name,
            CAMPAIGN.c.kind,
            CAMPAIGN.c.created_at,
            CAMPAIGN.c.finished_at,
            CAMPAIGN.c.torch_version,
            CAMPAIGN.c.tensorflow_version,
            CAMPAIGN.c.tf2onnx_version,
            CAMPAIGN.c.onnx_version,
            CAMPAIGN.c.onnxruntime_version,
            CAMPAIGN.c.nnsmith_version,
            CAMPAIGN.c.cpu,
        ).order_by(CAMPAIGN.c.created_at.desc()),
        [
            "id",
            "campaign",
            "kind",
            "created_at",
            "finished_at",
            "torch",
            "tensorflow",
            "tf2onnx",
            "onnx",
            "onnxruntime",
            "nnsmith",
            "cpu",
        ],
    )
    wide = counts.pivot_table(index="campaign_id", columns="status", values="n", aggfunc="sum", fill_value=0)
    wide = wide.reindex(columns=OUTCOMES, fill_value=0)
    wide.insert(0, "runs", wide.sum(axis=1))
    out = info.merge(wide, left_on="id", right_index=True, how="left").fillna({c: 0 for c in ["runs", *OUTCOMES]})
    for column in ["runs", *OUTCOMES]:
        out[column] = out[column].astype(int)
    for column in ("created_at", "finished_at"):
        out[column] = pd.to_datetime(out[column], utc=True)
    return out.drop(columns="id")


def outcome_counts(engine: Engine, campaign: str | None = None) -> pd.DataFrame:
    """Runs per converter × exporter × node count × produced opset × requested opset × outcome (one index-only
    scan, no join to `model`). The produced opset is what the ONNX model really has (None: nothing produced)."""
    keys = [RUN.c.converter, RUN.c.exporter, RUN.c.node_count, RUN.c.produced_opset, RUN.c.opset, RUN.c.status]
    stmt = _in_campaign(select(*keys, func.count().label("runs")), campaign).group_by(*keys)
    return _frame(
        engine, stmt, ["converter", "exporter", "node_count", "produced_opset", "requested_opset", "status", "runs"]
    )


def failure_stages(engine: Engine, campaign: str | None = None) -> pd.DataFrame:
    """Runs that did not get a verdict, per converter × outcome × failing stage × error class."""
    keys = [RUN.c.converter, RUN.c.status, RUN.c.stage, RUN.c.error_class]
    stmt = select(*keys, func.count().label("runs")).where(RUN.c.status.not_in(COMPARED))
    stmt = _in_campaign(stmt, campaign).group_by(*keys)
    frame = _frame(engine, stmt, ["converter", "status", "stage", "error_class", "runs"])
    return frame.sort_values("runs", ascending=False, ignore_index=True)


def _rtol_key(rtol: float) -> str:
    return repr(float(rtol))


def data_version(engine: Engine) -> tuple[int, int]:
    """(runs, newest run id): changes whenever runs are added or removed, cheap to ask."""
    with engine.connect() as conn:
        row = conn.execute(select(func.count(), func.max(RUN.c.id))).one()
    return int(row[0]), int(row[1] or 0)


def _per_run_worst(engine: Engine, rtol: float, campaign: str | None) -> Any:
    """Per compared run: the largest needed atol at `rtol` over its outputs, and whether any output cannot pass."""
    needed = cast(OUTPUT.c.needed_atol[_rtol_key(rtol)].as_float(), Float)
    bad = case((and_(OUTPUT.c.shape_match, OUTPUT.c.dtype_match, OUTPUT.c.nonfinite_mismatch == 0), 0), else_=1)
    # Outputs are aggregated per run first (one pass in run_id order), then joined to their run by primary key:
    # much cheaper on SQLite than grouping the run × output join by run id.
    worst: ColumnElement[Any]
    unknown: ColumnElement[Any]
    if engine.dialect.name == "sqlite":
        # SQLite does not reuse a repeated expression, and reading JSON dominates: extract it once. Text sorts
        # above every number in SQLite, so max() is 'u' exactly when some output has no number for this rtol.
        top = func.max(func.coalesce(needed, literal("u", Text)))
        per_output = (
            select(OUTPUT.c.run_id, top.label("top"), func.max(bad).label("bad")).group_by(OUTPUT.c.run_id).subquery()
        )
        unknown_flag = func.typeof(per_output.c.top) == "text"
        worst = case((unknown_flag, None), else_=per_output.c.top)
        unknown = case((unknown_flag, 1), else_=0)
    else:
        per_output = (
            select(
                OUTPUT.c.run_id,
                func.max(needed).label("worst"),
                func.max(bad).label("bad"),
                func.max(case((needed.is_(None), 1), else_=0)).label("unknown"),
            )
            .group_by(OUTPUT.c.run_id)
            .subquery()
        )
        worst, unknown = per_output.c.worst, per_output.c.unknown
    stmt = (
        select(
            RUN.c.id.label("run_id"),
            RUN.c.converter,
            RUN.c.status,
            type_coerce(worst, Float).label("worst"),
            per_output.c.bad,
            unknown.label("unknown"),
        )
        .select_from(per_output.join(RUN, RUN.c.id == per_output.c.run_id))
        .where(RUN.c.status.in_(COMPARED))
    )
    return _in_campaign(stmt, campaign).subquery()


def rejudged(engine: Engine, atol: float, rtol: float = 0.0, campaign: str | None = None) -> pd.DataFrame:
    """Per converter: compared runs, stored verdicts, and verdicts at (atol, rtol) recomputed from raw numbers.

    Runs with no stored numbers (historical imports) or none for this rtol are counted as `not_judgeable`;
    a run whose shapes, dtypes or NaN/Inf positions disagree is a mismatch at any tolerance.
    """
    per_run = _per_run_worst(engine, rtol, campaign)
    ok = and_(per_run.c.bad == 0, per_run.c.unknown == 0, per_run.c.worst <= atol)
    judgeable = or_(per_run.c.bad == 1, per_run.c.unknown == 0)  # a shape/dtype/NaN disagreement never passes
    stmt = select(
        per_run.c.converter,
        func.count().label("with_numbers"),
        func.sum(case((per_run.c.status == "passed", 1), else_=0)).label("stored_passed"),
        func.sum(case((per_run.c.status == "mismatch", 1), else_=0)).label("stored_mismatch"),
        func.sum(case((ok, 1), else_=0)).label("passed"),
        func.sum(case((and_(judgeable, ~ok), 1), else_=0)).label("mismatch"),
        func.sum(case((judgeable, 0), else_=1)).label("not_judgeable"),
    ).group_by(per_run.c.converter)
    frame = _frame(
        engine,
        stmt,
        ["converter", "with_numbers", "stored_passed", "stored_mismatch", "passed", "mismatch", "not_judgeable"],
    )
    compared = select(RUN.c.converter, func.count().label("compared")).where(RUN.c.status.in_(COMPARED))
    compared = _in_campaign(compared, campaign).group_by(RUN.c.converter)
    totals = _frame(engine, compared, ["converter", "compared"])
    out = totals.merge(frame, on="converter", how="left").fillna(0)
    for column in out.columns[1:]:
        out[column] = out[column].astype(int)
    out["without_numbers"] = out["compared"] - out["with_numbers"]
    judged = out["passed"] + out["mismatch"]
    out["mismatch_rate"] = out["mismatch"] / judged.where(judged > 0)
    return out


def needed_atol_histogram(engine: Engine, rtol: float = 0.0, campaign: str | None = None) -> pd.DataFrame:
    """Compared runs per converter and decade of the atol they need to pass at `rtol` (0 and exact: own bin)."""
    per_run = _per_run_worst(engine, rtol, campaign)
    worst = per_run.c.worst
    whens = [(worst <= 0, literal("0"))]
    whens += [(worst <= 10.0**d, literal(f"≤1e{d}")) for d in DECADES]
    bucket = case(*whens, else_=literal(f">1e{DECADES[-1]}")).label("bucket")
    stmt = (
        select(per_run.c.converter, bucket, func.count().label("runs"))
        .where(per_run.c.bad == 0, per_run.c.unknown == 0)
        .group_by(per_run.c.converter, bucket)
    )
    frame = _frame(engine, stmt, ["converter", "bucket", "runs"])
    order = ["0", *(f"≤1e{d}" for d in DECADES), f">1e{DECADES[-1]}"]
    frame["order"] = frame["bucket"].map({b: i for i, b in enumerate(order)})
    return frame.sort_values(["converter", "order"], ignore_index=True)


def bucket_label(decade: int | None) -> str:
    """Histogram bin names: "0", "≤1e-12" … "≤1e6", ">1e6"."""
    return "0" if decade is None else f"≤1e{decade}"


def tolerance_buckets(engine: Engine, rtol: float = 0.0, campaign: str | None = None) -> pd.DataFrame:
    """One scan for every atol on the page's decade grid: compared runs per converter × stored verdict × bin of
    the atol they need at `rtol` (bins "cannot pass": shape/dtype/NaN disagreement; "no numbers": none stored)."""
    per_run = _per_run_worst(engine, rtol, campaign)
    worst = per_run.c.worst
    whens = [
        (per_run.c.bad == 1, literal("cannot pass")),
        (per_run.c.unknown == 1, literal("no numbers")),
        (worst <= 0, literal(bucket_label(None))),
    ]
    whens += [(worst <= 10.0**d, literal(bucket_label(d))) for d in DECADES]
    bucket = case(*whens, else_=literal(f">1e{DECADES[-1]}")).label("bucket")
    stmt = select(per_run.c.converter, per_run.c.status, bucket, func.count().label("runs")).group_by(
        per_run.c.converter, per_run.c.status, bucket
    )
    frame = _frame(engine, stmt, ["converter", "stored", "bucket", "runs"])
    compared = _in_campaign(
        select(RUN.c.converter, RUN.c.status, func.count()).where(RUN.c.status.in_(COMPARED)), campaign
    ).group_by(RUN.c.converter, RUN.c.status)
    totals = _frame(engine, compared, ["converter", "stored", "compared"])
    with_numbers = frame.groupby(["converter", "stored"], as_index=False)["runs"].sum()
    missing = totals.merge(with_numbers, on=["converter", "stored"], how="left").fillna({"runs": 0})
    missing["runs"] = missing["compared"] - missing["runs"].astype(int)
    missing = missing[missing["runs"] > 0].assign(bucket="not stored")[["converter", "stored", "bucket", "runs"]]
    return pd.concat([frame, missing], ignore_index=True)


def rejudge(buckets: pd.DataFrame, atol: float) -> pd.DataFrame:
    """Per converter at `atol` (0 or a power of ten, the bins' edges): the table `rejudged` gives, from
    `tolerance_buckets` without another scan."""
    if atol != 0 and not any(math.isclose(atol, 10.0**d) for d in DECADES):
        raise ValueError(f"atol {atol:g} is not on the decade grid; use rejudged() for any atol")
    passing = {bucket_label(None)} | (
        {bucket_label(d) for d in DECADES if 10.0**d <= atol * (1 + 1e-9)} if atol > 0 else set()
    )
    rows = []
    for converter, group in buckets.groupby("converter", sort=True):
        runs = group.groupby("bucket")["runs"].sum()
        by_stored = group.groupby("stored")["runs"].sum()
        stored_numbers = group[group["bucket"] != "not stored"].groupby("stored")["runs"].sum()
        judgeable = group[~group["bucket"].isin(["no numbers", "not stored"])]
        passed = int(judgeable.loc[judgeable["bucket"].isin(passing), "runs"].sum())
        mismatch = int(judgeable["runs"].sum()) - passed
        rows.append(
            {
                "converter": converter,
                "compared": int(by_stored.sum()),
                "with_numbers": int(stored_numbers.sum()),
                "stored_passed": int(stored_numbers.get("passed", 0)),
                "stored_mismatch": int(stored_numbers.get("mismatch", 0)),
                "passed": passed,
                "mismatch": mismatch,
                "not_judgeable": int(runs.get("no numbers", 0)),
                "without_numbers": int(runs.get("not stored", 0)),
            }
        )
    out = pd.DataFrame(
        rows,
        columns=[
            "converter",
            "compared",
            "with_numbers",
            "stored_passed",
            "stored_mismatch",
            "passed",
            "mismatch",
            "not_judgeable",
            "without_numbers",
        ],
    )
    judged = out["passed"] + out["mismatch"]
    out["mismatch_rate"] = out["mismatch"] / judged.where(judged > 0)
    return out


def operator_rates(engine: Engine, campaign: str | None = None) -> pd.DataFrame:
    """Study H1 in SQL: per source operator and converter, runs containing it, failure and mismatch rates.

    Grouped by operator alone with one set of sums per converter: the scan of `model_operator` comes in operator
    order, so neither database has to sort millions of (operator, converter) rows.
    """
    with engine.connect() as conn:
        converters = list(conn.execute(select(RUN.c.converter).distinct().order_by(RUN.c.converter)).scalars())
    columns = ["operator", "converter", "runs", "failures", "mismatches"]
    if not converters:
        return _rates(pd.DataFrame(columns=columns))
    failed, mismatched = RUN.c.status.not_in(COMPARED), RUN.c.status == "mismatch"
    sums = []
    for converter in converters:
        mine = RUN.c.converter == converter
        sums += [
            func.sum(case((mine, 1), else_=0)),
            func.sum(case((and_(mine, failed), 1), else_=0)),
            func.sum(case((and_(mine, mismatched), 1), else_=0)),
        ]
    stmt = (
        select(OPERATOR.c.operator, *sums)
        .select_from(OPERATOR.join(RUN, RUN.c.model_id == OPERATOR.c.model_id))
        .group_by(OPERATOR.c.operator)
    )
    with engine.connect() as conn:
        wide = conn.execute(_in_campaign(stmt, campaign)).all()
    rows = [(row[0], converter, *row[1 + 3 * i : 4 + 3 * i]) for row in wide for i, converter in enumerate(converters)]
    frame = pd.DataFrame(rows, columns=columns)
    return _rates(frame[frame["runs"] > 0])


def _rates(frame: pd.DataFrame) -> pd.DataFrame:
    """Failure rate over all runs, mismatch rate over the runs that got a verdict; highest failure rate first."""
    frame = frame.copy()
    for column in ("runs", "failures", "mismatches"):
        frame[column] = frame[column].astype(int)
    frame["failure_rate"] = frame["failures"] / frame["runs"]
    judged = frame["runs"] - frame["failures"]
    frame["mismatch_rate"] = frame["mismatches"] / judged.where(judged > 0)
    return frame.sort_values(["failure_rate", "runs"], ascending=[False, False], ignore_index=True)


def run_ids(engine: Engine, campaign: str | None = None, status: str | None = None, limit: int = 200) -> list[int]:
    """Newest run ids (optionally of one outcome), for the run picker."""
    stmt = select(RUN.c.id).order_by(RUN.c.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(RUN.c.status == status)
    stmt = _in_campaign(stmt, campaign)
    with engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(stmt)]


def run_detail(engine: Engine, run_id: int) -> dict[str, Any] | None:
    """One run: its fields, its model (source, seed, parameters, files), its campaign's environment, outputs."""
    with engine.connect() as conn:
        run = conn.execute(select(RUN).where(RUN.c.id == int(run_id))).mappings().first()
        if run is None:
            return None
        model = conn.execute(select(MODEL).where(MODEL.c.id == run["model_id"])).mappings().first()
        campaign = conn.execute(select(CAMPAIGN).where(CAMPAIGN.c.id == run["campaign_id"])).mappings().first()
        outputs = (
            conn.execute(
                select(*(c for c in OUTPUT.c if c.name not in ("id", "run_id")))
                .where(OUTPUT.c.run_id == int(run_id))
                .order_by(OUTPUT.c.input_index, OUTPUT.c.output_index)
            )
            .mappings()
            .all()
        )
    frame = pd.DataFrame([dict(o) for o in outputs])
    return {"run": dict(run), "model": dict(model or {}), "campaign": dict(campaign or {}), "outputs": frame}


def finite_or_none(value: Any) -> float | None:
    """For display: NaN/inf become None."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
