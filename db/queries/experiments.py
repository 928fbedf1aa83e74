"""The one read model of conversion campaigns: what the CLI, the app and the report read, aggregated in SQL.

Every function takes the engine and one `RunFilter` (campaign, converters, exporters, outcomes, campaign kind).
Verdicts can be re-judged at any tolerance from the stored comparison numbers: an output passes at (atol, rtol)
iff shapes and dtypes agree, no NaN/Inf disagrees, and its `needed_atol[rtol]` <= atol.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import pandas as pd
from sqlalchemy import (
    Float,
    Integer,
    String,
    Text,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    or_,
    select,
    table,
    type_coerce,
    union_all,
)
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from db.models.experiments import Campaign, ConversionRun, ModelOperator, ModelUnderTest, RunOutput
from db.outcomes import FAILURES, JUDGED, OUTCOMES, RTOL_GRID, Stage, rtol_key

__all__ = ["DECADES", "OUTCOMES", "RTOL_GRID", "RunFilter", "rtol_key"]

RUN = ConversionRun.__table__  # type: ignore[attr-defined]
MODEL = ModelUnderTest.__table__  # type: ignore[attr-defined]
CAMPAIGN = Campaign.__table__  # type: ignore[attr-defined]
OUTPUT = RunOutput.__table__  # type: ignore[attr-defined]
OPERATOR = ModelOperator.__table__  # type: ignore[attr-defined]
COMPARED = tuple(sorted(o.value for o in JUDGED))
#: Decade edges of the "needed atol" bins (values above the last edge go to the last bin).
DECADES = list(range(-12, 7))
#: the `run_outcomes` view (revision 0016_run_outcomes_view): one row per run, joined to campaign and model
VIEW_COLUMNS = (
    "run_id",
    "campaign",
    "campaign_kind",
    "model_id",
    "model",
    "source",
    "framework",
    "model_kind",
    "node_count",
    "converter",
    "converter_version",
    "exporter",
    "registry_name",
    "requested_opset",
    "produced_opset",
    "input_seed",
    "n_inputs",
    "outcome",
    "stage",
    "error_class",
    "atol",
    "rtol",
    "peak_rss_mb",
    *(f"{stage}_s" for stage in Stage),
    "total_s",
    "finished_at",
)
RUN_OUTCOMES = table("run_outcomes", *(column(name) for name in VIEW_COLUMNS))


@dataclass(frozen=True)
class RunFilter:
    """Which conversion runs a read covers; empty fields do not filter."""

    campaign: str | None = None
    converters: tuple[str, ...] = ()
    exporters: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    #: campaign kind: "live" (run here) or "historical" (imported)
    kind: str | None = None

    def __post_init__(self) -> None:
        for name in ("converters", "exporters", "outcomes"):
            object.__setattr__(self, name, tuple(getattr(self, name) or ()))
        unknown = [o for o in self.outcomes if o not in OUTCOMES]
        if unknown:
            raise ValueError(f"unknown outcome {unknown[0]!r} (choose from {', '.join(OUTCOMES)})")

    @classmethod
    def of(cls, value: RunFilter | Mapping[str, Any] | str | None) -> RunFilter:
        """A filter from a filter, its dict (the app's query cache passes JSON), a campaign name, or None."""
        if isinstance(value, RunFilter):
            return value
        if value is None:
            return cls()
        if isinstance(value, str):
            return cls(campaign=value)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in value.items() if k in known})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def where(self, stmt: Any) -> Any:
        """`stmt` (which selects from conversion_run) restricted to the runs of this filter."""
        if self.campaign:
            stmt = stmt.where(
                RUN.c.campaign_id == select(CAMPAIGN.c.id).where(CAMPAIGN.c.name == self.campaign).scalar_subquery()
            )
        if self.kind:
            stmt = stmt.where(RUN.c.campaign_id.in_(select(CAMPAIGN.c.id).where(CAMPAIGN.c.kind == self.kind)))
        for values, col in ((self.converters, RUN.c.converter), (self.exporters, RUN.c.exporter)):
            if values:
                stmt = stmt.where(col.in_(values))
        if self.outcomes:
            stmt = stmt.where(RUN.c.status.in_(self.outcomes))
        return stmt

    def where_view(self, stmt: Any) -> Any:
        """`stmt` (which selects from the `run_outcomes` view) restricted to the runs of this filter."""
        v = RUN_OUTCOMES.c
        for value, col in ((self.campaign, v.campaign), (self.kind, v.campaign_kind)):
            if value:
                stmt = stmt.where(col == value)
        for values, col in ((self.converters, v.converter), (self.exporters, v.exporter), (self.outcomes, v.outcome)):
            if values:
                stmt = stmt.where(col.in_(values))
        return stmt


Filter = RunFilter | Mapping[str, Any] | str | None


def _frame(engine: Engine, stmt: Any, columns: list[str]) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(stmt)]
    return pd.DataFrame(rows, columns=columns)


# --- campaigns ---------------------------------------------------------------------------------------------


def campaign_names(engine: Engine) -> list[str]:
    """Every campaign's name, oldest first: what a `--campaign` option may name."""
    with engine.connect() as conn:
        return list(conn.execute(select(CAMPAIGN.c.name).order_by(CAMPAIGN.c.id)).scalars())


def campaigns(engine: Engine) -> pd.DataFrame:
    """One row per campaign, newest first: kind, spec, when it started/finished, runs, models, runs per outcome,
    and the versions it ran with."""
    per_status = _frame(
        engine,
        select(RUN.c.campaign_id, RUN.c.status, func.count()).group_by(RUN.c.campaign_id, RUN.c.status),
        ["id", "status", "n"],
    )
    models = _frame(
        engine,
        select(RUN.c.campaign_id, func.count(func.distinct(RUN.c.model_id))).group_by(RUN.c.campaign_id),
        ["id", "models"],
    )
    versions = ["torch", "tensorflow", "tf2onnx", "onnx", "onnxruntime", "nnsmith"]
    info = _frame(
        engine,
        select(
            CAMPAIGN.c.id,
            CAMPAIGN.c.name,
            CAMPAIGN.c.kind,
            CAMPAIGN.c.spec,
            CAMPAIGN.c.created_at,
            CAMPAIGN.c.finished_at,
            *(CAMPAIGN.c[f"{v}_version"] for v in versions),
            CAMPAIGN.c.cpu,
        ).order_by(CAMPAIGN.c.created_at.desc(), CAMPAIGN.c.id.desc()),
        ["id", "campaign", "kind", "spec", "created_at", "finished_at", *versions, "cpu"],
    )
    wide = per_status.pivot_table(index="id", columns="status", values="n", aggfunc="sum", fill_value=0)
    wide = wide.reindex(columns=list(OUTCOMES), fill_value=0)
    wide.insert(0, "runs", wide.sum(axis=1))
    out = info.merge(wide, left_on="id", right_index=True, how="left").merge(models, on="id", how="left")
    counts = ["runs", "models", *OUTCOMES]
    out[counts] = out[counts].fillna(0).astype(int)
    for name in ("created_at", "finished_at"):
        out[name] = pd.to_datetime(out[name], utc=True)
    head = ["campaign", "kind", "created_at", "finished_at", "runs", "models", *OUTCOMES]
    return out[[*head, *versions, "cpu", "spec"]]


def campaign_summary(engine: Engine, filters: Filter = None) -> pd.DataFrame:
    """Runs per campaign × converter × exporter × outcome; a campaign without runs is one row with 0 runs."""
    f = RunFilter.of(filters)
    keys = [CAMPAIGN.c.name, RUN.c.converter, RUN.c.exporter, RUN.c.status]
    stmt = select(*keys, func.count(RUN.c.id)).select_from(CAMPAIGN.outerjoin(RUN, RUN.c.campaign_id == CAMPAIGN.c.id))
    if f.campaign:
        stmt = stmt.where(CAMPAIGN.c.name == f.campaign)
    stmt = stmt.group_by(*keys).order_by(*keys)
    return _frame(engine, stmt, ["campaign", "converter", "exporter", "status", "runs"])


def judged_tolerances(engine: Engine, filters: Filter = None) -> pd.DataFrame:
    """Runs per converter × (atol, rtol) their stored passed/mismatch verdict was judged at."""
    keys = [RUN.c.converter, RUN.c.atol, RUN.c.rtol]
    stmt = select(*keys, func.count()).where(RUN.c.status.in_(COMPARED), RUN.c.atol.is_not(None))
    stmt = RunFilter.of(filters).where(stmt).group_by(*keys).order_by(*keys)
    return _frame(engine, stmt, ["converter", "atol", "rtol", "runs"])


def data_version(engine: Engine) -> tuple[int, int]:
    """(runs, newest run id): changes whenever runs are added or removed, cheap to ask."""
    with engine.connect() as conn:
        row = conn.execute(select(func.count(), func.max(RUN.c.id))).one()
    return int(row[0]), int(row[1] or 0)


# --- outcomes ----------------------------------------------------------------------------------------------


def outcome_counts(engine: Engine, filters: Filter = None) -> pd.DataFrame:
    """Runs per converter × exporter × node count × produced opset × requested opset × outcome (one index-only
    scan, no join to `model`). The produced opset is what the ONNX model really has (None: nothing produced)."""
    keys = [RUN.c.converter, RUN.c.exporter, RUN.c.node_count, RUN.c.produced_opset, RUN.c.opset, RUN.c.status]
    stmt = RunFilter.of(filters).where(select(*keys, func.count())).group_by(*keys)
    return _frame(
        engine, stmt, ["converter", "exporter", "node_count", "produced_opset", "requested_opset", "status", "runs"]
    )


_GROUPS = {
    "converter": RUN.c.converter,
    "exporter": RUN.c.exporter,
    "registry_name": RUN.c.registry_name,
    "node_count": RUN.c.node_count,
    "produced_opset": RUN.c.produced_opset,
    "requested_opset": RUN.c.opset,
}


BY_DEFAULT = ("converter", "exporter", "node_count", "produced_opset")


def outcome_rates(engine: Engine, filters: Filter = None, by: Sequence[str] = BY_DEFAULT) -> pd.DataFrame:
    """Runs and the share of each outcome per group (default converter × exporter × node count × the opset the
    produced model really has), with the requested opsets that ended in each group (a run that produced no model
    has an empty `produced_opset`)."""
    keys = list(by)
    unknown = [k for k in keys if k not in _GROUPS]
    if unknown:
        raise ValueError(f"cannot group by {unknown[0]!r} (choose from {', '.join(_GROUPS)})")
    cols = [_GROUPS[k].label(k) for k in keys]
    extra = [] if "requested_opset" in keys else [RUN.c.opset.label("requested_opset")]
    stmt = select(*cols, *extra, RUN.c.status, func.count())
    stmt = RunFilter.of(filters).where(stmt).group_by(*cols, *extra, RUN.c.status)
    rows = _frame(engine, stmt, [*keys, *(["requested_opset"] if extra else []), "status", "runs"])
    columns = [*keys, "requested_opsets", "runs", *OUTCOMES, *(f"{o}_rate" for o in OUTCOMES)]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    nullable = [k for k in keys if k in ("node_count", "produced_opset", "registry_name")]
    rows[nullable] = rows[nullable].astype(object).where(rows[nullable].notna(), -1)
    out = rows.pivot_table(index=keys, columns="status", values="runs", aggfunc="sum", fill_value=0)
    out = out.reindex(columns=list(OUTCOMES), fill_value=0)
    out.insert(0, "runs", out.sum(axis=1))
    for outcome in OUTCOMES:
        out[f"{outcome}_rate"] = out[outcome] / out["runs"]
    asked = rows.groupby(keys)["requested_opset"].agg(lambda s: ",".join(str(int(v)) for v in sorted(set(s))))
    out.insert(0, "requested_opsets", asked)
    out = out.reset_index()
    out.columns.name = None
    for key in nullable:
        out[key] = out[key].where(out[key] != -1)
        if key != "registry_name":
            out[key] = out[key].astype("Int64")
    return out[columns]


def opset_changes(engine: Engine, filters: Filter = None) -> pd.DataFrame:
    """Runs whose produced model has another default-domain opset than the converter was asked for, per
    campaign × converter plug-in × requested × produced opset (torch 2.13's dynamo exporter: 11 → 18)."""
    keys = [
        CAMPAIGN.c.name,
        func.coalesce(RUN.c.registry_name, RUN.c.converter),
        RUN.c.exporter,
        RUN.c.opset,
        RUN.c.produced_opset,
    ]
    stmt = (
        select(*keys, func.count())
        .select_from(RUN.join(CAMPAIGN, CAMPAIGN.c.id == RUN.c.campaign_id))
        .where(RUN.c.produced_opset.is_not(None), RUN.c.produced_opset != RUN.c.opset)
    )
    stmt = RunFilter.of(filters).where(stmt).group_by(*keys).order_by(*keys)
    return _frame(engine, stmt, ["campaign", "converter", "exporter", "requested_opset", "produced_opset", "runs"])


def failure_stages(engine: Engine, filters: Filter = None) -> pd.DataFrame:
    """Runs that did not get a verdict, per converter × outcome × failing stage × error class."""
    keys = [RUN.c.converter, RUN.c.status, RUN.c.stage, RUN.c.error_class]
    stmt = select(*keys, func.count()).where(RUN.c.status.in_(FAILURES))
    stmt = RunFilter.of(filters).where(stmt).group_by(*keys)
    frame = _frame(engine, stmt, ["converter", "status", "stage", "error_class", "runs"])
    return frame.sort_values("runs", ascending=False, ignore_index=True)


# --- runs --------------------------------------------------------------------------------------------------


def runs(engine: Engine, filters: Filter = None, limit: int | None = None) -> pd.DataFrame:
    """Rows of the `run_outcomes` view, newest first: each run with its model, converter, requested and produced
    opset (`opset_differs` flags the two), outcome, stage and durations."""
    v = RUN_OUTCOMES.c
    stmt = RunFilter.of(filters).where_view(select(RUN_OUTCOMES).order_by(v.run_id.desc()).limit(limit))
    frame = _frame(engine, stmt, [c.name for c in RUN_OUTCOMES.c])
    produced = frame["produced_opset"].astype("Int64")
    frame["opset_differs"] = (produced != frame["requested_opset"].astype("Int64")).astype("boolean")
    return frame


def stage_durations(engine: Engine, filters: Filter = None) -> pd.DataFrame:
    """Per converter × stage: runs that went through the stage, their mean and longest time (seconds), from
    the `run_outcomes` view."""
    f = RunFilter.of(filters)
    v = RUN_OUTCOMES.c
    parts = []
    for stage in Stage:
        seconds = v[f"{stage.value}_s"]
        part = select(v.converter, literal(stage.value).label("stage"), func.count(seconds), func.avg(seconds))
        part = part.add_columns(func.max(seconds)).where(seconds.is_not(None))
        parts.append(f.where_view(part).group_by(v.converter))
    frame = _frame(engine, union_all(*parts), ["converter", "stage", "runs", "mean_s", "max_s"])
    order = {s.value: i for i, s in enumerate(Stage)}
    frame = frame.assign(order=frame["stage"].map(order)).sort_values(["converter", "order"], ignore_index=True)
    return frame.drop(columns="order")


def run_detail(engine: Engine, run_id: int) -> dict[str, Any] | None:
    """One run: its fields, its model (source, seed, parameters, files), its campaign's environment, outputs."""
    with engine.connect() as conn:
        run = conn.execute(select(RUN).where(RUN.c.id == int(run_id))).mappings().first()
        if run is None:
            return None
        model = conn.execute(select(MODEL).where(MODEL.c.id == run["model_id"])).mappings().first()
        campaign = conn.execute(select(CAMPAIGN).where(CAMPAIGN.c.id == run["campaign_id"])).mappings().first()
        outputs = conn.execute(
            select(*(c for c in OUTPUT.c if c.name not in ("id", "run_id")))
            .where(OUTPUT.c.run_id == int(run_id))
            .order_by(OUTPUT.c.input_index, OUTPUT.c.output_index)
        ).mappings()
        frame = pd.DataFrame([dict(o) for o in outputs])
    return {"run": dict(run), "model": dict(model or {}), "campaign": dict(campaign or {}), "outputs": frame}


# --- tolerance ---------------------------------------------------------------------------------------------


def _per_run_worst(engine: Engine, rtol: float, f: RunFilter) -> Any:
    """Per compared run: the largest needed atol at `rtol` over its outputs, and whether any output cannot pass."""
    needed = cast(OUTPUT.c.needed_atol[rtol_key(rtol)].as_float(), Float)
    bad = case((and_(OUTPUT.c.shape_match, OUTPUT.c.dtype_match, OUTPUT.c.nonfinite_mismatch == 0), 0), else_=1)
    # Outputs are aggregated per run first (one pass in run_id order), then joined to their run by primary key.
    if engine.dialect.name == "sqlite":
        # SQLite does not reuse a repeated expression, and reading JSON dominates: extract it once. Text sorts
        # above every number in SQLite, so max() is 'u' exactly when some output has no number for this rtol.
        top = func.max(func.coalesce(needed, literal("u", Text)))
        per_output = (
            select(OUTPUT.c.run_id, top.label("top"), func.max(bad).label("bad")).group_by(OUTPUT.c.run_id).subquery()
        )
        unknown_flag = func.typeof(per_output.c.top) == "text"
        worst: ColumnElement[Any] = case((unknown_flag, None), else_=per_output.c.top)
        unknown: ColumnElement[Any] = case((unknown_flag, 1), else_=0)
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
    return f.where(stmt).subquery()


def rejudged(engine: Engine, filters: Filter = None, *, atol: float, rtol: float = 0.0) -> pd.DataFrame:
    """Per converter: compared runs, stored verdicts, and verdicts at (atol, rtol) recomputed from raw numbers.

    Runs with no stored numbers (historical imports) or none for this rtol are counted as `not_judgeable`;
    a run whose shapes, dtypes or NaN/Inf positions disagree is a mismatch at any tolerance.
    """
    f = RunFilter.of(filters)
    per_run = _per_run_worst(engine, rtol, f)
    ok = and_(per_run.c.bad == 0, per_run.c.unknown == 0, per_run.c.worst <= atol)
    judgeable = or_(per_run.c.bad == 1, per_run.c.unknown == 0)  # a shape/dtype/NaN disagreement never passes
    stmt = select(
        per_run.c.converter,
        func.count(),
        func.sum(case((per_run.c.status == "passed", 1), else_=0)),
        func.sum(case((per_run.c.status == "mismatch", 1), else_=0)),
        func.sum(case((ok, 1), else_=0)),
        func.sum(case((and_(judgeable, ~ok), 1), else_=0)),
        func.sum(case((judgeable, 0), else_=1)),
    ).group_by(per_run.c.converter)
    frame = _frame(
        engine,
        stmt,
        ["converter", "with_numbers", "stored_passed", "stored_mismatch", "passed", "mismatch", "not_judgeable"],
    )
    compared = f.where(select(RUN.c.converter, func.count()).where(RUN.c.status.in_(COMPARED)))
    totals = _frame(engine, compared.group_by(RUN.c.converter), ["converter", "compared"])
    out = totals.merge(frame, on="converter", how="left").fillna(0)
    for name in out.columns[1:]:
        out[name] = out[name].astype(int)
    out["without_numbers"] = out["compared"] - out["with_numbers"]
    judged = out["passed"] + out["mismatch"]
    out["mismatch_rate"] = out["mismatch"] / judged.where(judged > 0)
    return out


def compared_numbers(engine: Engine, filters: Filter = None) -> pd.DataFrame:
    """Per compared run: converter, node count, stored verdict, and its raw numbers over all outputs: the largest
    max absolute difference (None: no number stored, e.g. a NaN difference; infinity stays infinity), whether any
    output had a NaN/Inf disagreement, and how many outputs were stored (0: no numbers, the verdict is all there is).
    Lets a report apply another verdict rule to the stored numbers without re-running anything."""
    per_run = (
        select(
            OUTPUT.c.run_id,
            func.max(OUTPUT.c.max_abs_diff).label("max_abs_diff"),
            func.max(OUTPUT.c.nonfinite_mismatch).label("nonfinite"),
            func.count().label("outputs"),
        )
        .group_by(OUTPUT.c.run_id)
        .subquery()
    )
    stmt = (
        select(
            RUN.c.id,
            RUN.c.converter,
            RUN.c.node_count,
            RUN.c.status,
            per_run.c.max_abs_diff,
            func.coalesce(per_run.c.nonfinite, 0),
            func.coalesce(per_run.c.outputs, 0),
        )
        .select_from(RUN.outerjoin(per_run, per_run.c.run_id == RUN.c.id))
        .where(RUN.c.status.in_(COMPARED))
        .order_by(RUN.c.id)
    )
    frame = _frame(
        engine,
        RunFilter.of(filters).where(stmt),
        ["run_id", "converter", "node_count", "status", "max_abs_diff", "nonfinite", "outputs"],
    )
    frame["max_abs_diff"] = frame["max_abs_diff"].astype("float64")
    frame["nonfinite"] = frame["nonfinite"].astype("int64") > 0
    frame["outputs"] = frame["outputs"].astype("int64")
    return frame


def bucket_label(decade: int | None) -> str:
    """Bin names of the needed-atol histogram: "0", "≤1e-12" … "≤1e6", ">1e6"."""
    return "0" if decade is None else f"≤1e{decade}"


#: every bin in order (the two that never pass at any atol last)
BUCKETS = ["0", *(bucket_label(d) for d in DECADES), f">1e{DECADES[-1]}", "cannot pass"]


def tolerance_buckets(engine: Engine, filters: Filter = None, *, rtol: float = 0.0) -> pd.DataFrame:
    """One scan for every atol on the decade grid: compared runs per converter × stored verdict × bin of the atol
    they need at `rtol` ("cannot pass": shape/dtype/NaN disagreement; "no numbers": none for this rtol;
    "not stored": no comparison numbers at all)."""
    f = RunFilter.of(filters)
    per_run = _per_run_worst(engine, rtol, f)
    worst = per_run.c.worst
    whens = [
        (per_run.c.bad == 1, literal("cannot pass")),
        (per_run.c.unknown == 1, literal("no numbers")),
        (worst <= 0, literal(bucket_label(None))),
    ]
    whens += [(worst <= 10.0**d, literal(bucket_label(d))) for d in DECADES]
    bucket = case(*whens, else_=literal(f">1e{DECADES[-1]}")).label("bucket")
    stmt = select(per_run.c.converter, per_run.c.status, bucket, func.count()).group_by(
        per_run.c.converter, per_run.c.status, bucket
    )
    frame = _frame(engine, stmt, ["converter", "stored", "bucket", "runs"])
    compared = f.where(select(RUN.c.converter, RUN.c.status, func.count()).where(RUN.c.status.in_(COMPARED)))
    totals = _frame(engine, compared.group_by(RUN.c.converter, RUN.c.status), ["converter", "stored", "compared"])
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
        per_bucket = group.groupby("bucket")["runs"].sum()
        stored_numbers = group[group["bucket"] != "not stored"].groupby("stored")["runs"].sum()
        judgeable = group[~group["bucket"].isin(["no numbers", "not stored"])]
        passed = int(judgeable.loc[judgeable["bucket"].isin(passing), "runs"].sum())
        rows.append(
            {
                "converter": converter,
                "compared": int(group["runs"].sum()),
                "with_numbers": int(stored_numbers.sum()),
                "stored_passed": int(stored_numbers.get("passed", 0)),
                "stored_mismatch": int(stored_numbers.get("mismatch", 0)),
                "passed": passed,
                "mismatch": int(judgeable["runs"].sum()) - passed,
                "not_judgeable": int(per_bucket.get("no numbers", 0)),
                "without_numbers": int(per_bucket.get("not stored", 0)),
            }
        )
    columns = ["converter", "compared", "with_numbers", "stored_passed", "stored_mismatch", "passed", "mismatch"]
    out = pd.DataFrame(rows, columns=[*columns, "not_judgeable", "without_numbers"])
    judged = out["passed"] + out["mismatch"]
    out["mismatch_rate"] = out["mismatch"] / judged.where(judged > 0)
    return out


# --- operators (study H1) and operator sequences (study H2) ------------------------------------------------


def _onnx_operators(engine: Engine) -> Any:
    """(run_id, operator) for every distinct ONNX node type of each run's produced graph, read from its JSON."""
    if engine.dialect.name == "postgresql":
        sql = (
            "SELECT DISTINCT r.id AS run_id, j.value ->> 0 AS operator FROM conversion_run r "
            "CROSS JOIN LATERAL jsonb_array_elements(r.onnx_graph) AS j(value) "
            "WHERE jsonb_typeof(r.onnx_graph) = 'array'"
        )
    else:
        sql = (
            "SELECT DISTINCT r.id AS run_id, json_extract(j.value, '$[0]') AS operator FROM conversion_run r, "
            "json_each(r.onnx_graph) AS j WHERE json_type(r.onnx_graph) = 'array'"
        )
    return sql_text(sql).columns(column("run_id", Integer), column("operator", String)).subquery("onnx_operator")


def operator_rates(engine: Engine, filters: Filter = None, *, level: str = "source") -> pd.DataFrame:
    """Study H1: per operator × converter × exporter, runs containing it, failure and mismatch rates.

    `level="source"` uses the model's framework operators (`model_operator`, every run has them); `"onnx"` the
    node types of the produced ONNX graph (only runs whose export succeeded). A run counts once per operator.
    """
    if level == "source":
        op_col, joined = OPERATOR.c.operator, OPERATOR.join(RUN, RUN.c.model_id == OPERATOR.c.model_id)
    elif level == "onnx":
        pairs = _onnx_operators(engine)
        op_col, joined = pairs.c.operator, pairs.join(RUN, RUN.c.id == pairs.c.run_id)
    else:
        raise ValueError("level must be 'source' or 'onnx'")
    keys = [op_col, RUN.c.converter, RUN.c.exporter]
    stmt = select(
        *keys,
        func.count(),
        func.sum(case((RUN.c.status.in_(FAILURES), 1), else_=0)),
        func.sum(case((RUN.c.status == "mismatch", 1), else_=0)),
    ).select_from(joined)
    stmt = RunFilter.of(filters).where(stmt).group_by(*keys)
    frame = _frame(engine, stmt, ["operator", "converter", "exporter", "runs", "failures", "mismatches"])
    for name in ("runs", "failures", "mismatches"):
        frame[name] = frame[name].astype(int)
    frame["failure_rate"] = frame["failures"] / frame["runs"]
    judged = frame["runs"] - frame["failures"]
    frame["mismatch_rate"] = (frame["mismatches"] / judged.where(judged > 0)).astype(float)
    return frame.sort_values(["failure_rate", "runs", "operator"], ascending=[False, False, True], ignore_index=True)


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


def operator_sequences(engine: Engine, filters: Filter = None, *, length: int = 2) -> pd.DataFrame:
    """Study H2 input: one row per (compared run, ONNX node-type path of `length` nodes along its graph)."""
    stmt = select(RUN.c.id, RUN.c.converter, RUN.c.exporter, RUN.c.status, RUN.c.onnx_graph).where(
        RUN.c.status.in_(COMPARED), RUN.c.onnx_graph.is_not(None)
    )
    graphs = _frame(engine, RunFilter.of(filters).where(stmt.order_by(RUN.c.id)), ["run_id", "c", "e", "s", "g"])
    rows = [
        (run.run_id, run.c, run.e, run.s, " > ".join(path))
        for run in graphs.itertuples(index=False)
        if isinstance(run.g, list)
        for path in sorted(graph_paths(run.g, length))
    ]
    return pd.DataFrame(rows, columns=["run_id", "converter", "exporter", "status", "sequence"])


def sequence_comparison(engine: Engine, filters: Filter = None, *, length: int = 2, min_runs: int = 1) -> pd.DataFrame:
    """Study H2: how often each operator sequence occurs in mismatching vs. correct runs, with Fisher's exact test
    (p-values Benjamini–Hochberg adjusted over the sequences tested)."""
    from scipy.stats import fisher_exact
    from statsmodels.stats.multitest import multipletests

    seqs = operator_sequences(engine, filters, length=length)
    columns = ["sequence", "mismatch_runs", "correct_runs", "mismatch_share", "correct_share", "odds_ratio"]
    if seqs.empty:
        return pd.DataFrame(columns=[*columns, "p_value", "p_adjusted"])
    totals = seqs.drop_duplicates("run_id")["status"].value_counts()
    n_mis, n_ok = int(totals.get("mismatch", 0)), int(totals.get("passed", 0))
    counts = seqs.pivot_table(index="sequence", columns="status", values="run_id", aggfunc="nunique", fill_value=0)
    counts = counts.reindex(columns=["mismatch", "passed"], fill_value=0)
    counts = counts[counts.sum(axis=1) >= min_runs]
    rows = []
    for seq, row in counts.iterrows():
        a, b = int(row["mismatch"]), int(row["passed"])
        odds, p = fisher_exact([[a, n_mis - a], [b, n_ok - b]]) if n_mis and n_ok else (float("nan"), 1.0)
        share_a = a / n_mis if n_mis else float("nan")
        rows.append((seq, a, b, share_a, b / n_ok if n_ok else float("nan"), odds, p))
    out = pd.DataFrame(rows, columns=[*columns, "p_value"])
    out["p_adjusted"] = multipletests(out["p_value"], method="fdr_bh")[1] if len(out) else []
    return out.sort_values(["p_value", "mismatch_runs"], ascending=[True, False], ignore_index=True)
