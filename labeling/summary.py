"""Small read helpers labeling needs beside the DataFrames of db.queries (the scale of each dimension)."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.models.labeling import LabelRound
from labeling.store import round_codebook


def round_categories(engine: Engine) -> dict[tuple[str, str], list[int]]:
    """(round, dimension) → every code of the codebook version the round uses (Gwet's q counts the scale)."""
    out: dict[tuple[str, str], list[int]] = {}
    with Session(engine) as session:
        for rnd in session.exec(select(LabelRound)).all():
            book = round_codebook(session, rnd)
            for dim in book.spec.dimensions:
                out[(rnd.name, dim.key)] = sorted(dim.codes)
    return out
