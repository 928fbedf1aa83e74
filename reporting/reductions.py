"""The report's section on minimal repros of mismatches: how many mismatching runs `experiment reduce` reduced,
nodes before → after, whose fault (converter or onnxruntime), the diverging operators, and H1 with each reduced
mismatch counted for its diverging operator only. Kept apart from paper.py, which calls `add_reductions`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from reporting.paper import PaperReport


def add_reductions(engine: Engine, report: PaperReport) -> None:
    """Beyond the paper: the reductions stored for any campaign (the study's imported runs have no models to
    reduce, so this covers the campaigns run here); says how to get some when there are none."""
    from db.queries import failures as fq
    from reporting.paper import Table

    summary = fq.reduction_summary(engine)
    operators = fq.diverging_operators(engine)
    h1 = fq.operator_failures(engine, diverging=True)
    h1 = h1[h1["mismatches_any_node"] > 0] if not h1.empty else h1
    report.facts["reductions"] = summary
    if summary.empty:
        how = (
            "no mismatching run has been reduced yet: run `interop experiment reduce RUN_ID` on a campaign's mismatches"
        )
    else:
        reduced, total = int(summary["reduced"].sum()), int(summary["mismatches"].sum())
        how = f"{reduced} of {total} mismatching runs of the campaigns with reductions are reduced"
    report.choices.append(
        "Minimal repros of mismatches (not in the paper): `interop experiment reduce` finds the first ONNX node whose "
        "onnxruntime value departs from the source framework's intermediate value (NNSmith models run op by op, "
        "other PyTorch models through torch.export; ONNX values matched by the exporter's names and the source "
        "graph), else from the ONNX reference evaluator; the cause is converter when onnxruntime agrees with the "
        "spec there, runtime when it departs from a spec that agrees with the source. The node's subgraph is "
        "delta-debugged to a 1-minimal model that still mismatches. `share reduced` is of the campaign's "
        "mismatching runs; medians are of the reduced ones. The operator table counts a reduced mismatch for its "
        f"diverging operator only (`mismatches_any_node`: for every operator of the model). {how}."
    )
    report.tables.append(
        Table(
            "mismatch_reductions",
            "Mismatches reduced to a minimal repro, per campaign × converter",
            "mismatching runs, reduced, found against the source framework, by cause; median nodes before → after",
            summary,
        )
    )
    report.tables.append(
        Table(
            "diverging_operators",
            "First diverging operators of reduced mismatches",
            "reduced runs per operator of the first diverging node, by cause",
            operators if not operators.empty else pd.DataFrame(columns=list(operators.columns)),
        )
    )
    report.tables.append(
        Table(
            "operators_vs_mismatches",
            "Operators vs mismatches (H1) with reduced mismatches counted for their diverging operator",
            "runs whose produced ONNX graph has the operator; mismatches attributed to the diverging operator",
            h1.reset_index(drop=True),
        )
    )
