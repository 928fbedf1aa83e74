"""The one way a final label is written: every decision (new, changed, withdrawn) leaves a history row with who
decided, when, the previous value, the reviewer's note and the evidence weighed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from db.models.labeling import AdjudicationHistory, FinalLabel
from db.types import utcnow


@dataclass(frozen=True)
class Decision:
    """What a final label should be: its code, who or what decided it, the note, and the evidence."""

    code_id: int
    decided_by: str
    note: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def final_key(item_id: int, dimension_id: int, code_id: int, multi: Collection[int]) -> tuple[int, ...]:
    """What identifies a final label: (item, dimension), or (item, dimension, code) for a multi-label dimension
    (one final label per theme: a theme is added or withdrawn, never "changed" into another)."""
    return (item_id, dimension_id, code_id) if dimension_id in multi else (item_id, dimension_id)


def write_final_labels(
    session: Session,
    round_id: int,
    wanted: Mapping[tuple[int, ...], Decision],
    run_id: int | None = None,
    withdrawn_because: str = "no longer decided",
    multi: Collection[int] = frozenset(),
) -> Counter[str]:
    """Make the round's final labels exactly `wanted` (`final_key` → decision; `multi` the multi-label dimension
    ids); returns counts of new / changed / unchanged / withdrawn. A decision whose code, decider and note stay
    the same is unchanged (its evidence is refreshed); every other difference is recorded in
    `adjudication_history`."""
    existing = {
        final_key(f.item_id, f.dimension_id, f.code_id, multi): f
        for f in session.exec(select(FinalLabel).where(FinalLabel.round_id == round_id)).all()
    }
    counts: Counter[str] = Counter()
    now = utcnow()

    def history(key: tuple[int, ...], action: str, new: Decision | None, old: FinalLabel | None) -> None:
        session.add(
            AdjudicationHistory(
                round_id=round_id,
                item_id=key[0],
                dimension_id=key[1],
                action=action,
                code_id=new.code_id if new else None,
                decided_by=new.decided_by if new else None,
                note=new.note if new else None,
                previous_code_id=old.code_id if old else None,
                previous_decided_by=old.decided_by if old else None,
                previous_note=old.note if old else None,
                detail=new.detail
                if new
                else {"reason": withdrawn_because, "previous_detail": old.detail if old else {}},
                run_id=run_id,
                decided_at=now,
            )
        )

    for key, decision in wanted.items():
        row = existing.pop(key, None)
        if row is None:
            session.add(
                FinalLabel(
                    round_id=round_id,
                    item_id=key[0],
                    dimension_id=key[1],
                    code_id=decision.code_id,
                    decided_by=decision.decided_by,
                    note=decision.note,
                    detail=decision.detail,
                    decided_at=now,
                )
            )
            history(key, "new", decision, None)
            counts["new"] += 1
        elif (row.code_id, row.decided_by, row.note) != (decision.code_id, decision.decided_by, decision.note):
            history(key, "changed", decision, row)
            row.code_id, row.decided_by, row.note = decision.code_id, decision.decided_by, decision.note
            row.detail, row.decided_at = decision.detail, now
            session.add(row)
            counts["changed"] += 1
        else:
            if row.detail != decision.detail:
                row.detail = decision.detail
                session.add(row)
            counts["unchanged"] += 1
    for key, row in existing.items():
        history(key, "withdrawn", None, row)
        session.delete(row)
        counts["withdrawn"] += 1
    session.flush()
    return counts


def evidence_text(detail: object) -> str:
    """A final label's evidence in one line: `alice 2, bob 4 (disagreed)`, or the sheet it came from."""
    if not isinstance(detail, dict):
        return ""
    if detail.get("file"):
        return f"sheet {detail['file']}"
    given = ", ".join(
        f"{c.get('coder')} {'–' if c.get('code') is None else c.get('code')}" for c in detail.get("codings") or []
    )
    return given + (" (disagreed)" if detail.get("disagreement") else "")
