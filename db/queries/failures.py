"""The read model of distinct failures: signatures with their runs, models and first/last seen, per converter
and stage, and the upstream issues linked to each (what the CLI, the app and the report read)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from db.models.failures import (
    DEFAULT_SIGNATURE_RULE,
    FailureLinkCandidate,
    FailureLinkDecision,
    FailureSignature,
    RunReduction,
    RunSignature,
)
from db.models.github import Issue, Repository
from db.queries.experiments import CAMPAIGN, MODEL, RUN, Filter, RunFilter

SIG = FailureSignature.__table__  # type: ignore[attr-defined]
RUN_SIG = RunSignature.__table__  # type: ignore[attr-defined]
CANDIDATE = FailureLinkCandidate.__table__  # type: ignore[attr-defined]
DECISION = FailureLinkDecision.__table__  # type: ignore[attr-defined]
REDUCTION = RunReduction.__table__  # type: ignore[attr-defined]
ISSUE = Issue.__table__  # type: ignore[attr-defined]
REPO = Repository.__table__  # type: ignore[attr-defined]
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


# --- links to upstream issues --------------------------------------------------------------------------------


def issues_for_linking(engine: Engine, repositories: list[str]) -> pd.DataFrame:
    """Every stored issue (mined or known from a coding sheet) of `repositories`: id, repository, number, title,
    body, url."""
    stmt = (
        select(ISSUE.c.id, REPO.c.full_name, ISSUE.c.number, ISSUE.c.title, ISSUE.c.body, ISSUE.c.html_url)
        .select_from(ISSUE.join(REPO, REPO.c.id == ISSUE.c.repository_id))
        .where(REPO.c.full_name.in_(repositories))
        .order_by(ISSUE.c.id)
    )
    return _frame(engine, stmt, ["id", "repository", "number", "title", "body", "url"])


def find_issue(engine: Engine, repositories: tuple[str, ...] | list[str], number: int) -> dict[str, Any] | None:
    """The stored issue `number` of one of `repositories` (the first in their order), or None."""
    stmt = (
        select(ISSUE.c.id, REPO.c.full_name.label("repository"), ISSUE.c.number, ISSUE.c.title)
        .select_from(ISSUE.join(REPO, REPO.c.id == ISSUE.c.repository_id))
        .where(REPO.c.full_name.in_(list(repositories)), ISSUE.c.number == int(number))
    )
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
    rows.sort(key=lambda r: list(repositories).index(r["repository"]))
    return rows[0] if rows else None


def signatures_for_linking(
    engine: Engine, campaign: str | None = None, rule_version: str = DEFAULT_SIGNATURE_RULE
) -> pd.DataFrame:
    """The signatures (id, key, converter, error class, operator, message) that runs of `campaign` (default: any)
    have under `rule_version`."""
    has_runs = select(RUN_SIG.c.signature_id).where(RUN_SIG.c.rule_version == rule_version)
    if campaign is not None:
        runs = select(RUN.c.id).join(CAMPAIGN, CAMPAIGN.c.id == RUN.c.campaign_id).where(CAMPAIGN.c.name == campaign)
        has_runs = has_runs.where(RUN_SIG.c.run_id.in_(runs))
    stmt = (
        select(SIG.c.id, SIG.c.key, SIG.c.converter, SIG.c.error_class, SIG.c.operator, SIG.c.message)
        .where(SIG.c.rule_version == rule_version, SIG.c.id.in_(has_runs))
        .order_by(SIG.c.id)
    )
    return _frame(engine, stmt, ["id", "key", "converter", "error_class", "operator", "message"])


def link_decisions(engine: Engine, rule_version: str = DEFAULT_SIGNATURE_RULE) -> pd.DataFrame:
    """Users' decisions as they apply to the signatures of `rule_version`: a decision made on a signature under
    any rule version applies to every signature of this one that shares a run with it (the newest decision per
    signature and issue wins)."""
    s0, rs0, rs1 = SIG.alias("s0"), RUN_SIG.alias("rs0"), RUN_SIG.alias("rs1")
    stmt = (
        select(
            rs1.c.signature_id,
            DECISION.c.issue_id,
            REPO.c.full_name,
            ISSUE.c.number,
            DECISION.c.decision,
            DECISION.c.decided_at,
            DECISION.c.note,
        )
        .select_from(
            DECISION.join(s0, (s0.c.rule_version == DECISION.c.rule_version) & (s0.c.key == DECISION.c.signature_key))
            .join(rs0, rs0.c.signature_id == s0.c.id)
            .join(rs1, (rs1.c.run_id == rs0.c.run_id) & (rs1.c.rule_version == rule_version))
            .join(ISSUE, ISSUE.c.id == DECISION.c.issue_id)
            .join(REPO, REPO.c.id == ISSUE.c.repository_id)
        )
        .distinct()
    )
    columns = ["signature_id", "issue_id", "repository", "number", "decision", "decided_at", "note"]
    frame = _frame(engine, stmt, columns)
    if frame.empty:
        return frame
    frame = frame.sort_values("decided_at").drop_duplicates(["signature_id", "issue_id"], keep="last")
    return frame.reset_index(drop=True)


def link_candidates(engine: Engine, rule_version: str = DEFAULT_SIGNATURE_RULE) -> pd.DataFrame:
    """The stored candidates of every signature of `rule_version`: rank, score, the issue and its title."""
    stmt = (
        select(
            CANDIDATE.c.signature_id,
            CANDIDATE.c.rank,
            CANDIDATE.c.score,
            CANDIDATE.c.issue_id,
            REPO.c.full_name,
            ISSUE.c.number,
            ISSUE.c.title,
            CANDIDATE.c.method,
        )
        .select_from(
            CANDIDATE.join(SIG, SIG.c.id == CANDIDATE.c.signature_id)
            .join(ISSUE, ISSUE.c.id == CANDIDATE.c.issue_id)
            .join(REPO, REPO.c.id == ISSUE.c.repository_id)
        )
        .where(SIG.c.rule_version == rule_version)
        .order_by(CANDIDATE.c.signature_id, CANDIDATE.c.rank)
    )
    columns = ["signature_id", "rank", "score", "issue_id", "repository", "number", "title", "method"]
    return _frame(engine, stmt, columns)


def upstream(engine: Engine, filters: Filter = None, rule_version: str = DEFAULT_SIGNATURE_RULE) -> pd.DataFrame:
    """Per signature of the filtered runs: "known upstream: owner/name#N (confirmed)", else its candidates not
    rejected ("candidates: #N 0.41, …"), else "none"; with the confirmed issues and candidates as lists."""
    listed = signatures(engine, filters, rule_version)
    ids = _frame(engine, select(SIG.c.id, SIG.c.key).where(SIG.c.rule_version == rule_version), ["id", "key"])
    ids["signature"] = ids["key"].str[:SHORT]
    frame = listed[["signature", "converter", "stage", "operator", "runs"]].merge(ids, on="signature", how="left")
    decisions = link_decisions(engine, rule_version)
    candidates = link_candidates(engine, rule_version)
    rows = []
    for sig in frame.itertuples(index=False):
        mine = decisions[decisions["signature_id"] == sig.id] if not decisions.empty else decisions
        confirmed = [f"{r.repository}#{r.number}" for r in mine.itertuples() if r.decision == "confirmed"]
        rejected = {int(r.issue_id) for r in mine.itertuples() if r.decision == "rejected"}
        cands = candidates[candidates["signature_id"] == sig.id] if not candidates.empty else candidates
        open_ = [f"{r.repository}#{r.number} ({r.score:.2f})" for r in cands.itertuples() if r.issue_id not in rejected]
        if confirmed:
            status = "known upstream: " + ", ".join(f"{c} (confirmed)" for c in confirmed)
        elif open_:
            status = "candidates: " + ", ".join(open_)
        else:
            status = "none"
        rows.append((sig.signature, status, confirmed, open_, len(rejected)))
    links = pd.DataFrame(rows, columns=["signature", "upstream", "confirmed", "candidates", "rejected"])
    return frame.drop(columns=["id", "key"]).merge(links, on="signature", how="left")


def failing_operators(
    engine: Engine, filters: Filter = None, rule_version: str = DEFAULT_SIGNATURE_RULE
) -> pd.DataFrame:
    """Runs per converter × the operator their signature names × requested opset × outcome (signatures without an
    operator are left out)."""
    keys = [SIG.c.converter, SIG.c.operator, RUN.c.opset, RUN.c.status]
    stmt = (
        select(*keys, func.count())
        .select_from(RUN_SIG.join(RUN, RUN.c.id == RUN_SIG.c.run_id).join(SIG, SIG.c.id == RUN_SIG.c.signature_id))
        .where(RUN_SIG.c.rule_version == rule_version, SIG.c.operator.is_not(None))
        .group_by(*keys)
        .order_by(*keys)
    )
    return _frame(
        engine, RunFilter.of(filters).where(stmt), ["converter", "operator", "requested_opset", "outcome", "runs"]
    )


# --- minimal repros of mismatches ------------------------------------------------------------------------------

REDUCTION_COLUMNS = [
    "run_id",
    "campaign",
    "model",
    "converter",
    "opset",
    "status",
    "basis",
    "cause",
    "node_name",
    "operator",
    "matched_values",
    "nodes_before",
    "nodes_after",
    "reduction",
    "seconds",
    "reduced_at",
    "out_dir",
]


def reductions(engine: Engine, filters: Filter = None) -> pd.DataFrame:
    """One row per reduced mismatching run, by run id: its first diverging node and operator, what it was found
    against (basis: source or reference) and the cause (converter, runtime, both), nodes before and after,
    `reduction` = 1 - after/before (None when nothing diverged), seconds taken and the repro folder."""
    stmt = (
        select(
            RUN.c.id,
            CAMPAIGN.c.name,
            MODEL.c.name,
            RUN.c.registry_name,
            RUN.c.opset,
            REDUCTION.c.status,
            REDUCTION.c.basis,
            REDUCTION.c.cause,
            REDUCTION.c.node_name,
            REDUCTION.c.operator,
            REDUCTION.c.matched_values,
            REDUCTION.c.nodes_before,
            REDUCTION.c.nodes_after,
            REDUCTION.c.seconds,
            REDUCTION.c.reduced_at,
            REDUCTION.c.out_dir,
        )
        .select_from(
            REDUCTION.join(RUN, RUN.c.id == REDUCTION.c.run_id)
            .join(CAMPAIGN, CAMPAIGN.c.id == RUN.c.campaign_id)
            .join(MODEL, MODEL.c.id == RUN.c.model_id)
        )
        .order_by(RUN.c.id)
    )
    columns = [c for c in REDUCTION_COLUMNS if c != "reduction"]
    frame = _frame(engine, RunFilter.of(filters).where(stmt), columns)
    frame["reduction"] = [
        None if pd.isna(after) or not before else 1 - float(after) / float(before)
        for before, after in zip(frame["nodes_before"], frame["nodes_after"], strict=True)
    ]
    frame["reduced_at"] = pd.to_datetime(frame["reduced_at"], utc=True)
    return frame[REDUCTION_COLUMNS]


def diverging_operators(engine: Engine, filters: Filter = None) -> pd.DataFrame:
    """Per diverging operator: the reduced runs it is the first diverging node of (what the operator analyses
    use instead of every operator of a mismatching model), their models, and how many the converter caused and
    how many onnxruntime (`runtime`, or both), most runs first."""
    frame = reductions(engine, filters)
    frame = frame[frame["status"] == "reduced"]
    columns = ["operator", "runs", "models", "converter_caused", "runtime_caused"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame.assign(
        conv=(frame["cause"] == "converter").astype(int), rt=frame["cause"].isin(["runtime", "both"]).astype(int)
    )
    out = frame.groupby("operator", as_index=False).agg(
        runs=("run_id", "count"),
        models=("model", "nunique"),
        converter_caused=("conv", "sum"),
        runtime_caused=("rt", "sum"),
    )
    return out.sort_values(["runs", "operator"], ascending=[False, True], ignore_index=True)[columns]


SUMMARY_COLUMNS = [
    "campaign",
    "converter",
    "mismatches",
    "attempted",
    "reduced",
    "share_reduced",
    "against_source",
    "converter_caused",
    "runtime_caused",
    "no_divergence",
    "median_nodes_before",
    "median_nodes_after",
    "median_seconds",
]


def reduction_summary(engine: Engine, filters: Filter = None) -> pd.DataFrame:
    """Per campaign × converter plug-in with at least one reduction: its mismatching runs, how many reduce was run
    on, how many reduced (share of the mismatches), found against the source framework, by cause, with no
    divergence, and the median nodes before → after and seconds of the reduced ones."""
    done = reductions(engine, filters)
    if done.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    stmt = (
        select(CAMPAIGN.c.name, RUN.c.registry_name, func.count())
        .select_from(RUN.join(CAMPAIGN, CAMPAIGN.c.id == RUN.c.campaign_id))
        .where(RUN.c.status == "mismatch", CAMPAIGN.c.name.in_(sorted(set(done["campaign"]))))
        .group_by(CAMPAIGN.c.name, RUN.c.registry_name)
    )
    mismatching = _frame(engine, RunFilter.of(filters).where(stmt), ["campaign", "converter", "mismatches"])
    rows = []
    for (campaign, converter), group in done.groupby(["campaign", "converter"], dropna=False):
        reduced = group[group["status"] == "reduced"]
        found = mismatching[(mismatching["campaign"] == campaign) & (mismatching["converter"] == converter)]
        total = int(found["mismatches"].sum()) if not found.empty else len(group)
        rows.append(
            {
                "campaign": campaign,
                "converter": converter,
                "mismatches": total,
                "attempted": len(group),
                "reduced": len(reduced),
                "share_reduced": len(reduced) / total if total else None,
                "against_source": int((reduced["basis"] == "source").sum()),
                "converter_caused": int((reduced["cause"] == "converter").sum()),
                "runtime_caused": int(reduced["cause"].isin(["runtime", "both"]).sum()),
                "no_divergence": int((group["status"] == "no_divergence").sum()),
                "median_nodes_before": float(reduced["nodes_before"].median()) if len(reduced) else None,
                "median_nodes_after": float(reduced["nodes_after"].median()) if len(reduced) else None,
                "median_seconds": float(group["seconds"].median()),
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


OPERATOR_COLUMNS = [
    "operator",
    "converter",
    "exporter",
    "runs",
    "failures",
    "mismatches",
    "mismatches_any_node",
    "diverging",
    "converter_caused",
    "runtime_caused",
    "failure_rate",
    "mismatch_rate",
]


def operator_failures(engine: Engine, filters: Filter = None, *, diverging: bool = True) -> pd.DataFrame:
    """Study H1 on ONNX operators (per operator × converter × exporter: runs whose produced graph has it, failures,
    mismatches), with a mismatching run that has a reduction counted for its first diverging operator only
    (`diverging=True`) instead of every operator of its model (`mismatches_any_node`, what H1 counted before);
    `diverging` = runs it is the first diverging node of, split by cause."""
    from db.outcomes import FAILURES
    from db.queries.experiments import _onnx_operators

    pairs = _onnx_operators(engine)
    stmt = select(
        pairs.c.run_id,
        pairs.c.operator,
        RUN.c.converter,
        RUN.c.exporter,
        RUN.c.status,
        REDUCTION.c.status,
        REDUCTION.c.operator,
        REDUCTION.c.cause,
    ).select_from(pairs.join(RUN, RUN.c.id == pairs.c.run_id).outerjoin(REDUCTION, REDUCTION.c.run_id == RUN.c.id))
    columns = ["run_id", "operator", "converter", "exporter", "status", "reduction", "diverging_op", "cause"]
    frame = _frame(engine, RunFilter.of(filters).where(stmt), columns)
    if frame.empty:
        return pd.DataFrame(columns=OPERATOR_COLUMNS)
    mismatch = frame["status"] == "mismatch"
    reduced = frame["reduction"] == "reduced"
    is_diverging = reduced & (frame["operator"] == frame["diverging_op"])
    frame["failed"] = frame["status"].isin(FAILURES)
    frame["any_node"] = mismatch
    frame["attributed"] = mismatch & (is_diverging | ~reduced) if diverging else mismatch
    frame["diverging"] = mismatch & is_diverging
    frame["converter_caused"] = frame["diverging"] & (frame["cause"] == "converter")
    frame["runtime_caused"] = frame["diverging"] & frame["cause"].isin(["runtime", "both"])
    out = frame.groupby(["operator", "converter", "exporter"], as_index=False).agg(
        runs=("run_id", "nunique"),
        failures=("failed", "sum"),
        mismatches=("attributed", "sum"),
        mismatches_any_node=("any_node", "sum"),
        diverging=("diverging", "sum"),
        converter_caused=("converter_caused", "sum"),
        runtime_caused=("runtime_caused", "sum"),
    )
    for name in ("runs", "failures", "mismatches", "mismatches_any_node", "diverging"):
        out[name] = out[name].astype(int)
    for name in ("converter_caused", "runtime_caused"):
        out[name] = out[name].astype(int)
    out["failure_rate"] = out["failures"] / out["runs"]
    judged = out["runs"] - out["failures"]
    out["mismatch_rate"] = (out["mismatches"] / judged.where(judged > 0)).astype(float)
    order = ["diverging", "mismatches", "failure_rate", "runs", "operator"]
    out = out.sort_values(order, ascending=[False, False, False, False, True], ignore_index=True)
    return out[OPERATOR_COLUMNS]
