"""Adjudication: agreement decides, named rules settle disagreements, every final label says who decided."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sqlmodel import Session, select

from db.models.labeling import Coding, LabelItem
from db.queries.labeling import LabelFilter, adjudication_history, crosstab, final_labels, taxonomy_distribution
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
    labels = final_labels(engine, LabelFilter(rounds=("pilotstudy",)))
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
    dist = taxonomy_distribution(engine, LabelFilter(rounds=("study-final",)), "symptom")
    tf = dist[dist["repository"] == "onnx/tensorflow-onnx"].set_index("code")
    assert tf["count"].to_dict() == frame["Symptom by Number"].astype(int).value_counts().to_dict()
    assert tf["share"].sum() == pytest.approx(1.0)
    table = crosstab(
        engine, LabelFilter(rounds=("study-final",), repositories=("onnx/tensorflow-onnx",)), "symptom", "cause"
    )
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
    taxonomy = ("label", "taxonomy", "--round", "failureanalysis", "--dimension", "cause")
    out = cli(*taxonomy, "--format", "csv")
    frame = pd.read_excel(study / "FailureAnalysis.xlsx", sheet_name="PyTorch", usecols="A:N").dropna(subset=["URL"])
    incompat = int((frame["Type By Number"] == 2).sum())
    assert f"pytorch/pytorch,2,Incompatibility,{incompat},{incompat / 100}" in out.output
    crossed = cli(*taxonomy, "--format", "csv", "--crosstab", "symptom")  # CSV is one table: the cross-tab
    assert crossed.output.startswith("cause,Bad Performance,Build Failure,Crash,Unreported,Wrong Model")
    both = json.loads(cli(*taxonomy, "--format", "json", "--crosstab", "symptom").output)
    assert {"repository": "pytorch/pytorch", "code": 2, "label": "Incompatibility"}.items() <= next(
        r for r in both["distribution"] if r["repository"] == "pytorch/pytorch" and r["code"] == 2
    ).items()
    assert [r["cause"] for r in both["crosstab"]][:1] and "Crash" in both["crosstab"][0]


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
    one_error_line(["--format", "xml"], "unknown --format 'xml'", "table, json, csv")
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


def test_every_decision_is_kept_with_its_previous_value_and_evidence(cli, engine, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    study = shared_dir / "data" / "paper-artifact" / "failure-analysis"
    cli("label", "codebook", "load", str(shared_dir / "codebook" / "onnx-converter-failures.yaml"))
    cli("label", "import-sheet", str(study / "PilotStudy.xlsx"))
    assert cli("label", "adjudicate", "--round", "pilotstudy").exit_code == 0
    labels = final_labels(engine, LabelFilter(rounds=("pilotstudy",))).set_index(["item", "dimension"])
    agreed = labels.loc[("pytorch/pytorch#15192", "symptom")]
    assert agreed["decided_by"] == "agreement" and agreed["detail"]["disagreement"] is False
    assert [c["coder"] for c in agreed["detail"]["codings"]] == ["R1", "R2"]  # the codings weighed, by id
    assert all(isinstance(c["coding_id"], int) and c["coding_id"] > 0 for c in agreed["detail"]["codings"])
    cli("label", "adjudicate", "--round", "pilotstudy", "--prefer-coder", "R1")
    ruled = cli("label", "adjudicate", "--round", "pilotstudy", "--prefer-coder", "R2")
    assert "final labels 0 new, 7 changed, 0 withdrawn" in ruled.output
    history = adjudication_history(engine, LabelFilter(rounds=("pilotstudy",), item="pytorch/pytorch#15192"))
    cause = history[history["dimension"] == "cause"]
    assert cause["action"].tolist() == ["new", "changed"]
    first, second = cause.to_dict("records")
    assert first["code"] == 6 and first["decided_by"] == "rule:prefer-coder=R1" and pd.isna(first["previous_code"])
    assert second["previous_code"] == 6 and second["previous_decided_by"] == "rule:prefer-coder=R1"
    assert second["decided_by"] == "rule:prefer-coder=R2" and second["code"] != 6
    assert second["detail"]["disagreement"] is True
    assert {c["coder"]: c["code"] for c in second["detail"]["codings"]} == {"R1": 6, "R2": second["code"]}
    assert second["decided_at"] >= first["decided_at"]
    assert len(adjudication_history(engine, LabelFilter(rounds=("pilotstudy",)))) == 113 + 7 + 7

    # codings gone (e.g. withdrawn in Label Studio): the final labels are withdrawn, and the history says from what
    with Session(engine) as s:
        item = s.exec(select(LabelItem).where(LabelItem.ref == "pytorch/pytorch#15192")).one()
        for coding in s.exec(select(Coding).where(Coding.item_id == item.id)).all():
            s.delete(coding)
        s.commit()
    gone = cli("label", "adjudicate", "--round", "pilotstudy", "--prefer-coder", "R2")
    assert "0 new, 0 changed, 2 withdrawn" in gone.output
    withdrawn = adjudication_history(engine, LabelFilter(rounds=("pilotstudy",), item="pytorch/pytorch#15192")).iloc[-1]
    assert withdrawn["action"] == "withdrawn" and pd.isna(withdrawn["code"]) and pd.isna(withdrawn["decided_by"])
    assert withdrawn["previous_decided_by"] in ("agreement", "rule:prefer-coder=R2")
    assert withdrawn["detail"]["reason"] == "no longer decided: the codings changed"


def test_finals_command_shows_decider_evidence_and_history(cli, shared_dir: Path, wide_console) -> None:  # type: ignore[no-untyped-def]
    study = shared_dir / "data" / "paper-artifact" / "failure-analysis"
    cli("label", "codebook", "load", str(shared_dir / "codebook" / "onnx-converter-failures.yaml"))
    cli("label", "import-sheet", str(study / "PilotStudy.xlsx"))
    missing = cli("label", "finals", "--round", "pilotstudy")
    assert missing.exit_code == 2 and "no final labels in round 'pilotstudy'" in missing.output
    cli("label", "adjudicate", "--round", "pilotstudy", "--prefer-coder", "R1")
    item = "pytorch/pytorch#15192"
    shown = cli("label", "finals", "--round", "pilotstudy", "--item", item)
    assert shown.exit_code == 0, shown.output
    rows = table_rows(shown.output)
    assert rows[0] == ["item", "dimension", "code", "decided by", "at (UTC)", "note", "evidence"]
    cause = next(r for r in rows if r[1] == "cause")
    assert cause[3] == "rule:prefer-coder=R1" and cause[6].startswith("R1 6, R2 ") and cause[6].endswith("(disagreed)")
    # a rule is not a person's decision: without it the tie is open again and the label withdrawn, visibly
    cli("label", "adjudicate", "--round", "pilotstudy", "--majority")
    assert "cause" not in [
        r[1] for r in table_rows(cli("label", "finals", "--round", "pilotstudy", "--item", item).output)
    ]
    history = cli("label", "finals", "--round", "pilotstudy", "--item", item, "--history", "--format", "json")
    records = [r for r in json.loads(history.output) if r["dimension"] == "cause"]
    assert [r["action"] for r in records] == ["new", "withdrawn"]
    assert records[1]["previous_decided_by"] == "rule:prefer-coder=R1" and records[1]["previous_code"] == 6
    table = table_rows(cli("label", "finals", "--round", "pilotstudy", "--item", item, "--history").output)
    last = table[-1]
    assert last[1:3] == ["cause", "withdrawn"] and last[3].startswith("6 ") and last[4] == ""
    assert last[5] == "no longer decided: the codings changed"
    as_csv = cli("label", "finals", "--round", "pilotstudy", "--format", "csv")
    assert as_csv.output.splitlines()[0].startswith(
        "round,dimension,item,repository,number,title,code,label,decided_by"
    )
    one_line = cli("label", "finals", "--round", "nope")
    assert one_line.exit_code == 2 and "no round named 'nope'" in one_line.output
