"""The read model of distinct failures: signatures with their runs, models and first/last seen, per converter
and stage, and the upstream issues linked to each (what the CLI, the app and the report read)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from db.models.failures import DEFAULT_SIGNATURE_RULE, FailureSignature, RunSignature
from db.queries.experiments import CAMPAIGN, RUN, Filter, RunFilter

SIG = FailureSignature.__table__  # type: ignore[attr-defined]
RUN_SIG = RunSignature.__table__  # type: ignore[attr-defined]
#: characters of a signature's key shown and accepted (like a short git hash)
SHORT = 10

SIGNATURE_COLUMNS = [
    "signature",
    "converter",
    "stage",
    "error_class",
    "operator",
    "message",
    "runs",
    "models",
    "campaigns",
    "first_seen",
    "last_seen",
    "example_run",
    "repro",
]


def _frame(engine: Engine, stmt: Any, columns: list[str]) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(stmt)]
    return pd.DataFrame(rows, columns=columns)


def rule_versions(engine: Engine) -> list[str]:
    """The signature rule versions stored, default first."""
    with engine.connect() as conn:
        found = list(conn.execute(select(SIG.c.rule_version).distinct()).scalars())
    return sorted(found, key=lambda v: (v != DEFAULT_SIGNATURE_RULE, v))


def signatures(
    engine: Engine, filters: Filter = None, rule_version: str = DEFAULT_SIGNATURE_RULE, limit: int | None = None
) -> pd.DataFrame:
    """One row per signature of the filtered runs, most runs first: its components, runs, distinct models and
    campaigns, first and last seen (run finish times, UTC), the lowest run id as example and its repro command."""
    joined = RUN_SIG.join(RUN, RUN.c.id == RUN_SIG.c.run_id).join(SIG, SIG.c.id == RUN_SIG.c.signature_id)
    runs = func.count(RUN.c.id)
    stmt = (
        select(
            SIG.c.key,
            SIG.c.converter,
            SIG.c.stage,
            SIG.c.error_class,
            SIG.c.operator,
            SIG.c.message,
            runs,
            func.count(func.distinct(RUN.c.model_id)),
            func.count(func.distinct(RUN.c.campaign_id)),
            func.min(RUN.c.finished_at),
            func.max(RUN.c.finished_at),
            func.min(RUN.c.id),
        )
        .select_from(joined)
        .where(RUN_SIG.c.rule_version == rule_version)
        .group_by(SIG.c.id, SIG.c.key, SIG.c.converter, SIG.c.stage, SIG.c.error_class, SIG.c.operator, SIG.c.message)
        .order_by(runs.desc(), SIG.c.converter, SIG.c.key)
        .limit(limit)
    )
    frame = _frame(engine, RunFilter.of(filters).where(stmt), SIGNATURE_COLUMNS[:-1])
    frame["signature"] = frame["signature"].str[:SHORT]
    for name in ("first_seen", "last_seen"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    frame["repro"] = [f"interop experiment repro {int(r)}" for r in frame["example_run"]]
    return frame[SIGNATURE_COLUMNS]


def signature_counts(
    engine: Engine, filters: Filter = None, rule_version: str = DEFAULT_SIGNATURE_RULE
) -> pd.DataFrame:
    """Per converter × stage: runs without a passing verdict, their distinct signatures, and the runs of the
    most common one."""
    per_sig = signatures(engine, filters, rule_version)
    columns = ["converter", "stage", "runs", "signatures", "top_signature_runs"]
    if per_sig.empty:
        return pd.DataFrame(columns=columns)
    out = per_sig.groupby(["converter", "stage"], as_index=False).agg(
        runs=("runs", "sum"), signatures=("signature", "nunique"), top_signature_runs=("runs", "max")
    )
    return out.sort_values(["converter", "stage"], ignore_index=True)[columns]


def resolve_signature(engine: Engine, prefix: str, rule_version: str = DEFAULT_SIGNATURE_RULE) -> list[dict[str, Any]]:
    """The signatures under `rule_version` whose key starts with `prefix` (one: resolved; none or several: ask)."""
    stmt = select(SIG).where(SIG.c.rule_version == rule_version, SIG.c.key.like(f"{prefix.lower()}%")).limit(5)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def signature_runs(
    engine: Engine, key: str, rule_version: str = DEFAULT_SIGNATURE_RULE, filters: Filter = None
) -> pd.DataFrame:
    """The runs of one signature (full key), newest first, with their campaign and original message."""
    stmt = (
        select(RUN.c.id, CAMPAIGN.c.name, RUN.c.model_id, RUN.c.status, RUN.c.opset, RUN.c.message, RUN.c.finished_at)
        .select_from(
            RUN_SIG.join(RUN, RUN.c.id == RUN_SIG.c.run_id)
            .join(SIG, SIG.c.id == RUN_SIG.c.signature_id)
            .join(CAMPAIGN, CAMPAIGN.c.id == RUN.c.campaign_id)
        )
        .where(RUN_SIG.c.rule_version == rule_version, SIG.c.key == key)
        .order_by(RUN.c.id.desc())
    )
    columns = ["run_id", "campaign", "model_id", "status", "requested_opset", "message", "finished_at"]
    return _frame(engine, RunFilter.of(filters).where(stmt), columns)
