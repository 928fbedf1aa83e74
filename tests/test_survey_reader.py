"""Reading Qualtrics exports without a database: header rows, kinds, comma-aware splitting, bad files."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import openpyxl
import pytest

from miners.survey.choices import safe_segments, split_cell
from miners.survey.overrides import load_overrides
from miners.survey.plan import build_plan
from miners.survey.reader import ExportError, read_export

EXPORT = Path("data/paper-artifact/survey/interopSurvey.xlsx")


@pytest.fixture(scope="module")
def export_path(shared_dir: Path) -> Path:
    return shared_dir / EXPORT


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def xlsx_to_csv(source: Path, target: Path) -> Path:
    """The same export as Qualtrics' CSV download would hold it (UTF-8 with BOM)."""
    sheet = openpyxl.load_workbook(source, read_only=True).worksheets[0]
    with target.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        for row in sheet.iter_rows(values_only=True):
            writer.writerow(["" if v is None else v for v in row])
    return target


def test_reads_the_real_export(export_path: Path) -> None:
    export = read_export(export_path)
    sheet = openpyxl.load_workbook(export_path, read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert export.format == "xlsx"
    assert export.header_rows == 2
    assert [c.name for c in export.columns] == list(rows[0])
    assert [c.text for c in export.columns] == [v or "" for v in rows[1]]
    assert len(export.rows) == len(rows) - 2 == 92
    assert export.response_id_column is None


def test_kinds_of_the_real_export(export_path: Path) -> None:
    plan = build_plan(read_export(export_path))
    kinds = {q.qid: q.kind for q in plan.questions}
    assert "Q60_5_TEXT" not in kinds  # attached to Q60, not a question of its own
    assert {q for q, k in kinds.items() if k == "multi"} == {
        "Q67",
        "Q20",
        "Q23",
        "Q35",
        "Q24",
        "Q60",
        "Q62",
        "Q63",
        "Q65",
    }
    assert {q for q, k in kinds.items() if k == "text"} == {"Q76", "Q42", "Q78", "Q64", "Q66"}
    assert {q for q, k in kinds.items() if k == "single"} == {"Q52", "Q71", "Q1", "Q2", "Q5", "Q9", "Q11", "Q61"}
    assert all(q.kind_reason for q in plan.questions)
    q24 = next(q for q in plan.questions if q.qid == "Q24")
    assert q24.text_columns == {"Other (please indicate)": "Q24_9_TEXT"}


def test_safe_segments_keep_commas_inside_choices() -> None:
    cell = (
        "Framework-to-framework Model Conversion (e.g., converting models from TensorFlow to PyTorch),"
        "Model conversion for deployment (e.g., converting to ONNX for deployment using ONNXRuntime or TensorRT)"
    )
    assert safe_segments(cell) == [
        "Framework-to-framework Model Conversion (e.g., converting models from TensorFlow to PyTorch)",
        "Model conversion for deployment (e.g., converting to ONNX for deployment using ONNXRuntime or TensorRT)",
    ]
    assert len(cell.split(",")) == 4  # what a naive split would make of it
    assert safe_segments("Architecture (e.g. bert, resnet):,Model size (e.g. base, large, 50, 101)") == [
        "Architecture (e.g. bert, resnet):",
        "Model size (e.g. base, large, 50, 101)",
    ]


def test_split_cell_prefers_the_longest_known_choice_and_flags_unknown_fragments() -> None:
    known = ["Web", "Web,Mobile apps", "Desktop"]  # a choice that itself contains a bare comma
    fragments = split_cell("Web,Mobile apps,Desktop,Quantum toaster", known)
    assert [(f.text, f.known) for f in fragments] == [
        ("Web,Mobile apps", True),
        ("Desktop", True),
        ("Quantum toaster", False),
    ]
    # A known choice followed by ", " is not a boundary: that comma belongs to a longer label.
    fragments = split_cell("Crashes, hangs,Other", ["Crashes", "Other"])
    assert [(f.text, f.known) for f in fragments] == [("Crashes, hangs", False), ("Other", True)]


def test_csv_and_xlsx_of_the_same_export_give_the_same_plan(export_path: Path, tmp_path: Path) -> None:
    from_xlsx = build_plan(read_export(export_path))
    from_csv = build_plan(read_export(xlsx_to_csv(export_path, tmp_path / "interopSurvey.csv")))
    assert [(q.qid, q.kind, q.choices) for q in from_xlsx.questions] == [
        (q.qid, q.kind, q.choices) for q in from_csv.questions
    ]
    assert [(r.key, r.answers) for r in from_xlsx.responses] == [(r.key, r.answers) for r in from_csv.responses]


def test_row_hash_keys_are_stable_and_unique(export_path: Path) -> None:
    first = [r.key for r in build_plan(read_export(export_path)).responses]
    again = [r.key for r in build_plan(read_export(export_path)).responses]
    assert first == again
    assert len(set(first)) == 92
    assert all(re.fullmatch(r"row:[0-9a-f]{32}(#\d+)?", k) for k in first)


def test_identical_rows_get_distinct_keys(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "twins.csv", [["Q1", "Q2"], ["Age?", "Tool?"], ["18", "a"], ["18", "a"], ["20", "b"]])
    keys = [r.key for r in build_plan(read_export(path)).responses]
    assert len(set(keys)) == 3
    assert keys[1] == keys[0] + "#2"


def test_importid_row_and_response_ids(tmp_path: Path) -> None:
    rows = [
        ["StartDate", "ResponseId", "Q1", "Q2", "Q2_4_TEXT"],
        ["Start Date", "Response ID", "Consent?", "Tools? - Selected Choice", "Tools? - Other - Text"],
        [
            '{"ImportId":"startDate","timeZone":"America/Denver"}',
            '{"ImportId":"_recordId"}',
            '{"ImportId":"QID1"}',
            '{"ImportId":"QID2"}',
            '{"ImportId":"QID2_4_TEXT"}',
        ],
        ["2024-03-01 10:00:00", "R_aaa", "Yes", "ONNX,Other", "TVM"],
        ["2024-03-01 11:00:00", "R_bbb", "No", "", ""],
    ]
    export = read_export(write_csv(tmp_path / "new.csv", rows))
    assert export.header_rows == 3
    assert [c.import_id for c in export.columns] == ["startDate", "_recordId", "QID1", "QID2", "QID2_4_TEXT"]
    plan = build_plan(export)
    assert [q.qid for q in plan.questions] == ["Q1", "Q2"]  # metadata columns are not questions
    assert [r.key for r in plan.responses] == ["R_aaa", "R_bbb"]
    q2 = next(q for q in plan.questions if q.qid == "Q2")
    assert q2.text_columns == {"Other": "Q2_4_TEXT"}
    answers = [(a.choice, a.text) for a in plan.responses[0].answers if a.qid == "Q2"]
    assert answers == [("ONNX", None), ("Other", "TVM")]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "the file is empty"),
        ([["", ""], ["", ""]], "the file is empty"),
        ([["name", "age"], ["ann", "31"]], "not a Qualtrics export: header row 1 has no question IDs"),
        ([["Yes, I consent", "PyTorch,TensorFlow"], ["No", "PyTorch"]], "no header row: row 1 holds answers"),
        ([["Q1", "Q2", "Q1"], ["a", "b", "c"], ["1", "2", "3"]], "row 1: duplicate question ID 'Q1' (columns A and C)"),
        ([["Q1", "Q2"]], "no question-text row below the header row"),
        (
            [["Q1", "Q2"], ["Yes", "PyTorch"], ["Yes", "TensorFlow"], ["No", "PyTorch"]],
            "row 2 looks like a respondent's answers (e.g. column A: 'Yes' recurs below)",
        ),
        ([["Q1", "Q2"], ["", ""], ["Yes", "PyTorch"]], "row 2 is empty where Qualtrics puts the question texts"),
        ([["Q1", "Q2"], ["Consent?", "Tools?"]], "header rows but no respondent rows"),
        ([["Q1", "", "Q3"], ["a", "b", "c"], ["1", "2", "3"]], "row 1, column B: empty question ID"),
        ([["Q1", "Q2"], ["a", "b"], ["1", "2", "extra"]], "row 3, column C: a value outside the header's 2 columns"),
        (
            [["ResponseId", "Q1"], ["Response ID", "a"], ["R_1", "x"], ["R_1", "y"]],
            "row 4, ResponseId: duplicate response id 'R_1' (also row 3)",
        ),
        ([["ResponseId", "Q1"], ["Response ID", "a"], ["", "x"]], "row 3, ResponseId: empty response id"),
    ],
)
def test_bad_csv_files_are_refused_with_one_clear_message(tmp_path: Path, rows: list[list[str]], message: str) -> None:
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(ExportError) as info:
        build_plan(read_export(path))
    assert message in str(info.value)
    assert str(info.value).startswith("bad.csv")


def test_bad_xlsx_and_other_files(tmp_path: Path) -> None:
    fake = tmp_path / "fake.xlsx"
    fake.write_text("this is not a workbook")
    with pytest.raises(ExportError, match=r"fake.xlsx: not a readable .xlsx workbook"):
        read_export(fake)
    empty = tmp_path / "empty.xlsx"
    openpyxl.Workbook().save(empty)
    with pytest.raises(ExportError, match=re.escape("empty.xlsx: the file is empty")):
        read_export(empty)
    dup = tmp_path / "dup.xlsx"
    book = openpyxl.Workbook()
    for row in (["Q1", "Q2", "Q2"], ["a", "b", "c"], ["x", "y", "z"]):
        book.active.append(row)
    book.save(dup)
    with pytest.raises(ExportError, match=r"dup.xlsx: row 1: duplicate question ID 'Q2' \(columns B and C\)"):
        read_export(dup)
    other = tmp_path / "survey.sav"
    other.write_bytes(b"\x00\x01")
    with pytest.raises(ExportError, match=re.escape("unsupported file type '.sav'")):
        read_export(other)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("Q1\nFrage\nM\xfcller\n".encode("latin-1"))
    with pytest.raises(ExportError, match=re.escape("latin.csv: not UTF-8 text")):
        read_export(latin)
    with pytest.raises(ExportError, match="no such file"):
        read_export(tmp_path / "missing.csv")
    with pytest.raises(ExportError, match="is a directory; give the export file"):
        read_export(tmp_path)


def test_overrides_file(export_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "questions.yaml"
    path.write_text(
        "questions:\n  Q60: {kind: multi, choices: [PyTorch, TensorFlow], closed: true}\n  Q64: {kind: single}\n"
        "  Q62: {kind: text}\n"
    )
    plan = build_plan(read_export(export_path), load_overrides(path))
    q60 = next(q for q in plan.questions if q.qid == "Q60")
    assert q60.choices == ["PyTorch", "TensorFlow", "Other (please specify)"]
    assert next(q for q in plan.questions if q.qid == "Q64").kind_reason == "set in the overrides file"
    q62 = [(a.choice, a.text) for r in plan.responses for a in r.answers if a.qid == "Q62" and a.choice]
    assert sorted(q62) == [("Other (please specify)", "GGML"), ("Other (please specify)", "TensorRT")]
    unknown = {n.message for n in plan.unknown_fragments if n.column.startswith("Q60")}
    assert unknown == {"fragment 'JAX/FLAX' matches no known choice", "fragment 'MLX' matches no known choice"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"questions": {"Q60": {"kind": "several"}}}))
    with pytest.raises(ExportError, match=r"bad.json: questions.Q60.kind must be one of single, multi, text"):
        load_overrides(bad)
    missing = tmp_path / "missing.yaml"
    missing.write_text("questions:\n  Q999: {kind: text}\n")
    with pytest.raises(ExportError, match=re.escape("overrides name question(s) not in interopSurvey.xlsx: Q999")):
        build_plan(read_export(export_path), load_overrides(missing))


def test_the_study_analysis_workbook_is_not_an_export(shared_dir: Path) -> None:
    with pytest.raises(ExportError, match=re.escape("survey_analysis.xlsx: not a Qualtrics export")):
        read_export(shared_dir / "data/paper-artifact/survey/survey_analysis.xlsx")


def test_sheet_option(tmp_path: Path) -> None:
    path = tmp_path / "two.xlsx"
    book = openpyxl.Workbook()
    book.active.title = "notes"
    book.active.append(["just notes"])
    data = book.create_sheet("responses")
    for row in (["Q1", "Q2"], ["Consent?", "Years?"], ["Yes", "3"], ["Yes", "5"]):
        data.append(row)
    book.save(path)
    assert len(read_export(path, sheet="responses").rows) == 2
    with pytest.raises(ExportError, match=re.escape("in sheet 'notes'; other sheets: responses (use --sheet)")):
        read_export(path)
    with pytest.raises(ExportError, match=re.escape("no sheet named 'other' (sheets: notes, responses)")):
        read_export(path, sheet="other")
