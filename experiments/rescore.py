"""Re-judge stored runs at a new tolerance from their raw comparison numbers, without re-running anything."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from db.errors import InteropError
from db.models.experiments import Campaign, ConversionRun, RunOutcome, RunOutput
from db.outcomes import JUDGED
from experiments.compare import RTOL_GRID, output_passes


class RescoreError(InteropError):
    """The runs cannot be re-judged as asked (negative tolerance, unknown campaign, an rtol that is not stored)."""


#: the kind of campaign run here (the others are historical imports)
LIVE = "live"


def rescore(engine: Engine, atol: float, rtol: float, campaign: str | None = None) -> dict[str, int]:
    """Set passed/mismatch of the compared runs (one transaction); returns judged/passed/mismatch/changed.

    Without `campaign` only live campaigns are re-judged: a historical import keeps the study's verdicts
    unless it is named."""
    if atol < 0 or rtol < 0:
        raise RescoreError("tolerances must be >= 0")
    counts = {"judged": 0, "passed": 0, "mismatch": 0, "changed": 0}
    with Session(engine) as s:
        stmt = (
            select(ConversionRun)
            .join(Campaign, col(Campaign.id) == col(ConversionRun.campaign_id))
            .where(col(ConversionRun.status).in_(sorted(JUDGED)))
        )
        if campaign is not None:
            if s.exec(select(Campaign.id).where(Campaign.name == campaign)).first() is None:
                raise RescoreError(f"no campaign named {campaign!r}")
            stmt = stmt.where(Campaign.name == campaign)
        else:
            stmt = stmt.where(Campaign.kind == LIVE)
        runs = list(s.exec(stmt))
        outputs: dict[int, list[dict[str, Any]]] = defaultdict(list)
        ids = [r.id for r in runs]
        for start in range(0, len(ids), 500):
            for out in s.exec(select(RunOutput).where(col(RunOutput.run_id).in_(ids[start : start + 500]))):
                outputs[out.run_id].append(out.model_dump())
        for run in runs:
            rows = outputs.get(int(run.id or 0), [])
            if not rows:
                continue  # historical runs carry a verdict but no raw numbers
            try:
                ok = all(output_passes(r, atol, rtol) for r in rows)
            except ValueError as exc:
                grid = ", ".join(f"{g:g}" for g in RTOL_GRID)
                name = s.get(Campaign, run.campaign_id).name  # type: ignore[union-attr]
                raise RescoreError(
                    f"run {run.id} of campaign {name!r} stores no numbers for rtol {rtol:g}; exact "
                    f"rescoring needs rtol in {{{grid}}} or the campaign's own rtol (historical "
                    f"imports: 0), or choose campaigns with --campaign"
                ) from exc
            status = RunOutcome.passed if ok else RunOutcome.mismatch
            counts["judged"] += 1
            counts[str(status)] += 1
            if run.status != status:
                counts["changed"] += 1
            run.status, run.atol, run.rtol = str(status), atol, rtol
            s.add(run)
        s.commit()
    return counts
