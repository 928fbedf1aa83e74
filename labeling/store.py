"""Write side of labeling through the db models: codebook versions, items, coders, rounds, codings."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from db.errors import InteropError
from db.models.github import Issue, Repository
from db.models.labeling import (
    Codebook,
    CodebookCode,
    CodebookDimension,
    CodebookVersion,
    Coder,
    Coding,
    CodingValue,
    LabelItem,
    LabelRound,
)
from labeling.codebook import CodebookSpec

ISSUE_URL = re.compile(r"^https?://github\.com/([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)/(?:issues|pull)/(\d+)/?(?:[#?].*)?$")


class LabelingError(InteropError):
    """A problem the user can fix (unknown round, codebook mismatch, …); one line, no secrets."""


@dataclass(frozen=True)
class LoadedCodebook:
    """A codebook version with the row ids needed to store codes against it."""

    version_id: int
    version: int
    name: str
    spec: CodebookSpec
    dimension_ids: dict[str, int]
    code_ids: dict[tuple[str, int], int]
    created: bool = False

    @property
    def code_by_id(self) -> dict[int, tuple[str, int]]:
        return {v: k for k, v in self.code_ids.items()}


def _loaded(session: Session, version: CodebookVersion, name: str, created: bool) -> LoadedCodebook:
    dims = session.exec(select(CodebookDimension).where(CodebookDimension.version_id == version.id)).all()
    dim_ids = {d.key: d.id or 0 for d in dims}
    key_by_dim = {d.id: d.key for d in dims}
    codes = session.exec(select(CodebookCode).where(col(CodebookCode.dimension_id).in_(list(key_by_dim)))).all()
    code_ids = {(key_by_dim[c.dimension_id], c.code): c.id or 0 for c in codes}
    return LoadedCodebook(
        version.id or 0, version.version, name, CodebookSpec.from_json(version.spec), dim_ids, code_ids, created
    )


def store_codebook(session: Session, spec: CodebookSpec, source: str | None = None) -> LoadedCodebook:
    """Store `spec` as a new version of its codebook, or return the identical version already stored."""
    book = session.exec(select(Codebook).where(Codebook.name == spec.name)).first()
    if book is None:
        book = Codebook(name=spec.name)
        session.add(book)
        session.flush()
    digest = spec.content_hash()
    same = session.exec(
        select(CodebookVersion).where(CodebookVersion.codebook_id == book.id, CodebookVersion.content_hash == digest)
    ).first()
    if same is not None:
        return _loaded(session, same, spec.name, created=False)
    last = session.exec(select(func.max(CodebookVersion.version)).where(CodebookVersion.codebook_id == book.id)).one()
    version = CodebookVersion(
        codebook_id=book.id or 0,
        version=(last or 0) + 1,
        declared_version=spec.declared_version,
        content_hash=digest,
        source=source,
        spec=spec.to_json(),
    )
    session.add(version)
    session.flush()
    for pos, dim in enumerate(spec.dimensions):
        row = CodebookDimension(
            version_id=version.id or 0,
            key=dim.key,
            position=pos,
            question=dim.question,
            column=dim.column,
            label_column=dim.label_column,
            required=dim.required,
            required_when={k: list(v) for k, v in dim.required_when.items()} or None,
            multi=dim.multi,
        )
        session.add(row)
        session.flush()
        for code in dim.codes.values():
            session.add(
                CodebookCode(
                    dimension_id=row.id or 0,
                    code=code.code,
                    label=code.label,
                    description=code.description,
                    aliases=list(code.aliases),
                    unused=code.unused,
                )
            )
    session.flush()
    return _loaded(session, version, spec.name, created=True)


def codebook_version(session: Session, name: str | None = None, version: int | None = None) -> LoadedCodebook:
    """A stored codebook version: the newest of `name` (or of the only codebook) unless `version` is given."""
    books = session.exec(select(Codebook)).all()
    if name is None:
        if not books:
            raise LabelingError("no codebook loaded: run `interop label codebook load FILE` first")
        if len(books) > 1:
            names = ", ".join(sorted(b.name for b in books))
            raise LabelingError(f"several codebooks are loaded ({names}): choose one with --codebook")
        book = books[0]
    else:
        found = [b for b in books if b.name == name]
        if not found:
            raise LabelingError(f"no codebook named {name!r} is loaded")
        book = found[0]
    query = select(CodebookVersion).where(CodebookVersion.codebook_id == book.id)
    query = (
        query.where(col(CodebookVersion.version) == version)
        if version
        else query.order_by(col(CodebookVersion.version).desc())
    )
    row = session.exec(query).first()
    if row is None:
        raise LabelingError(f"codebook {book.name!r} has no version {version}")
    return _loaded(session, row, book.name, created=False)


def codebook_for_version_id(session: Session, version_id: int) -> LoadedCodebook:
    row = session.get(CodebookVersion, version_id)
    if row is None:
        raise LabelingError(f"codebook version id {version_id} does not exist")
    book = session.get(Codebook, row.codebook_id)
    return _loaded(session, row, book.name if book else "?", created=False)


def round_codebook(session: Session, rnd: LabelRound) -> LoadedCodebook:
    """The codebook version `rnd` was started with: its codings stay on it whatever was loaded since."""
    return codebook_for_version_id(session, rnd.codebook_version_id)


def codebook_for_round(session: Session, round_name: str, codebook: str | None = None) -> LoadedCodebook:
    """The round's own codebook version if the round exists, else the newest of `codebook` (for a new round)."""
    row = session.exec(select(LabelRound).where(LabelRound.name == round_name)).first()
    if row is None:
        return codebook_version(session, codebook)
    book = round_codebook(session, row)
    if codebook is not None and codebook != book.name:
        raise LabelingError(f"round {round_name!r} is coded with codebook {book.name!r}, not {codebook!r}")
    return book


def parse_issue_url(url: str) -> tuple[str, int] | None:
    """(`owner/name`, number) of a GitHub issue URL, or None."""
    match = ISSUE_URL.match(str(url).strip())
    return (match.group(1), int(match.group(2))) if match else None


def ensure_issue(
    session: Session,
    full_name: str,
    number: int,
    title: str | None = None,
    url: str | None = None,
    description: str | None = None,
) -> Issue:
    """The issue row for repository+number; created un-hydrated (known only by URL) when new. `title` and
    `description` come from a coding sheet: kept as the sheet's text (the title also stands in until mined)."""
    repo = session.exec(select(Repository).where(Repository.full_name == full_name)).first()
    if repo is None:
        repo = Repository(full_name=full_name)
        session.add(repo)
        session.flush()
    issue = session.exec(select(Issue).where(Issue.repository_id == repo.id, Issue.number == number)).first()
    if issue is None:
        issue = Issue(repository_id=repo.id or 0, number=number, title=title, html_url=url, hydrated=False)
        session.add(issue)
        session.flush()
    elif not issue.hydrated and title and not issue.title:
        issue.title = title
        session.add(issue)
    if title and issue.sheet_title != title:
        issue.sheet_title = title
        session.add(issue)
    if description and issue.sheet_description != description:
        issue.sheet_description = description
        session.add(issue)
    return issue


def item_ref_for_issue(full_name: str, number: int) -> str:
    return f"{full_name}#{number}"


def ensure_issue_item(session: Session, issue: Issue, full_name: str | None = None) -> LabelItem:
    """The label item standing for `issue` (one per issue)."""
    item = session.exec(select(LabelItem).where(LabelItem.issue_id == issue.id)).first()
    if item is None:
        if full_name is None:
            repo = session.get(Repository, issue.repository_id)
            full_name = repo.full_name if repo else str(issue.repository_id)
        item = LabelItem(kind="issue", ref=item_ref_for_issue(full_name, issue.number), issue_id=issue.id)
        session.add(item)
        session.flush()
    return item


def ensure_coder(session: Session, name: str) -> Coder:
    coder = session.exec(select(Coder).where(Coder.name == name)).first()
    if coder is None:
        coder = Coder(name=name)
        session.add(coder)
        session.flush()
    return coder


def get_round(session: Session, name: str) -> LabelRound:
    row = session.exec(select(LabelRound).where(LabelRound.name == name)).first()
    if row is None:
        known = ", ".join(sorted(r.name for r in session.exec(select(LabelRound)).all())) or "none"
        raise LabelingError(f"no round named {name!r} (known rounds: {known})")
    return row


def ensure_round(
    session: Session,
    name: str,
    book: LoadedCodebook,
    source: str,
    sample_id: int | None = None,
    params: dict[str, Any] | None = None,
) -> LabelRound:
    """The round `name`; a round keeps the codebook version it was started with."""
    row = session.exec(select(LabelRound).where(LabelRound.name == name)).first()
    if row is None:
        row = LabelRound(
            name=name, codebook_version_id=book.version_id, source=source, sample_id=sample_id, params=params or {}
        )
        session.add(row)
        session.flush()
        return row
    if row.codebook_version_id != book.version_id:
        used = round_codebook(session, row)
        raise LabelingError(
            f"round {name!r} is coded with codebook {used.name!r} v{used.version}; the codebook is now "
            f"v{book.version}: start a new round (old codings keep their version)"
        )
    if row.source != source:
        raise LabelingError(f"round {name!r} already exists as a {row.source} round")
    if sample_id is not None and row.sample_id not in (None, sample_id):
        raise LabelingError(f"round {name!r} belongs to another sample")
    return row


#: A coding's values: dimension id → code id, or several code ids for a multi-label dimension.
Values = Mapping[int, int | Sequence[int]]


def value_pairs(values: Values) -> set[tuple[int, int]]:
    """(dimension id, code id) pairs of a coding's values, one per code: how they are compared and stored."""
    out: set[tuple[int, int]] = set()
    for dim_id, codes in values.items():
        for code_id in [codes] if isinstance(codes, int) else codes:
            out.add((dim_id, code_id))
    return out


def _value_rows(coding_id: int, pairs: Iterable[tuple[int, int]]) -> list[CodingValue]:
    return [CodingValue(coding_id=coding_id, dimension_id=d, code_id=c) for d, c in sorted(pairs)]


def upsert_coding(
    session: Session,
    round_id: int,
    item_id: int,
    coder_id: int,
    values: Values,
    *,
    valid: bool = True,
    problems: list[str] | None = None,
    **fields: Any,
) -> tuple[Coding, str]:
    """Insert or replace one coder's coding of an item; returns it and `new` / `changed` / `unchanged`."""
    coding = session.exec(
        select(Coding).where(Coding.round_id == round_id, Coding.item_id == item_id, Coding.coder_id == coder_id)
    ).first()
    problems = problems or []
    pairs = value_pairs(values)
    if coding is None:
        coding = Coding(round_id=round_id, item_id=item_id, coder_id=coder_id, valid=valid, problems=problems, **fields)
        session.add(coding)
        session.flush()
        session.add_all(_value_rows(coding.id or 0, pairs))
        return coding, "new"
    old = {
        (v.dimension_id, v.code_id)
        for v in session.exec(select(CodingValue).where(CodingValue.coding_id == coding.id)).all()
    }
    changed = (
        old != pairs
        or coding.valid != valid
        or list(coding.problems) != problems
        or any(getattr(coding, k) != v for k, v in fields.items())
    )
    if not changed:
        return coding, "unchanged"
    for v in session.exec(select(CodingValue).where(CodingValue.coding_id == coding.id)).all():
        session.delete(v)
    session.flush()
    coding.valid, coding.problems = valid, problems
    for k, v in fields.items():
        setattr(coding, k, v)
    session.add(coding)
    session.add_all(_value_rows(coding.id or 0, pairs))
    return coding, "changed"


@dataclass
class CodingEntry:
    """One coding to store: the item, its values (dimension id → code id) and the coding's other fields."""

    item_id: int
    values: Values
    valid: bool
    problems: list[str]
    fields: dict[str, Any]


def bulk_upsert_codings(session: Session, round_id: int, coder_id: int, entries: list[CodingEntry]) -> dict[int, str]:
    """`upsert_coding` for many items of one coder with three queries instead of one per item (pulls of
    thousands of annotations); returns item → new / changed / unchanged."""
    from sqlalchemy import delete

    current = {
        c.item_id: c
        for c in session.exec(select(Coding).where(Coding.round_id == round_id, Coding.coder_id == coder_id)).all()
    }
    old: dict[int, set[tuple[int, int]]] = {}
    for coding_id, dim_id, code_id in session.exec(
        select(CodingValue.coding_id, CodingValue.dimension_id, CodingValue.code_id)
        .join(Coding, col(Coding.id) == col(CodingValue.coding_id))
        .where(Coding.round_id == round_id, Coding.coder_id == coder_id)
    ).all():
        old.setdefault(coding_id, set()).add((dim_id, code_id))
    states: dict[int, str] = {}
    pending: list[tuple[Coding, set[tuple[int, int]]]] = []
    replaced: list[int] = []
    for e in entries:
        coding = current.get(e.item_id)
        if coding is None:
            coding = Coding(
                round_id=round_id, item_id=e.item_id, coder_id=coder_id, valid=e.valid, problems=e.problems, **e.fields
            )
            session.add(coding)
            current[e.item_id] = coding
            pending.append((coding, value_pairs(e.values)))
            states[e.item_id] = "new"
            continue
        same = (
            old.get(coding.id or 0, set()) == value_pairs(e.values)
            and coding.valid == e.valid
            and list(coding.problems) == e.problems
            and all(getattr(coding, k) == v for k, v in e.fields.items())
        )
        if same:
            states[e.item_id] = "unchanged"
            continue
        coding.valid, coding.problems = e.valid, e.problems
        for k, v in e.fields.items():
            setattr(coding, k, v)
        session.add(coding)
        replaced.append(coding.id or 0)
        pending.append((coding, value_pairs(e.values)))
        states[e.item_id] = "changed"
    if replaced:
        session.execute(delete(CodingValue).where(col(CodingValue.coding_id).in_(replaced)))
    session.flush()
    session.add_all([row for c, pairs in pending for row in _value_rows(c.id or 0, pairs)])
    session.flush()
    return states
