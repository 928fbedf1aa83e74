"""The survey definition (.qsf) without a database: parsing, matching it to exports of every layout, reading
numeric and choice-text values exactly, and refusing definitions that do not fit."""

from __future__ import annotations

import copy
import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

from miners.survey.definition import DefinitionError, SurveyDefinition, plain_text
from miners.survey.layout import recognise_layout
from miners.survey.plan import build_plan
from miners.survey.qsf import parse_definition, read_definition
from miners.survey.reader import read_export
from miners.survey.workflow import SurveyImportError, _plan_with_definition
from tests.support.qualtrics_exports import ALL_VARIANTS, DEFINITION, RESPONDENTS, Variant, build_rows, write_export

Answer = tuple[str, str, int, str | None, str | None, bool, float | None]


@pytest.fixture(scope="module")
def spec() -> SurveyDefinition:
    return read_definition(DEFINITION)


def plan_of(path: Path, spec: SurveyDefinition):  # type: ignore[no-untyped-def]
    return _plan_with_definition(read_export(path), spec, DEFINITION.name, 1, {"AnswerDisplayOrder"})


def answers_of(plan: Any) -> list[Answer]:
    return sorted(
        (r.key, a.qid, a.position, a.choice, a.text, a.known, a.value) for r in plan.responses for a in r.answers
    )


def test_the_definition_holds_every_question_type_with_plain_text_recodes_blocks_and_logic(
    spec: SurveyDefinition,
) -> None:
    by_tag = {q.tag: q for q in spec.questions}
    assert (spec.survey_id, spec.language, spec.embedded_data) == ("SV_3kQz8bWmT1xYfUa", "EN", ("condition",))
    # survey flow order (Introduction, then the branch: Background, Experience), not the order of the BL list
    order = ["Q1", "Q2", "Q3", "Q4", "Q7", "Q5", "Q6", "Q8", "Q9", "Q10", "Q11", "Q12"]
    assert [q.tag for q in spec.questions] == order
    assert "Q13" not in by_tag  # in the trash block: deleted, never exported
    types = {tag: (q.qtype, q.mode) for tag, q in by_tag.items()}
    assert types == {
        "Q1": ("descriptive", ""),
        "Q2": ("single", ""),
        "Q3": ("single", ""),
        "Q4": ("multi", ""),
        "Q5": ("matrix", "single"),
        "Q6": ("matrix", "multi"),
        "Q7": ("text", "text"),
        "Q8": ("text", "text"),
        "Q9": ("slider", "number"),
        "Q10": ("rank", "rank"),
        "Q11": ("side-by-side", ""),
        "Q12": ("timing", ""),
    }
    assert len(spec.answered) == 10
    assert by_tag["Q1"].text.startswith("Welcome! This survey asks")  # <div><strong>…</strong><br>… without HTML
    assert by_tag["Q3"].text == "What is your main role?"
    q3 = {c.text: (c.code, c.text_entry) for c in by_tag["Q3"].choices}
    assert q3 == {
        "Researcher": ("10", False),
        "ML engineer": ("20", False),
        "Student": ("30", False),
        "Other (please specify)": ("99", True),
    }
    q4 = by_tag["Q4"].choices
    assert [c.text for c in q4] == ["PyTorch", "TensorFlow, Keras", "JAX & Flax", "Other", "None of these"]
    assert [c.code for c in q4] == ["1", "2", "3", "4", "5"]  # no recode values: the choice ids are exported
    assert [c.exclusive for c in q4] == [False, False, False, False, True]
    q5 = by_tag["Q5"]
    assert [(r.id, r.text, r.text_entry) for r in q5.choices] == [
        ("1", "Conversion to ONNX is reliable", False),
        ("2", "Converter errors are clear", False),
        ("4", "Other:", True),
    ]
    scale = [(a.text, a.code) for a in q5.answers]
    assert scale[::2] == [("Strongly disagree", "-2"), ("Neutral", "0"), ("Strongly agree", "2")]
    assert by_tag["Q8"].display_logic == "If Which frameworks do you convert models from? None of these Is Not Selected"
    assert [(c.tag, c.mode, [a.text for a in c.answers]) for c in by_tag["Q11"].columns] == [
        ("Q11#1", "single", ["Yes", "No"]),
        ("Q11#2", "text", ["Opset", "Notes"]),
    ]
    assert [b.description for b in spec.blocks] == ["Introduction", "Background", "Experience with converters"]
    assert {q.tag: q.block for q in spec.questions}["Q9"] == "Experience with converters"


def test_the_normalized_definition_round_trips_and_its_hash_follows_content(spec: SurveyDefinition) -> None:
    again = SurveyDefinition.from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec and again.content_hash() == spec.content_hash()
    data = json.loads(DEFINITION.read_text(encoding="utf-8"))
    changed = copy.deepcopy(data)
    element = next(e for e in changed["SurveyElements"] if e.get("PrimaryAttribute") == "QID2")
    element["Payload"]["Choices"]["2"]["Display"] = "No, thank you"
    assert parse_definition(changed).content_hash() != spec.content_hash()
    reordered = copy.deepcopy(data)
    reordered["SurveyElements"].reverse()  # element order in the file is not content
    assert parse_definition(reordered).content_hash() == spec.content_hash()


def test_plain_text_strips_markup_and_decodes_entities() -> None:
    assert plain_text("<p>A&nbsp;<b>bold</b><br>line &amp; more</p>") == "A bold line & more"
    assert plain_text("<script>alert(1)</script>Shown") == "Shown"
    assert plain_text(None) == "" and plain_text("  plain   text ") == "plain text"


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exports")
    return {v.name: write_export(folder / v.name, v) for v in ALL_VARIANTS}


#: What respondent 1 and 2 answered, as the definition reads it (by hand, from RESPONDENTS).
EXPECTED_R1_R2 = {
    ("R_1a2B3c4D5e6F7g8", "Q2", 0, "Yes, I consent", None, True, None),
    ("R_1a2B3c4D5e6F7g8", "Q3", 0, "Other (please specify)", "Compiler engineer", True, None),
    ("R_1a2B3c4D5e6F7g8", "Q4", 0, "PyTorch", None, True, None),
    ("R_1a2B3c4D5e6F7g8", "Q4", 1, "TensorFlow, Keras", None, True, None),
    ("R_1a2B3c4D5e6F7g8", "Q4", 2, "Other", "MXNet", True, None),
    ("R_1a2B3c4D5e6F7g8", "Q7", 0, None, "17", True, None),
    ("R_1a2B3c4D5e6F7g8", "Q5_1", 0, "Agree", None, True, None),
    ("R_1a2B3c4D5e6F7g8", "Q5_2", 0, "Disagree", None, True, None),
    ("R_1a2B3c4D5e6F7g8", "Q5_3", 0, "Strongly agree", "Quantized models", True, None),
    ("R_1a2B3c4D5e6F7g8", "Q6_1", 0, "torch.onnx", None, True, None),
    ("R_1a2B3c4D5e6F7g8", "Q6_1", 1, "tf2onnx", None, True, None),
    ("R_1a2B3c4D5e6F7g8", "Q6_2", 0, "tf2onnx", None, True, None),
    ("R_1a2B3c4D5e6F7g8", "Q8", 0, None, "Shape mismatch in Reshape, then a crash", True, None),
    ("R_1a2B3c4D5e6F7g8", "Q9_1", 0, None, "80", True, 80.0),
    ("R_1a2B3c4D5e6F7g8", "Q9_2", 0, None, "35", True, 35.0),
    ("R_1a2B3c4D5e6F7g8", "Q10", 0, "Accuracy", None, True, 1.0),
    ("R_1a2B3c4D5e6F7g8", "Q10", 1, "Speed", None, True, 2.0),
    ("R_1a2B3c4D5e6F7g8", "Q10", 2, "Other", "Memory use", True, 3.0),
    ("R_1a2B3c4D5e6F7g8", "Q11#1_1", 0, "Yes", None, True, None),
    ("R_1a2B3c4D5e6F7g8", "Q11#1_2", 0, "No", None, True, None),
    ("R_1a2B3c4D5e6F7g8", "Q11#2_1", 0, "Opset", "17", True, None),
    ("R_1a2B3c4D5e6F7g8", "Q11#2_1", 1, "Notes", "fine", True, None),
    ("R_1a2B3c4D5e6F7g8", "Q11#2_2", 0, "Opset", "13", True, None),
    ("R_2bC3d4E5f6G7h8I", "Q2", 0, "Yes, I consent", None, True, None),
    ("R_2bC3d4E5f6G7h8I", "Q3", 0, "Researcher", None, True, None),
    ("R_2bC3d4E5f6G7h8I", "Q4", 0, "None of these", None, True, None),
    ("R_2bC3d4E5f6G7h8I", "Q7", 0, None, "13", True, None),
    ("R_2bC3d4E5f6G7h8I", "Q5_1", 0, "Strongly disagree", None, True, None),
    ("R_2bC3d4E5f6G7h8I", "Q6_1", 0, "None", None, True, None),
    ("R_2bC3d4E5f6G7h8I", "Q9_1", 0, None, "50", True, 50.0),
    ("R_2bC3d4E5f6G7h8I", "Q10", 0, "Speed", None, True, 1.0),
    ("R_2bC3d4E5f6G7h8I", "Q10", 1, "Accuracy", None, True, 2.0),
    ("R_2bC3d4E5f6G7h8I", "Q10", 2, "Other", None, True, 3.0),
    ("R_2bC3d4E5f6G7h8I", "Q11#1_1", 0, "Yes", None, True, None),
}


@pytest.mark.parametrize("variant", ALL_VARIANTS, ids=lambda v: v.name)
def test_every_layout_reads_to_the_same_answers(
    variant: Variant, exports: dict[str, Path], spec: SurveyDefinition
) -> None:
    plan, layout = plan_of(exports[variant.name], spec)
    got = answers_of(plan)
    assert {a for a in got if a[0] in ("R_1a2B3c4D5e6F7g8", "R_2bC3d4E5f6G7h8I")} == EXPECTED_R1_R2
    reference, _ = plan_of(exports[ALL_VARIANTS[0].name], spec)
    assert got == answers_of(reference)
    assert [r.key for r in plan.responses] == [r["id"] for r in RESPONDENTS]
    assert not plan.unknown_fragments and not plan.notices
    assert plan.value_format == variant.values
    assert layout.style == variant.style and layout.import_ids == (variant.import_ids and variant.style == "new")
    assert layout.language == (variant.language if variant.style == "new" else None)
    kinds = {q.qid: (q.kind, q.qtype, q.parent_qid, q.kind_source) for q in plan.questions}
    assert kinds["Q5_3"] == ("single", "matrix", "Q5", "definition")
    assert kinds["Q9_2"] == ("number", "slider", "Q9", "definition")
    assert kinds["Q11#2_2"] == ("text", "side-by-side", "Q11", "definition")
    assert kinds["Q10"] == ("rank", "rank", None, "definition")
    q5 = next(q for q in plan.questions if q.qid == "Q5_2")
    assert q5.choices == ["Strongly disagree", "Disagree", "Neutral", "Agree", "Strongly agree"]  # the shared scale
    assert q5.details["recodes"]["Strongly disagree"] == "-2" and q5.details["block"] == "Experience with converters"
    q8 = next(q for q in plan.questions if q.qid == "Q8")
    assert q8.details["display_logic"].startswith("If Which frameworks")
    derived = sorted((r.key, d.qid, d.name, d.value) for r in plan.responses for d in r.derived)
    if variant.style == "new":  # Text iQ columns: derived data of Q8, not questions
        assert derived == [
            ("R_1a2B3c4D5e6F7g8", "Q8", "Sentiment Score", "-0.6"),
            ("R_1a2B3c4D5e6F7g8", "Q8", "Topics", "Shapes, Crashes"),
            ("R_4dE5f6G7h8I9j0K", "Q8", "Sentiment Score", "0.8"),
            ("R_4dE5f6G7h8I9j0K", "Q8", "Topics", "Success"),
        ]
    assert "Q8 - Topics" not in {q.qid for q in plan.questions}


def test_numeric_codes_that_are_no_choice_are_flagged_not_guessed(tmp_path: Path, spec: SurveyDefinition) -> None:
    rows = build_rows(Variant(values="numeric"))
    column = rows[0].index("Q3")
    rows[3][column] = "7"  # no choice of Q3 has the code 7
    rows[4][column] = "-99"  # seen but not answered
    path = tmp_path / "codes.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["" if c is None else c for c in r] for r in rows])
    plan, _ = plan_of(path, spec)
    assert [str(n) for n in plan.unknown_fragments] == ["row 4, Q3 (column S): code '7' is no choice's value"]
    q3 = [a for r in plan.responses for a in r.answers if a.qid == "Q3"]
    assert ("7", False) in {(a.choice, a.known) for a in q3}
    assert plan.ignored_fragments["-99 (seen but unanswered)"] == 1


def _write(path: Path, rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["" if c is None else c for c in r] for r in rows])
    return path


@pytest.mark.parametrize("variant", [Variant(), Variant(import_ids=False), Variant(style="legacy", import_ids=False)])
def test_a_definition_that_does_not_match_names_the_ids_on_both_sides(
    variant: Variant, tmp_path: Path, spec: SurveyDefinition
) -> None:
    rows = build_rows(variant)
    drop = rows[0].index("Q7")
    rows = [r[:drop] + r[drop + 1 :] for r in rows]
    with_ids = variant.import_ids and variant.style == "new"
    for name, import_id in (("Q99", "QID99"), ("Q5_9", "QID5_9")):
        rows[0].append(name)
        rows[1].append("added later")
        if with_ids:
            rows[2].append(json.dumps({"ImportId": import_id}))
        for row in rows[3 if with_ids else 2 :]:
            row.append("x")
    with pytest.raises(SurveyImportError) as info:
        plan_of(_write(tmp_path / "other.csv", rows), spec)
    assert str(info.value) == (
        "definition converter-survey.qsf does not match other.csv: in the definition but not in the export: Q7; "
        "in the export but not in the definition: Q99, Q5_9"
    )


def test_recognition_without_a_definition(exports: dict[str, Path]) -> None:
    legacy = read_export(exports["text-legacy-noids-EN.csv"])
    layout = recognise_layout(legacy)
    assert [n for n, role in layout.roles.items() if role == "metadata"][:10] == [f"V{i}" for i in range(1, 11)]
    assert layout.response_id == "V1" and layout.key_source == "ResponseID"
    plan = build_plan(legacy, layout=layout)
    assert not any(re.fullmatch(r"V\d+|Location\w+", q.qid) for q in plan.questions)
    assert [r.key for r in plan.responses] == [r["id"] for r in RESPONDENTS]
    german = read_export(exports["numeric-new-noids-DE.xlsx"])  # no ImportId row, German metadata names
    layout = recognise_layout(german)
    assert len([n for n, role in layout.roles.items() if role == "metadata"]) == 17
    assert (layout.response_id, layout.response_id_evidence) == ("Antwort-ID", "position in the metadata block")
    assert layout.language == "DE" and layout.derived == {
        "Q8 - Topics": ("Q8", "Topics"),
        "Q8 - Sentiment Score": ("Q8", "Sentiment Score"),
    }
    plan = build_plan(german, layout=layout)
    assert {q.kind_source for q in plan.questions} == {"guessed"}
    assert plan.value_format == "numeric" and "numeric values" in plan.warnings[0]
    assert not {"Startdatum", "Antwort-ID", "Q8 - Topics", "Q12_First Click"} & {q.qid for q in plan.questions}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "bad.qsf: not JSON at line 1 column 2"),
        ("Fragebogen: Müller".encode("latin-1"), "bad.qsf: not UTF-8 text at byte 13"),
        (b"[1, 2]", "bad.qsf: not a Qualtrics survey file (.qsf): no SurveyElements"),
        (b'{"SurveyElements": [{"Element": "BL", "Payload": []}]}', "bad.qsf: no questions (no SQ elements)"),
        (
            b'{"SurveyElements": [{"Element": "SQ", "Payload": {"QuestionID": "QID1", "QuestionType": "DB"}}]}',
            "bad.qsf: no question that collects answers",
        ),
        (b'{"SurveyElements": [{"Element": "SQ", "Payload": "x"}]}', "bad.qsf: SurveyElements[0] (SQ): Payload"),
    ],
)
def test_bad_definition_files_are_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.qsf"
    path.write_bytes(content)
    with pytest.raises(DefinitionError) as info:
        read_definition(path)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_unsupported_question_types_stay_raw_and_are_named(tmp_path: Path) -> None:
    data = json.loads(DEFINITION.read_text(encoding="utf-8"))
    heat = {"QuestionID": "QID14", "QuestionType": "HeatMap", "Selector": "Image", "DataExportTag": "Q14"}
    data["SurveyElements"].append({"Element": "SQ", "PrimaryAttribute": "QID14", "Payload": heat})
    next(e for e in data["SurveyElements"] if e["Element"] == "BL")["Payload"][0]["BlockElements"].append(
        {"Type": "Question", "QuestionID": "QID14"}
    )
    spec = parse_definition(data, "heat.qsf")
    rows = build_rows(Variant())
    for name, value in (("Q14_1_x", "31"), ("Q14_1_y", "12")):
        rows[0].append(name)
        rows[1].append("Click on the image")
        rows[2].append(json.dumps({"ImportId": "QID14", "point": 1, "coord": name[-1]}))
        for row in rows[3:]:
            row.append(value)
    plan, _ = _plan_with_definition(read_export(_write(tmp_path / "heat.csv", rows)), spec, "heat.qsf", 1, set())
    assert plan.warnings == [
        "Q14 (HeatMap/Image) is a question type this import does not read; its columns stay in the raw rows: "
        "Q14_1_x, Q14_1_y"
    ]
    assert "Q14" not in {q.qid for q in plan.questions}
    assert plan.responses[0].raw["Q14_1_x"] == "31"


def test_a_tsv_download_in_utf16_reads_like_the_csv(tmp_path: Path, spec: SurveyDefinition) -> None:
    """Qualtrics' TSV download is UTF-16 with a BOM; it holds the same export as the CSV one."""
    rows = build_rows(Variant())
    tsv = tmp_path / "export.tsv"
    lines = ["\t".join("" if c is None else c for c in row) for row in rows]
    tsv.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-16"))
    as_csv = _write(tmp_path / "export.csv", rows)
    from_tsv, _ = plan_of(tsv, spec)
    assert read_export(tsv).format == "tsv"
    assert answers_of(from_tsv) == answers_of(plan_of(as_csv, spec)[0])


def test_an_unforeseen_importid_suffix_falls_back_to_the_name_within_the_same_question(
    tmp_path: Path, spec: SurveyDefinition
) -> None:
    rows = build_rows(Variant())
    for position, name in enumerate(rows[0]):
        if name in ("Q9_1", "Q9_2"):  # ImportIds written as {"ImportId": "QID9", "choiceId": "1"}: still Q9's items
            rows[2][position] = json.dumps({"ImportId": "QID9", "choiceId": name[-1]})
    plan, _ = plan_of(_write(tmp_path / "variant.csv", rows), spec)
    assert answers_of(plan) == answers_of(plan_of(_write(tmp_path / "plain.csv", build_rows(Variant())), spec)[0])
    crossed = build_rows(Variant())
    crossed[2][crossed[0].index("Q9_1")] = json.dumps({"ImportId": "QID5_1"})  # named like Q9's, but Q5's column
    with pytest.raises(SurveyImportError, match=r"not in the export: Q9_1; in the export but not in the definition"):
        plan_of(_write(tmp_path / "crossed.csv", crossed), spec)
