"""Failures against ONNX's evolution: operator changes per ONNX opset release (the study's `onnx_opset_diff.json`)
beside issues per month, their Spearman rank correlation, and the failing operators of campaigns against the
opset that introduced or last changed them. Says plainly when the data is too thin for a conclusion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from db.errors import InteropError

#: fewer overlapping months than this, or fewer dated issues, is too thin to correlate
MIN_MONTHS = 6
MIN_DATED_ISSUES = 20


class EvolutionError(InteropError):
    """The opset diff file cannot be read (the message names the file and entry)."""


def load_opset_diff(path: Path) -> pd.DataFrame:
    """One row per opset: release date, operators added and updated, and how many changed."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EvolutionError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise EvolutionError(f"{path}: expected an object of opsets")
    rows = []
    for key, entry in data.items():
        if not str(key).isdigit() or not isinstance(entry, dict):
            raise EvolutionError(f"{path}: entry {key!r} is not an opset number with an object")
        try:
            date = pd.Timestamp(entry["date"], tz="UTC")
        except (KeyError, ValueError) as exc:
            raise EvolutionError(f"{path}: opset {key}: field 'date' is missing or not a date") from exc
        added, updated = list(entry.get("added") or []), list(entry.get("updated") or [])
        rows.append((int(key), date, added, updated, len(added) + len(updated)))
    frame = pd.DataFrame(rows, columns=["opset", "date", "added", "updated", "changes"])
    return frame.sort_values("opset", ignore_index=True)


def monthly_changes(diff: pd.DataFrame) -> pd.Series:
    """Operators added or updated per month of release (months without a release are 0 between the first and
    the last release)."""
    months = diff.assign(month=diff["date"].dt.strftime("%Y-%m")).groupby("month")["changes"].sum()
    full = pd.period_range(min(months.index), max(months.index), freq="M").strftime("%Y-%m")
    return months.reindex(full, fill_value=0).astype(int)


def operator_history(diff: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per operator: the opset that introduced it and every opset that changed it."""
    history: dict[str, dict[str, Any]] = {}
    for row in diff.itertuples(index=False):
        for op in row.added:
            history.setdefault(op, {"introduced": row.opset, "changed": []})
        for op in row.updated:
            history.setdefault(op, {"introduced": None, "changed": []})["changed"].append(row.opset)
    return history


def operators_against_opsets(failing: pd.DataFrame, diff: pd.DataFrame) -> pd.DataFrame:
    """Failing operators (per converter × operator × requested opset: runs) with the opset that introduced the
    operator, the last opset at or below the requested one that changed it, and how many releases ago that was."""
    history = operator_history(diff)
    columns = ["converter", "operator", "requested_opset", "runs", "introduced", "last_changed", "changed_opsets_ago"]
    if failing.empty:
        return pd.DataFrame(columns=columns)
    per = failing.groupby(["converter", "operator", "requested_opset"], as_index=False)["runs"].sum()
    rows = []
    for r in per.itertuples(index=False):
        known = history.get(str(r.operator))
        introduced = known["introduced"] if known else None
        changes = [o for o in ([introduced] if introduced else []) + (known["changed"] if known else [])]
        before = [o for o in changes if o is not None and o <= int(r.requested_opset)]
        last = max(before) if before else None
        ago = int(r.requested_opset) - last if last is not None else None
        rows.append((r.converter, r.operator, int(r.requested_opset), int(r.runs), introduced, last, ago))
    out = pd.DataFrame(rows, columns=columns)
    for name in ("introduced", "last_changed", "changed_opsets_ago"):
        out[name] = out[name].astype("Int64")
    return out.sort_values(["runs", "operator"], ascending=[False, True], ignore_index=True)


@dataclass
class Trend:
    """Issues per month against operator changes per month: the aligned series and their rank correlation."""

    series: pd.DataFrame  # month, changes, issues
    months: int
    dated_issues: int
    rho: float | None = None
    p_value: float | None = None
    verdict: str = ""
    notes: list[str] = field(default_factory=list)


def correlate(issues: pd.DataFrame, changes: pd.Series, undated: int = 0) -> Trend:
    """Spearman's ρ (scipy) between monthly issue counts (summed over the repositories given) and monthly operator
    changes, over the months both series cover; too few months or dated issues give no ρ and say why."""
    from scipy.stats import spearmanr

    per_month = issues.groupby("month")["issues"].sum() if not issues.empty else pd.Series(dtype=int)
    dated = int(per_month.sum())
    notes = []
    if undated:
        notes.append(f"{undated:,} issues have no creation date (known only from a coding sheet until mined)")
    if per_month.empty:
        empty = pd.DataFrame(columns=["month", "changes", "issues"])
        return Trend(empty, 0, 0, verdict="too thin for a conclusion: no issue has a creation date", notes=notes)
    span = pd.period_range(min(per_month.index), max(per_month.index), freq="M").strftime("%Y-%m")
    per_month = per_month.reindex(span, fill_value=0)
    start, end = max(per_month.index[0], changes.index[0]), min(per_month.index[-1], changes.index[-1])
    months = [m for m in per_month.index if start <= m <= end]
    series = pd.DataFrame({"month": months, "changes": changes.reindex(months).fillna(0).astype(int).values}).assign(
        issues=per_month.reindex(months).astype(int).values
    )
    trend = Trend(series, len(months), dated, notes=notes)
    if len(months) < MIN_MONTHS or dated < MIN_DATED_ISSUES:
        trend.verdict = (
            f"too thin for a conclusion: {len(months)} overlapping months and {dated} dated issues "
            f"(needs ≥ {MIN_MONTHS} months and ≥ {MIN_DATED_ISSUES} issues)"
        )
        return trend
    if series["changes"].nunique() < 2 or series["issues"].nunique() < 2:
        trend.verdict = "no correlation computable: one of the series is constant over the overlapping months"
        return trend
    result = spearmanr(series["changes"], series["issues"])
    trend.rho, trend.p_value = float(result.statistic), float(result.pvalue)
    trend.verdict = (
        f"Spearman ρ = {trend.rho:.3f} (p = {trend.p_value:.3g}) over {len(months)} months and {dated} issues"
        + ("" if trend.p_value < 0.05 else ": no evidence of a monotone relation at the 5% level")
    )
    return trend


def evolution(engine: Engine, diff_path: Path, campaign: str | None = None) -> dict[str, Any]:
    """Everything the report and the app show: releases, the trend per repository and for all of them together,
    coded failures per month, and the campaign's failing operators against their opsets."""
    from db.queries import evolution as eq
    from db.queries import failures as fq

    diff = load_opset_diff(diff_path)
    changes = monthly_changes(diff)
    dates = eq.issue_dates(engine)
    issues = eq.monthly_issues(engine)
    trends = {"all": correlate(issues, changes, int(dates["undated"].sum()) if not dates.empty else 0)}
    for repo in sorted(set(dates["repository"])):
        undated = int(dates.loc[dates["repository"] == repo, "undated"].sum())
        trends[repo] = correlate(issues[issues["repository"] == repo], changes, undated)
    failing = fq.failing_operators(engine, campaign)
    return {
        "releases": diff.assign(
            date=diff["date"].dt.strftime("%Y-%m-%d"),
            added=diff["added"].map(len),
            updated=diff["updated"].map(len),
        ),
        "changes": changes,
        "issue_dates": dates,
        "monthly_issues": issues,
        "monthly_coded": eq.monthly_coded(engine),
        "trends": trends,
        "operators": operators_against_opsets(failing, diff),
    }
