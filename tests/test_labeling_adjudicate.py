"""Adjudication: agreement decides, named rules settle disagreements, every final label says who decided."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from db.queries.labeling import crosstab, final_labels, taxonomy_distribution
from labeling.adjudicate import _decide
from labeling.codebook import parse_codebook
from tests.support.labeling import table_rows

SPEC = parse_codebook(
    yaml.safe_load("""
name: t
dimensions:
  - key: cause
    required: true
    codes: {1: A, 2: Incompatibility, 3: C}
  - key: incompatibility_type
    required_when: {cause: 2}
    codes: {1: Internal, 2: External}
""")
)
ALL = {"cause", "incompatibility_type"}


def test_agreement_single_coder_and_rules() -> None:
    agreed, open_dims = _decide({"a": {"cause": 1}, "b": {"cause": 1}}, SPEC, None, False, ALL)
    assert agreed == {"cause": (1, "agreement")} and open_dims == []
    single, _ = _decide({"a": {"cause": 3}}, SPEC, None, False, ALL)
    assert single == {"cause": (3, "single-coder:a")}
    # disagreement on the cause: the conditional dimension only one coder answered is open too, not guessed
    codes = {"a": {"cause": 2, "incompatibility_type": 2}, "b": {"cause": 1}}
    none, open_dims = _decide(codes, SPEC, None, False, ALL)
    assert none == {} and open_dims == ["cause", "incompatibility_type"]
    prefer_a, open_a = _decide(codes, SPEC, "a", False, ALL)
    assert prefer_a == {"cause": (2, "rule:prefer-coder=a"), "incompatibility_type": (2, "rule:prefer-coder=a")}
    assert open_a == []
    prefer_b, _ = _decide(codes, SPEC, "b", False, ALL)
    assert prefer_b == {"cause": (1, "rule:prefer-coder=b")}  # b's cause makes the conditional dimension moot
    three = {"a": {"cause": 1}, "b": {"cause": 1}, "c": {"cause": 3}}
    assert _decide(three, SPEC, None, True, ALL)[0] == {"cause": (1, "rule:majority")}
    tie = {"a": {"cause": 1}, "b": {"cause": 3}}
    assert _decide(tie, SPEC, None, True, ALL) == ({}, ["cause"])


def test_pilot_sheet_adjudication_and_analysis_queries(cli, engine, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    study = shared_dir / "data" / "paper-artifact" / "failure-analysis"
    cli("label", "codebook", "load", str(shared_dir / "codebook" / "onnx-converter-failures.yaml"))
    cli("label", "import-sheet", str(study / "PilotStudy.xlsx"))
    first = cli("label", "adjudicate", "--round", "pilotstudy", "--show-open")
    assert first.exit_code == 0, first.output
    # 60 items × 2 dimensions, 7 cells where R1 and R2 differ (the Interrater sheet's FALSE cells)
    assert "final labels 113 new" in first.output and "7 items open" in first.output
    assert "open pytorch/pytorch#15192: cause" in first.output
    again = cli("label", "adjudicate", "--round", "pilotstudy")
    assert "final labels 0 new, 0 changed, 0 withdrawn" in again.output
    ruled = cli("label", "adjudicate", "--round", "pilotstudy", "--prefer-coder", "R1")
    assert "final labels 7 new" in ruled.output and "0 items open" in ruled.output
    labels = final_labels(engine, "pilotstudy")
    assert len(labels) == 120
    by = labels.set_index(["item", "dimension"])
    assert by.loc[("pytorch/pytorch#15192", "cause"), "code"] == 6  # R1's code
    assert by.loc[("pytorch/pytorch#15192", "cause"), "decided_by"] == "rule:prefer-coder=R1"
    bad = cli("label", "adjudicate", "--round", "pilotstudy", "--prefer-coder", "zoe")
    assert bad.exit_code == 2 and "has no codings" in bad.output

    # the study's final sheet: distribution per converter and symptom × cause, against pandas on the sheet
    cli(
        "label",
        "import-sheet",
        str(study / "FailureAnalysis.xlsx"),
        "--sheet",
        "PyTorch",
        "--sheet",
        "tf2onnx",
        "--round",
        "study-final",
    )
    frame = pd.read_excel(study / "FailureAnalysis.xlsx", sheet_name="tf2onnx", usecols="A:N").dropna(subset=["URL"])
    dist = taxonomy_distribution(engine, "symptom", "study-final")
    tf = dist[dist["repository"] == "onnx/tensorflow-onnx"].set_index("code")
    assert tf["count"].to_dict() == frame["Symptom by Number"].astype(int).value_counts().to_dict()
    assert tf["share"].sum() == pytest.approx(1.0)
    table = crosstab(engine, "symptom", "cause", "study-final", "onnx/tensorflow-onnx")
    assert int(table.to_numpy().sum()) == 100
    expected = pd.crosstab(frame["Symptom by Number"], frame["Type By Number"])
    assert int(table.loc["Crash", "Incompatibility"]) == int(expected.loc[1, 2])


def test_rounds_and_taxonomy_commands(cli, shared_dir: Path, wide_console) -> None:  # type: ignore[no-untyped-def]
    study = shared_dir / "data" / "paper-artifact" / "failure-analysis"
    cli("label", "codebook", "load", str(shared_dir / "codebook" / "onnx-converter-failures.yaml"))
    assert "no rounds yet" in cli("label", "rounds").output
    missing = cli("label", "taxonomy")
    assert missing.exit_code == 2 and "no final labels for dimension 'cause'" in missing.output
    cli("label", "import-sheet", str(study / "FailureAnalysis.xlsx"))
    listing = cli("label", "rounds")
    assert listing.exit_code == 0, listing.output
    book = "onnx-converter-failures"
    assert table_rows(listing.output) == [  # 200 issues coded once; 2 × 9 drift issues by 2 raters
        ["round", "coded in", "codebook", "version", "codings", "created (UTC)"],
        ["failureanalysis", "coding sheet", book, "1", "200", "<time>"],
        ["failureanalysis-drift-testing", "coding sheet", book, "1", "36", "<time>"],
    ]
    out = cli(
        "label",
        "taxonomy",
        "--round",
        "failureanalysis",
        "--dimension",
        "cause",
        "--format",
        "csv",
        "--crosstab",
        "symptom",
    )
    frame = pd.read_excel(study / "FailureAnalysis.xlsx", sheet_name="PyTorch", usecols="A:N").dropna(subset=["URL"])
    incompat = int((frame["Type By Number"] == 2).sum())
    assert f"pytorch/pytorch,2,Incompatibility,{incompat},{incompat / 100}" in out.output
    assert "cause,Bad Performance,Build Failure,Crash,Unreported,Wrong Model" in out.output


def test_taxonomy_unknown_format_round_dimension_or_crosstab_lists_the_choices(cli, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    def one_error_line(args: list[str], *fragments: str) -> None:
        result = cli("label", "taxonomy", *args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
        for fragment in fragments:
            assert fragment in lines[0], result.output

    study = shared_dir / "data" / "paper-artifact" / "failure-analysis"
    cli("label", "codebook", "load", str(shared_dir / "codebook" / "onnx-converter-failures.yaml"))
    dims = "symptom, cause, incompatibility_type, type_problem_type, component"
    one_error_line(["--dimension", "colour"], "unknown --dimension 'colour'", dims)  # before any round too
    cli("label", "import-sheet", str(study / "FailureAnalysis.xlsx"))
    one_error_line(["--format", "json"], "unknown --format 'json'", "table, csv")
    one_error_line(["--round", "final"], "no round named 'final'", "failureanalysis, failureanalysis-drift-testing")
    one_error_line(
        ["--round", "failureanalysis", "--dimension", "colour"],
        "unknown --dimension 'colour' in round 'failureanalysis'",
        dims,
    )
    one_error_line(["--crosstab", "colour"], "unknown --crosstab 'colour'", dims)
    one_error_line(
        ["--dimension", "cause", "--crosstab", "cause"],
        "is the --dimension itself",
        "symptom, incompatibility_type, type_problem_type, component",
    )
    # known choices without final labels keep their own message
    one_error_line(["--round", "failureanalysis-drift-testing"], "no final labels", "adjudicate")
    ok = cli("label", "taxonomy", "--round", "failureanalysis", "--crosstab", "symptom")
    assert ok.exit_code == 0, ok.output
