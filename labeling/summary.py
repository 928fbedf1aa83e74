"""Small read helpers labeling needs beside the DataFrames of db.queries (the scale of each dimension)."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.models.labeling import CodebookDimension, LabelRound
from labeling.store import get_round, round_codebook


def round_categories(engine: Engine) -> dict[tuple[str, str], list[int]]:
    """(round, dimension) → every code of the codebook version the round uses (Gwet's q counts the scale)."""
    out: dict[tuple[str, str], list[int]] = {}
    with Session(engine) as session:
        for rnd in session.exec(select(LabelRound)).all():
            book = round_codebook(session, rnd)
            for dim in book.spec.dimensions:
                out[(rnd.name, dim.key)] = sorted(dim.codes)
    return out


def multi_dimensions(engine: Engine) -> set[tuple[str, str]]:
    """(round, dimension) pairs whose dimension is multi-label in the round's codebook version (sets of codes)."""
    out: set[tuple[str, str]] = set()
    with Session(engine) as session:
        for rnd in session.exec(select(LabelRound)).all():
            out |= {(rnd.name, d.key) for d in round_codebook(session, rnd).spec.dimensions if d.multi}
    return out


def dimension_keys(engine: Engine, round_name: str | None = None) -> list[str]:
    """The dimensions a user may name: those of the round's codebook version, or of any stored version (in
    codebook order); an unknown round raises LabelingError listing the known ones."""
    with Session(engine) as session:
        if round_name is not None:
            return round_codebook(session, get_round(session, round_name)).spec.keys
        rows = session.exec(select(CodebookDimension.key, CodebookDimension.position)).all()
    first: dict[str, int] = {}
    for key, position in rows:
        first[key] = min(position, first.get(key, position))
    return sorted(first, key=lambda k: (first[k], k))
