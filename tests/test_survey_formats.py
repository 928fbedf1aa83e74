"""`interop survey import` of every Qualtrics layout, with and without the survey's definition, on SQLite and
PostgreSQL; damaged and mismatching files are one error line and write nothing."""

from __future__ import annotations

import copy
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.models.ingest import IngestRun
from db.models.survey import (
    Survey,
    SurveyAnswer,
    SurveyDefinition,
    SurveyDerivedValue,
    SurveyQuestion,
    SurveyResponse,
)
from db.queries.survey import (
    SurveyFilter,
    answers,
    definitions,
    derived_values,
    list_questions,
    list_surveys,
    question_counts,
)
from tests.support.qualtrics_exports import ALL_VARIANTS, DEFINITION, Variant, build_rows, write_export

TABLES = (Survey, SurveyDefinition, SurveyQuestion, SurveyResponse, SurveyAnswer, SurveyDerivedValue, IngestRun)


def table_counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return {
            model.__tablename__: session.exec(select(func.count()).select_from(model)).one()  # type: ignore[attr-defined]
            for model in TABLES
        }


def canonical(engine: Engine, survey: str) -> list[tuple]:
    frame = answers(engine, SurveyFilter(survey)).drop(columns="excluded")
    return sorted(tuple(None if v != v else v for v in row) for row in frame.itertuples(index=False))


def test_every_layout_imports_the_same_answers(cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reference = None
    for number, variant in enumerate(ALL_VARIANTS):
        path = write_export(tmp_path / variant.name, variant)
        survey = f"s{number}"
        result = cli("survey", "import", str(path), "-s", survey, "--definition", str(DEFINITION))
        assert result.exit_code == 0, result.output
        style = "legacy (V1 … V10)" if variant.style == "legacy" else "new style"
        values = "numeric values" if variant.values == "numeric" else "choice text"
        assert f"export format: {values}, {style}" in result.stdout
        assert "definition: 10 questions (converter-survey.qsf, stored as version 1)" in result.stdout
        assert "5 responses in" in result.stdout and "17 questions (17 new" in result.stdout
        got = canonical(engine, survey)
        reference = reference or got
        assert got == reference, variant.name
    assert len(reference or []) == 58
    q = list_questions(engine, SurveyFilter("s0")).set_index("qid")
    assert q.loc["Q9_1", ["kind", "qtype", "parent_qid", "kind_source"]].tolist() == [
        "number",
        "slider",
        "Q9",
        "definition",
    ]
    assert q.loc["Q5_1", "definition_version"] == 1


def test_the_import_says_what_it_recognised(cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    german = write_export(
        tmp_path / "daten.xlsx", Variant(values="numeric", import_ids=False, language="DE", fmt="xlsx")
    )
    result = cli("survey", "import", str(german), "-s", "de", "-d", str(DEFINITION))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "export format: numeric values, new style, no ImportId row, language DE; "
        "definition: 10 questions (converter-survey.qsf, stored as version 1)"
    )
    stored = list_surveys(engine).set_index("survey").loc["de"]
    assert stored["definition_version"] == 1
    assert stored["export_layout"]["value_format"] == "numeric" and stored["export_layout"]["language"] == "DE"
    assert stored["export_layout"]["response_id"] == "Antwort-ID"
    counts = question_counts(engine, SurveyFilter("de", "Q3")).set_index("choice")["count"].to_dict()
    assert counts == {"Other (please specify)": 1, "Researcher": 1, "ML engineer": 1, "Student": 1}
    with Session(engine) as session:
        run = session.exec(select(IngestRun)).one()
    assert run.parameters["recognised"]["value_format"] == "numeric"
    assert run.parameters["definition_file"] == str(DEFINITION)


def test_derived_text_iq_values_are_stored_with_their_question(cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_export(tmp_path / "iq.csv", Variant())
    assert cli("survey", "import", str(path), "-s", "iq", "-d", str(DEFINITION)).exit_code == 0
    frame = derived_values(engine, SurveyFilter("iq", "Q8"))
    assert sorted(map(tuple, frame[["response_key", "name", "value"]].values.tolist())) == [
        ("R_1a2B3c4D5e6F7g8", "Sentiment Score", "-0.6"),
        ("R_1a2B3c4D5e6F7g8", "Topics", "Shapes, Crashes"),
        ("R_4dE5f6G7h8I9j0K", "Sentiment Score", "0.8"),
        ("R_4dE5f6G7h8I9j0K", "Topics", "Success"),
    ]
    assert "Q8 - Topics" not in set(list_questions(engine, SurveyFilter("iq"))["qid"])
    again = cli("survey", "import", str(path), "-s", "iq", "-d", str(DEFINITION))
    assert "nothing new" in again.stdout and table_counts(engine)["survey_derived_value"] == 4


def test_the_definition_is_versioned_and_reused(cli, engine: Engine, tmp_path: Path, wide_console: None) -> None:  # type: ignore[no-untyped-def]
    export = write_export(tmp_path / "e.csv", Variant())
    assert cli("survey", "import", str(export), "-s", "v", "-d", str(DEFINITION)).exit_code == 0
    same = cli("survey", "import", str(export), "-s", "v", "-d", str(DEFINITION))
    assert "converter-survey.qsf = stored version 1" in same.stdout and "nothing new" in same.stdout
    data = json.loads(DEFINITION.read_text(encoding="utf-8"))
    changed = copy.deepcopy(data)
    q2 = next(e for e in changed["SurveyElements"] if e.get("PrimaryAttribute") == "QID2")
    q2["Payload"]["Choices"]["1"]["Display"] = "Yes, I agree"
    v2 = tmp_path / "v2.qsf"
    v2.write_text(json.dumps(changed), encoding="utf-8")
    export2 = tmp_path / "e2.csv"
    export2.write_text(
        export.read_text(encoding="utf-8-sig").replace("Yes, I consent", "Yes, I agree"), encoding="utf-8"
    )
    result = cli("survey", "import", str(export2), "-s", "v", "-d", str(v2))
    assert result.exit_code == 0, result.output
    assert "v2.qsf, stored as version 2" in result.stdout and "4 updated" in result.stdout
    assert [d["version"] for d in definitions(engine, SurveyFilter("v"))] == [1, 2]
    q = list_questions(engine, SurveyFilter("v")).set_index("qid")
    assert q.loc["Q2", "choices"] == ["Yes, I agree", "No"] and q.loc["Q2", "kind_reason"].startswith("definition v2:")
    reuse = cli("survey", "import", str(export2), "-s", "v")  # no --definition: the stored current one
    assert "definition: 10 questions (version 2, stored with the survey)" in reuse.stdout
    assert "nothing new" in reuse.stdout
    listed = cli("survey", "definitions", "v")
    assert listed.exit_code == 0 and "v2.qsf" in listed.stdout and "SV_3kQz8bWmT1xYfUa" in listed.stdout
    assert table_counts(engine)["survey_definition"] == 2


def test_without_a_definition_kinds_are_guessed_and_said_so(cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    legacy = write_export(tmp_path / "legacy.csv", Variant(style="legacy", import_ids=False))
    result = cli("survey", "import", str(legacy), "-s", "old")
    assert result.exit_code == 0, result.output
    assert "legacy (V1 … V10)" in result.stdout and "no definition: question kinds guessed" in result.stdout
    stored = list_questions(engine, SurveyFilter("old"))
    assert not any(qid.startswith("V") or qid.startswith("Location") for qid in stored["qid"])
    with Session(engine) as session:
        keys = session.exec(select(SurveyResponse.response_key, SurveyResponse.key_source)).all()
    assert sorted(keys)[0] == ("R_1a2B3c4D5e6F7g8", "ResponseID")
    shown = cli("survey", "questions", "old")
    assert f"{len(stored)} of {len(stored)} question kinds were guessed from the answers" in shown.stdout
    numeric = write_export(tmp_path / "numbers.csv", Variant(values="numeric"))
    warned = cli("survey", "import", str(numeric), "-s", "num")
    assert warned.exit_code == 0
    assert "warning: the answers look like Qualtrics' numeric values" in warned.stderr.replace("\n", " ")
    assert "export format: numeric values, new style, with ImportId row, language EN" in warned.stdout


def test_a_definition_turns_a_guessed_survey_into_the_definitions_questions(
    cli, engine: Engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    split = write_export(tmp_path / "split.csv", Variant(split=True))
    assert cli("survey", "import", str(split), "-s", "g", "-x", "Q2!=Yes, I consent").exit_code == 0
    assert {"Q4_1", "Q4_2"} <= set(list_questions(engine, SurveyFilter("g"))["qid"])
    result = cli("survey", "import", str(split), "-s", "g", "-d", str(DEFINITION))
    assert result.exit_code == 0, result.output
    qids = set(list_questions(engine, SurveyFilter("g"))["qid"])
    assert "Q4" in qids and not {"Q4_1", "Q4_2", "Q4_4_TEXT"} & qids
    assert "dropped" in result.stdout and "respondents: 4 included, 1 excluded" in result.stdout
    counts = question_counts(engine, SurveyFilter("g", "Q4")).set_index("choice")["count"].to_dict()
    assert counts["TensorFlow, Keras"] == 2 and counts["PyTorch"] == 2


def test_a_mismatching_definition_is_refused_and_nothing_is_written(cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = build_rows(Variant())
    drop = rows[0].index("Q7")
    rows = [r[:drop] + r[drop + 1 :] for r in rows]
    path = tmp_path / "mismatch.csv"
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["" if c is None else c for c in r] for r in rows])
    result = cli("survey", "import", str(path), "-s", "m", "-d", str(DEFINITION))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: definition converter-survey.qsf does not match mismatch.csv: in the definition but not in the "
        "export: Q7"
    )
    counts = table_counts(engine)
    assert counts.pop("ingest_run") == 1 and set(counts.values()) == {0}


def _damage(source: Path, target: Path, how: str) -> Path:
    """An .xlsx whose zip directory is intact but whose worksheet is damaged, or otherwise broken."""
    if how == "truncated":
        target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
        return target
    if how == "text":
        target.write_text("StartDate,Q1\nnot,a workbook\n")
        return target
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("sheet1.xml"):
                data = data[: len(data) // 2] + b"<<<" if how == "xml" else data
            zout.writestr(copy.copy(info), data)
    if how == "deflate":  # corrupt the compressed worksheet stream: zlib fails while the sheet is read
        raw = bytearray(target.read_bytes())
        with zipfile.ZipFile(target) as z:
            info = next(i for i in z.infolist() if i.filename.endswith("sheet1.xml"))
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 40
        for k in range(start, start + 40):
            raw[k] ^= 0x5A
        target.write_bytes(bytes(raw))
    return target


BAD = {
    "xml": "damaged .xlsx workbook: sheet 'Sheet' cannot be read (ParseError",
    "deflate": "(zlib.error: Error -3 while decompressing data",
    "truncated": "not a readable .xlsx workbook (BadZipFile",
    "text": "not a readable .xlsx workbook (BadZipFile: File is not a zip file)",
}


@pytest.mark.parametrize("how", sorted(BAD))
def test_damaged_workbooks_are_one_error_line_and_write_nothing(cli, engine: Engine, tmp_path: Path, how: str) -> None:  # type: ignore[no-untyped-def]
    good = write_export(tmp_path / "good.xlsx", Variant(fmt="xlsx"))
    bad = _damage(good, tmp_path / "corrupted.xlsx", how)
    result = cli("survey", "import", str(bad), "-s", "bad", "-d", str(DEFINITION))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: corrupted.xlsx: ") and BAD[how] in lines[0], lines
    assert "Traceback" not in result.output
    counts = table_counts(engine)
    assert counts.pop("ingest_run") == 1 and set(counts.values()) == {0}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("latin.csv", "Q1,Q2\nFrage,Antwort\nMüller,x\n".encode("latin-1"), "latin.csv: not UTF-8 text at byte 21"),
        ("cut.csv", b'Q1,Q2\nConsent?,Tools?\nYes,"PyTorch,', "cut.csv: malformed CSV at line 3"),
        ("bad.qsf", b"\x89PNG\r\n", "bad.qsf: not UTF-8 text at byte 0"),
    ],
)
def test_bad_encodings_and_definitions_are_one_error_line(  # type: ignore[no-untyped-def]
    cli, engine: Engine, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    export = path if name.endswith(".csv") else write_export(tmp_path / "ok.csv", Variant())
    extra = ["-d", str(path)] if name.endswith(".qsf") else []
    result = cli("survey", "import", str(export), "-s", "bad", *extra)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), lines
    counts = table_counts(engine)
    assert counts.pop("ingest_run") == 1 and set(counts.values()) == {0}


def test_overrides_cannot_contradict_a_definition(cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    overrides = tmp_path / "q.yaml"
    overrides.write_text("questions:\n  Q2: {kind: text}\n")
    export = write_export(tmp_path / "e.csv", Variant())
    result = cli("survey", "import", str(export), "-s", "o", "-d", str(DEFINITION), "-q", str(overrides))
    assert result.exit_code == 2
    assert "sets kinds and choices of Q2, which the survey's definition already gives" in result.stderr
    assert table_counts(engine)["survey"] == 0


def test_exclusion_rules_read_numbers_and_ranks(cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    export = write_export(tmp_path / "e.csv", Variant(values="numeric"))
    assert cli("survey", "import", str(export), "-s", "x", "-d", str(DEFINITION)).exit_code == 0
    result = cli("survey", "exclude", "x", "--where", "Q9_1=80", "--where", "Q10!=Speed", "--reason", "test")
    assert result.exit_code == 0, result.output
    assert "respondents: 2 included, 3 excluded" in result.stdout  # R1 (trust 80); R3, R5 (ranked nothing)
    bad = cli("survey", "exclude", "x", "--where", "Q10=Speeed")
    assert bad.exit_code == 2 and "'Speeed' is not a choice of Q10" in bad.stderr


def test_report_paper_imports_the_survey_through_the_workflow(engine: Engine, shared_dir: Path) -> None:
    """`report paper`'s survey step is the package workflow (no Typer app), importing the study exactly."""
    from reporting.paper import import_survey_export

    outcome = import_survey_export(engine, shared_dir / "data/paper-artifact/survey/interopSurvey.xlsx", "study")
    assert (outcome.result.responses_new, outcome.result.answers_written, len(outcome.plan.questions)) == (92, 2419, 22)
    assert outcome.guessed == [q.qid for q in outcome.plan.questions]
    assert shutil.which  # keep the import used


def test_the_study_export_imports_exactly_as_before(cli, engine: Engine, shared_dir: Path) -> None:
    """Same 22 questions (kinds, choices) and the same 2,419 answers as main produced before definitions."""
    import hashlib

    path = shared_dir / "data/paper-artifact/survey/interopSurvey.xlsx"
    result = cli("survey", "import", str(path), "-s", "study")
    assert result.exit_code == 0, result.output
    frame = answers(engine, SurveyFilter("study"))
    rows = sorted(
        [r.response_key, r.qid, int(r.position), r.choice, r.text, bool(r.known)]
        for r in frame.astype(object).where(frame.notna(), None).itertuples()
    )
    digest = hashlib.sha256(json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
    assert len(rows) == 2419
    assert digest == "3c6e9192017306aeb0ba58ccbdcdac962b26910f730af4d620750638af687984"
    questions = list_questions(engine, SurveyFilter("study"))
    spec = [(q.qid, q.kind, list(q.choices)) for q in questions.itertuples()]
    digest = hashlib.sha256(json.dumps(spec, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
    assert digest == "d4235115fb12c1e371905595c50af6e41d83aa72f290bedbb0b7fb60684576de"
    assert set(questions["kind_source"]) == {"guessed"} and questions["qtype"].isna().all()
