"""Codings written straight through the db models: two coders, one disagreement, an invalid coding, finals."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from db.models import (
    Codebook,
    CodebookCode,
    CodebookDimension,
    CodebookVersion,
    Coder,
    Coding,
    CodingValue,
    FinalLabel,
    Issue,
    LabelItem,
    LabelRound,
    Repository,
)

T = datetime(2025, 3, 1, 12, tzinfo=UTC)


def seed_codings(engine: Engine) -> None:
    """Round r1 with dimensions symptom and cause: an issue coded by alice and bob (they disagree on cause), a
    survey answer coded by alice, bob's invalid coding of it, and the issue's final labels."""
    with Session(engine) as s:
        repo = Repository(full_name="acme/conv", first_seen_at=T)
        book = Codebook(name="cb")
        s.add_all([repo, book])
        s.flush()
        issue = Issue(repository_id=repo.id or 0, number=42, hydrated=True)
        version = CodebookVersion(codebook_id=book.id or 0, version=1, content_hash="h")
        s.add_all([issue, version])
        s.flush()
        dims = {
            k: CodebookDimension(version_id=version.id or 0, key=k, position=p)
            for p, k in enumerate(("symptom", "cause"))
        }
        s.add_all(dims.values())
        s.flush()
        codes = {
            (k, c): CodebookCode(dimension_id=d.id or 0, code=c, label=f"{k} {c}")
            for k, d in dims.items()
            for c in (1, 2)
        }
        rnd = LabelRound(name="r1", codebook_version_id=version.id or 0, source="sheet")
        items = [
            LabelItem(kind="issue", ref="acme/conv#42", issue_id=issue.id),
            LabelItem(kind="survey_answer", ref="s1:R_1:Q8"),
        ]
        coders = [Coder(name="alice"), Coder(name="bob")]
        s.add_all([*codes.values(), rnd, *items, *coders])
        s.flush()

        def coding(item: LabelItem, coder: Coder, valid: bool, **values: int) -> None:
            row = Coding(round_id=rnd.id or 0, item_id=item.id or 0, coder_id=coder.id or 0, valid=valid, updated_at=T)
            s.add(row)
            s.flush()
            for key, code in values.items():
                s.add(
                    CodingValue(coding_id=row.id or 0, dimension_id=dims[key].id or 0, code_id=codes[key, code].id or 0)
                )

        coding(items[0], coders[0], True, symptom=1, cause=1)
        coding(items[0], coders[1], True, symptom=1, cause=2)
        coding(items[1], coders[0], True, symptom=2)
        coding(items[1], coders[1], False)
        for key, code, by in (("symptom", 1, "agreement"), ("cause", 2, "review:carol")):
            s.add(
                FinalLabel(
                    round_id=rnd.id or 0,
                    item_id=items[0].id or 0,
                    dimension_id=dims[key].id or 0,
                    code_id=codes[key, code].id or 0,
                    decided_by=by,
                    decided_at=T,
                )
            )
        s.commit()
