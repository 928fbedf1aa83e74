"""The study's ecosystem overview (frameworks, converters and runtimes with their popularity and ONNX support),
from the repository snapshots `interop mine repos` takes, so a later run of the report shows a fresher ecosystem."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from db.queries.ecosystem import ecosystem_overview

if TYPE_CHECKING:
    from reporting.paper import PaperReport


def add_ecosystem(engine: Engine, report: PaperReport) -> None:
    """A table per the newest snapshots, or one line saying how to take them (the section is optional)."""
    from reporting.paper import Table

    overview = ecosystem_overview(engine)
    if overview.empty:
        report.choices.append(
            "Ecosystem overview: no repository snapshots in this database, so the section is left out; "
            "`interop mine repos` takes them (one GraphQL request per batch of repositories)."
        )
        return
    dates = sorted(set(overview["snapshot_date"]))
    when = str(dates[0]) if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    onnx = overview[overview["onnx"].astype(bool)]
    report.facts["ecosystem"] = {
        "repositories": len(overview),
        "naming_onnx": len(onnx),
        "snapshot_dates": [str(d) for d in dates],
    }
    report.choices.append(
        f"Ecosystem overview (the paper's background, now a query): the newest GitHub snapshot of each repository "
        f"({when}); {len(onnx)} of {len(overview)} name ONNX in their topics, description or labels. "
        "`stars_gained` and `days_observed` compare with the repository's first snapshot; `releases_last_year` "
        "counts the releases published in the 365 days before the snapshot among the 20 newest it lists."
    )
    report.tables.append(
        Table(
            "ecosystem_overview",
            "The ONNX ecosystem: frameworks, format, converters, runtimes and compilers",
            f"one row per repository, newest snapshot ({when}); most stars first within a role",
            overview,
        )
    )
