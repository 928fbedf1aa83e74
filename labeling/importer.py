"""Store a workbook's rounds in one transaction: issues by URL, items, coders, codings, and study finals."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.engine import session_scope
from db.ingest import recorded_run
from db.models.labeling import Coding, LabelRound
from labeling.finals import Decision, write_final_labels
from labeling.sheets import SheetError, SheetRound, read_workbook
from labeling.store import (
    LabelingError,
    LoadedCodebook,
    codebook_for_version_id,
    codebook_version,
    ensure_coder,
    ensure_issue,
    ensure_issue_item,
    ensure_round,
    round_codebook,
    upsert_coding,
)


@dataclass
class ImportResult:
    """What one import did, per round (for the CLI summary and the ingest_run row)."""

    rounds: list[dict[str, object]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # sheets that are not coding sheets at all


def _store_round(session: Session, book: LoadedCodebook, sheet_round: SheetRound, file: Path) -> dict[str, object]:
    params = {"file": file.name, "sheets": sheet_round.sheets, "kind": sheet_round.kind}
    rnd = ensure_round(session, sheet_round.name, book, "sheet", params=params)
    if rnd.params != params:
        rnd.params = params
        session.add(rnd)
    counts = {"new": 0, "changed": 0, "unchanged": 0, "removed": 0}
    kept: set[int] = set()
    items_by_key: dict[tuple[str, int], int] = {}
    finals: dict[tuple[int, int], int] = {}

    for c in sheet_round.codings:
        issue = ensure_issue(session, c.repository, c.number, c.title, c.url, c.note)
        item = ensure_issue_item(session, issue, c.repository)
        items_by_key[(c.repository, c.number)] = item.id or 0
        coder = ensure_coder(session, c.coder)
        values = {book.dimension_ids[k]: book.code_ids[(k, v)] for k, v in c.codes.items()}
        coding, state = upsert_coding(
            session, rnd.id or 0, item.id or 0, coder.id or 0, values, source_ref=c.where, note=c.note
        )
        counts[state] += 1
        kept.add(coding.id or 0)
        if sheet_round.kind == "final":
            for dim_id, code_id in values.items():
                finals[(item.id or 0, dim_id)] = code_id
    for old in session.exec(select(Coding).where(Coding.round_id == rnd.id)).all():
        if old.id not in kept:
            session.delete(old)
            counts["removed"] += 1
    finals_changed = 0
    if sheet_round.kind == "final":
        decisions: dict[tuple[int, ...], Decision] = {
            key: Decision(code_id, "sheet", detail={"file": file.name}) for key, code_id in finals.items()
        }
        changes = write_final_labels(session, rnd.id or 0, decisions, withdrawn_because=f"not in {file.name}")
        finals_changed = changes["new"] + changes["changed"] + changes["withdrawn"]
    session.flush()
    return {
        "round": rnd.name,
        "kind": sheet_round.kind,
        "sheets": sheet_round.sheets,
        "coders": sheet_round.coders,
        "items": len(items_by_key),
        "codings": len(sheet_round.codings),
        "cross_checked": sheet_round.cross_checked,
        "finals_changed": finals_changed,
        "sheet_stats": {name: asdict(stats) for name, stats in sheet_round.stats.items()},
        "dimensions": sorted(
            {k for stats in sheet_round.stats.values() for k in stats.dimensions}, key=book.spec.keys.index
        ),
        "required_absent": [
            d.key
            for d in book.spec.dimensions
            if d.required and not any(d.key in s.dimensions for s in sheet_round.stats.values())
        ],
        **counts,
    }


def _rounds_on_their_codebooks(
    session: Session,
    path: Path,
    book: LoadedCodebook,
    sheets: list[str] | None,
    round_name: str | None,
    skipped: list[str] | None = None,
) -> list[tuple[SheetRound, LoadedCodebook]]:
    """Each round of the workbook read with the codebook version it was started with (an existing round keeps
    its own, even after a newer version was loaded); new rounds take `book`."""
    read: dict[int, list[SheetRound] | SheetError] = {}
    not_coding: dict[int, list[str]] = {}

    def rounds_with(version: LoadedCodebook) -> list[SheetRound] | SheetError:
        if version.version_id not in read:
            not_coding[version.version_id] = []
            try:
                read[version.version_id] = read_workbook(
                    path, version.spec, sheets, round_name, not_coding[version.version_id]
                )
            except SheetError as exc:
                read[version.version_id] = exc
        return read[version.version_id]

    # which rounds the workbook holds: read with `book`, or with a version an earlier import of it used
    earlier = [
        round_codebook(session, r)
        for r in session.exec(select(LabelRound).where(LabelRound.source == "sheet")).all()
        if r.params.get("file") == path.name
    ]
    first = found = rounds_with(book)
    for version in earlier:
        if not isinstance(found, SheetError):
            break
        found = rounds_with(version)
    if isinstance(found, SheetError):
        raise first if isinstance(first, SheetError) else found  # what the chosen version finds wrong
    out: list[tuple[SheetRound, LoadedCodebook]] = []
    for name in [r.name for r in found]:
        existing = session.exec(select(LabelRound).where(LabelRound.name == name)).first()
        own = book if existing is None else round_codebook(session, existing)
        if own.name != book.name:
            raise LabelingError(f"round {name!r} is coded with codebook {own.name!r}, not {book.name!r}")
        mine = rounds_with(own)
        if isinstance(mine, SheetError) and existing is None:
            raise mine
        if isinstance(mine, SheetError):
            raise SheetError(
                f"{mine} (round {name!r} keeps codebook {own.name!r} v{own.version}; import into a "
                "new round with --round to use another version)"
            )
        match = next((r for r in mine if r.name == name), None)
        if match is None:
            raise SheetError(
                f"{path.name}: round {name!r} cannot be read with its codebook {own.name!r} "
                f"v{own.version}; import into a new round with --round"
            )
        out.append((match, own))
    if skipped is not None:
        skipped.extend(not_coding.get(book.version_id) or next(iter(not_coding.values()), []))
    return out


def import_workbook(
    engine: Engine,
    path: str | Path,
    codebook: str | None = None,
    sheets: list[str] | None = None,
    round_name: str | None = None,
) -> ImportResult:
    """Read the whole workbook first, then write every round in one transaction (all or nothing)."""
    path = Path(path)
    result = ImportResult()
    with Session(engine) as session:
        book = codebook_version(session, codebook)
        rounds = _rounds_on_their_codebooks(session, path, book, sheets, round_name, result.skipped)
    params = {
        "file": str(path),
        "codebook": book.name,
        "sheets": sheets,
        "codebook_versions": {r.name: b.version for r, b in rounds},
    }
    with recorded_run(engine, "label-import-sheet", params) as log, session_scope(engine) as session:
        for sheet_round, round_book in rounds:
            summary = _store_round(session, codebook_for_version_id(session, round_book.version_id), sheet_round, path)
            result.rounds.append(summary)
            for key in ("codings", "new", "changed", "unchanged", "removed"):
                log.add(key, int(summary[key]))  # type: ignore[call-overload]
            stats = summary["sheet_stats"].values()  # type: ignore[attr-defined]
            log.add("rows_read", sum(int(s["rows"]) for s in stats))
            log.add("codes_stored", sum(int(s["codes"]) for s in stats))
        log.parameters["sheets_read"] = {
            name: stats
            for summary in result.rounds
            for name, stats in summary["sheet_stats"].items()  # type: ignore[attr-defined]
        }
        if result.skipped:
            log.parameters["sheets_skipped"] = list(result.skipped)
    return result
