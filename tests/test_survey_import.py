"""`interop survey import` of the real Qualtrics export on SQLite and PostgreSQL, checked against the file itself."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.models.ingest import IngestRun
from db.models.survey import Survey, SurveyAnswer, SurveyQuestion, SurveyResponse
from db.queries.survey import (
    CHOICE_KINDS,
    SurveyFilter,
    answers,
    list_questions,
    list_surveys,
    question_counts,
    respondent_count,
    responses,
    survey_counts,
)

EXPORT = Path("data/paper-artifact/survey/interopSurvey.xlsx")
ARTIFACT = "AnswerDisplayOrder"
#: Split at commas that are not followed by whitespace and not inside "( … )": written independently of
#: miners.survey.choices (a regex instead of a scanner) so the two can check each other.
SEPARATOR = re.compile(r",(?!\s)(?![^()]*\))")


@pytest.fixture(scope="module")
def export_path(shared_dir: Path) -> Path:
    return shared_dir / EXPORT


@pytest.fixture(scope="module")
def frame(export_path: Path) -> pd.DataFrame:
    """The export as pandas reads it: QID header, the question-text row skipped, one row per respondent."""
    return pd.read_excel(export_path, header=0, skiprows=[1], dtype=str)


def table_counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        return {
            model.__tablename__: session.exec(select(func.count()).select_from(model)).one()  # type: ignore[attr-defined]
            for model in (Survey, SurveyQuestion, SurveyResponse, SurveyAnswer, IngestRun)
        }


def fragments(cell: str) -> list[str]:
    return [f.strip() for f in SEPARATOR.split(cell) if f.strip() and f.strip() != ARTIFACT]


def expected_counts(frame: pd.DataFrame, qid: str, kind: str) -> tuple[dict[str, int], int]:
    """({choice or text: respondents}, respondents who answered) computed from the file alone."""
    cells = frame[qid].dropna()
    if kind == "multi":
        per_row = [list(dict.fromkeys(fragments(c))) for c in cells]
        counts: dict[str, int] = {}
        for row in per_row:
            for choice in row:
                counts[choice] = counts.get(choice, 0) + 1
        text_columns = [c for c in frame.columns if c.startswith(f"{qid}_") and c.endswith("_TEXT")]
        return counts, sum(1 for row in per_row if row) if not text_columns else _answered_with_text(frame, qid)
    values = cells.str.strip() if kind == "single" else cells
    values = values[values != ARTIFACT]
    return {str(k): int(v) for k, v in values.value_counts().items()}, len(values)


def _answered_with_text(frame: pd.DataFrame, qid: str) -> int:
    """Respondents with a real choice in QID or a text in one of its _TEXT columns."""
    text_columns = [c for c in frame.columns if c.startswith(f"{qid}_") and c.endswith("_TEXT")]
    answered = frame[qid].fillna("").map(lambda c: bool(fragments(c)))
    for column in text_columns:
        answered |= frame[column].notna()
    return int(answered.sum())


def test_import_matches_counts_derived_from_the_file(cli, engine: Engine, export_path: Path, frame) -> None:  # type: ignore[no-untyped-def]
    result = cli("survey", "import", str(export_path), "--survey", "interop")
    assert result.exit_code == 0, result.output
    assert "92 responses in interopSurvey.xlsx: 92 new" in result.stdout
    assert "ignored 18 'AnswerDisplayOrder' fragment(s)" in result.stdout
    assert len(frame) == 92
    assert respondent_count(engine, SurveyFilter("interop")) == 92
    questions = list_questions(engine, SurveyFilter("interop"))
    assert len(questions) == len([c for c in frame.columns if not c.endswith("_TEXT")])
    checked = 0
    for q in questions.itertuples():
        counts = question_counts(engine, SurveyFilter("interop", q.qid))
        expected, n_answered = expected_counts(frame, q.qid, q.kind)
        stored = {row.choice: row.count for row in counts.itertuples() if row.count}
        assert stored == expected, q.qid
        assert set(counts["n_answered"]) == {n_answered}, q.qid
        assert set(counts["n_respondents"]) == {92}, q.qid
        assert q.n_answered == n_answered
        checked += 1
    assert checked == 22
    stacked = survey_counts(engine, SurveyFilter("interop", kinds=CHOICE_KINDS))
    assert set(stacked["qid"]) == set(questions.loc[questions["kind"] != "text", "qid"])
    q61 = question_counts(engine, SurveyFilter("interop", "Q61"))
    pd.testing.assert_frame_equal(
        stacked[stacked["qid"] == "Q61"].drop(columns="qid").reset_index(drop=True), q61, check_like=False
    )


def test_commas_inside_choices_are_not_split(cli, engine: Engine, export_path: Path, frame) -> None:  # type: ignore[no-untyped-def]
    assert cli("survey", "import", str(export_path), "--survey", "interop").exit_code == 0
    counts = question_counts(engine, SurveyFilter("interop", "Q63")).set_index("choice")
    for choice in (
        "Framework-to-framework Model Conversion (e.g., converting models from TensorFlow to PyTorch)",
        "Model conversion for deployment (e.g., converting to ONNX for deployment using ONNXRuntime or TensorRT)",
    ):
        in_file = frame["Q63"].dropna().map(lambda cell, c=choice: f",{c}," in f",{cell},").sum()
        assert in_file > 0
        assert counts.loc[choice, "count"] == in_file
    # What naive comma splitting would have produced never became a choice.
    assert all(c.count("(") == c.count(")") and not c.startswith("converting") for c in counts.index)
    assert counts["n_answered"].iloc[0] == frame["Q63"].dropna().map(lambda c: bool(fragments(c))).sum()
    q23 = list_questions(engine, SurveyFilter("interop")).set_index("qid").loc["Q23", "choices"]
    assert "Model size (e.g. base, large, 50, 101)" in q23
    assert not any(c.strip() in {"large", "50", "101)"} for c in q23)


def test_text_columns_attach_to_their_choice(cli, engine: Engine, export_path: Path, frame) -> None:  # type: ignore[no-untyped-def]
    assert cli("survey", "import", str(export_path), "--survey", "interop").exit_code == 0
    stored = answers(engine, SurveyFilter("interop"))
    questions = list_questions(engine, SurveyFilter("interop")).set_index("qid")
    text_columns = [c for c in frame.columns if c.endswith("_TEXT")]
    assert len(text_columns) == 9
    for column in text_columns:
        qid = column.split("_")[0]
        label = next(label for label, col in questions.loc[qid, "text_columns"].items() if col == column)
        assert label.startswith("Other")
        got = stored[(stored["qid"] == qid) & stored["text"].notna()]
        assert sorted(got["choice"].unique()) == ([label] if frame[column].notna().any() else [])
        assert sorted(got["text"]) == sorted(frame[column].dropna())
    q60 = stored[(stored["qid"] == "Q60") & (stored["choice"] == "Other (please specify)")]
    assert sorted(q60["text"]) == ["Axon/Nx", "Peft", "keras"]


def test_reimport_adds_nothing_and_says_so(cli, engine: Engine, export_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("survey", "import", str(export_path), "--survey", "interop").exit_code == 0
    before = table_counts(engine)
    again = cli("survey", "import", str(export_path), "--survey", "interop")
    assert again.exit_code == 0, again.output
    assert "nothing new: all 92 responses of interopSurvey.xlsx are already in survey 'interop'" in again.stdout
    after = table_counts(engine)
    assert after == {**before, "ingest_run": before["ingest_run"] + 1}
    # The CSV download of the same export is the same data: same keys, nothing new either.
    from tests.test_survey_reader import xlsx_to_csv

    as_csv = cli("survey", "import", str(xlsx_to_csv(export_path, tmp_path / "interopSurvey.csv")), "-s", "interop")
    assert as_csv.exit_code == 0, as_csv.output
    assert "nothing new" in as_csv.stdout
    assert table_counts(engine)["survey_answer"] == before["survey_answer"]
    with Session(engine) as session:
        runs = session.exec(select(IngestRun).order_by(IngestRun.id)).all()
    assert [(r.kind, r.status) for r in runs] == [("survey-import", "ok")] * 3
    assert runs[0].counts["responses_new"] == 92
    assert runs[1].counts["responses_new"] == 0 and runs[1].counts["responses_unchanged"] == 92
    assert runs[0].parameters["survey"] == "interop"


def _write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


HEADER = [
    ["ResponseId", "Q1", "Q2", "Q2_4_TEXT"],
    [
        "Response ID",
        "Do you consent?",
        "Tools? (check all that apply) - Selected Choice",
        "Tools? (check all that apply) - Other (please specify) - Text",
    ],
]


def test_newer_export_adds_and_updates_by_response_id(cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    v1 = _write(
        tmp_path / "v1.csv", [*HEADER, ["R_a", "Yes", "ONNX,Other (please specify)", "TVM"], ["R_b", "Yes", "NNEF", ""]]
    )
    v2 = _write(
        tmp_path / "v2.csv",
        [
            *HEADER,
            ["R_a", "Yes", "ONNX,Other (please specify)", "TVM"],
            ["R_b", "Yes", "NNEF,ONNX", ""],
            ["R_c", "No", "", ""],
        ],
    )
    assert cli("survey", "import", str(v1), "--survey", "s").exit_code == 0
    result = cli("survey", "import", str(v2), "--survey", "s")
    assert result.exit_code == 0, result.output
    assert "3 responses in v2.csv: 1 new, 1 updated, 1 unchanged" in result.stdout
    stored = answers(engine, SurveyFilter("s"))
    assert sorted(stored[(stored["response_key"] == "R_b") & (stored["qid"] == "Q2")]["choice"]) == ["NNEF", "ONNX"]
    assert list(responses(engine, SurveyFilter("s", include_excluded=True))["response_key"]) == ["R_a", "R_b", "R_c"]
    counts = question_counts(engine, SurveyFilter("s", "Q2")).set_index("choice")
    assert counts.loc["ONNX", "count"] == 2 and counts.loc["ONNX", "n_answered"] == 2
    assert counts.loc["ONNX", "n_respondents"] == 3
    assert counts.loc["ONNX", "pct_of_answered"] == pytest.approx(100.0)
    assert counts.loc["ONNX", "pct_of_respondents"] == pytest.approx(200 / 3)
    chosen = question_counts(engine, SurveyFilter("s", "Q2", denominator="respondents"))
    assert chosen.attrs["denominator"] == "respondents"
    assert list(chosen["pct"]) == list(chosen["pct_of_respondents"])


BAD_FILES = {
    "empty.csv": ([], "empty.csv: the file is empty"),
    "noheader.csv": (
        [["Yes, I consent", "PyTorch,TensorFlow"], ["Yes, I consent", "PyTorch"]],
        "noheader.csv: no header row",
    ),
    "people.csv": ([["name", "age"], ["ann", "31"]], "people.csv: not a Qualtrics export"),
    "dups.csv": ([["Q1", "Q2", "Q2"], ["a", "b", "c"], ["x", "y", "z"]], "dups.csv: row 1: duplicate question ID 'Q2'"),
    "headeronly.csv": ([["Q1", "Q2"], ["Consent?", "Tools?"]], "headeronly.csv: the export has header rows but no"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_fail_with_one_line_and_write_nothing(cli, engine: Engine, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    rows, message = BAD_FILES[name]
    result = cli("survey", "import", str(_write(tmp_path / name, rows)), "--survey", "bad")
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.strip().startswith("error:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    counts = table_counts(engine)
    assert counts.pop("ingest_run") == 1, "the failed import is on record for the Overview"
    assert set(counts.values()) == {0}
    with Session(engine) as session:
        run = session.exec(select(IngestRun)).one()
    assert (run.kind, run.status) == ("survey-import", "failed")
    assert message in (run.error or "") and "sha256" not in run.parameters


def test_failure_inside_the_transaction_leaves_no_survey_rows(cli, engine: Engine, export_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("survey", "import", str(export_path), "--survey", "interop", "--exclude", "Q99=No")
    assert result.exit_code == 2
    assert "exclusion rule 'Q99=No': no question 'Q99' in this survey" in result.stderr
    counts = table_counts(engine)
    assert counts.pop("ingest_run") == 1
    assert set(counts.values()) == {0}
    with Session(engine) as session:
        run = session.exec(select(IngestRun)).one()
    assert run.status == "failed" and "Q99" in (run.error or "")


def test_exclusion_flags_without_deleting(cli, engine: Engine, export_path: Path, frame) -> None:  # type: ignore[no-untyped-def]
    no_consent = int((frame["Q52"] != "Yes, I consent").sum())
    assert no_consent == 1
    result = cli(
        "survey", "import", str(export_path), "-s", "interop", "-x", "Q52!=Yes, I consent", "--reason", "no consent"
    )
    assert result.exit_code == 0, result.output
    assert "respondents: 91 included, 1 excluded" in result.stdout
    assert respondent_count(engine, SurveyFilter("interop")) == 91
    assert respondent_count(engine, SurveyFilter("interop", include_excluded=True)) == 92
    flagged = responses(engine, SurveyFilter("interop", include_excluded=True))
    assert list(flagged.loc[flagged["excluded"], "exclusion_reason"]) == ["no consent"]
    excluded_row = int(flagged.loc[flagged["excluded"], "row_number"].iloc[0])
    assert pd.isna(frame["Q52"].iloc[excluded_row - 3])  # file row 3 is the first respondent
    counts = question_counts(engine, SurveyFilter("interop", "Q61"))
    assert set(counts["n_respondents"]) == {91}
    everyone = question_counts(engine, SurveyFilter("interop", "Q61", include_excluded=True))
    assert everyone["count"].sum() == frame["Q61"].notna().sum()
    assert list_surveys(engine).iloc[0]["exclusion_rules"] == ["Q52!=Yes, I consent"]

    key = str(flagged.loc[~flagged["excluded"], "response_key"].iloc[0])
    one = cli("survey", "exclude", "interop", "--response", key, "--reason", "duplicate respondent")
    assert one.exit_code == 0, one.output
    assert "respondents: 90 included, 2 excluded" in one.stdout
    # Re-importing keeps the rules and flags.
    assert "respondents: 90 included, 2 excluded" in cli("survey", "import", str(export_path), "-s", "interop").stdout
    cleared = cli("survey", "exclude", "interop", "--clear")
    assert cleared.exit_code == 0 and "2 response(s) included again" in cleared.stdout
    assert respondent_count(engine, SurveyFilter("interop")) == 92
    assert table_counts(engine)["survey_response"] == 92


def test_exclusion_rule_errors(cli, export_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("survey", "import", str(export_path), "-s", "interop").exit_code == 0
    typo = cli("survey", "exclude", "interop", "--where", "Q52=Yes, I consnt")
    assert typo.exit_code == 2
    assert "'Yes, I consnt' is not a choice of Q52" in typo.stderr
    assert cli("survey", "exclude", "interop", "--where", "no operator").exit_code == 2
    missing = cli("survey", "exclude", "nosuch", "--where", "Q1=")
    assert missing.exit_code == 2 and "no survey named 'nosuch'" in missing.stderr
    unknown = cli("survey", "exclude", "interop", "--response", "row:nope")
    assert unknown.exit_code == 2 and "no response with that key" in unknown.stderr


def test_strict_mode_and_unknown_fragments(cli, engine: Engine, export_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    overrides = tmp_path / "q.yaml"
    overrides.write_text("questions:\n  Q60: {choices: [PyTorch, TensorFlow, JAX/FLAX], closed: true}\n")
    strict = cli("survey", "import", str(export_path), "-s", "interop", "-q", str(overrides), "--strict")
    assert strict.exit_code == 2
    assert "fragment(s) match no known choice, first: row" in strict.stderr and "'MLX'" in strict.stderr
    assert table_counts(engine)["survey"] == 0
    lenient = cli("survey", "import", str(export_path), "-s", "interop", "-q", str(overrides))
    assert lenient.exit_code == 0
    assert "unknown fragment(s):" in lenient.stderr and "Q60 (column T): fragment 'MLX'" in lenient.stderr
    stored = answers(engine, SurveyFilter("interop"))
    mlx = stored[(stored["qid"] == "Q60") & (stored["choice"] == "MLX")]
    assert len(mlx) == 5 and not mlx["known"].any()


def test_list_questions_and_counts_commands(cli, export_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("survey", "list").stdout.strip() == "no surveys imported yet"
    assert cli("survey", "import", str(export_path), "-s", "interop").exit_code == 0
    listed = cli("survey", "list")
    assert "interop" in listed.stdout and "92" in listed.stdout
    assert "Q63" in cli("survey", "questions", "interop").stdout
    out = tmp_path / "q60.csv"
    shown = cli("survey", "counts", "interop", "Q60")
    assert shown.exit_code == 0, shown.output
    assert "denominators: answered n=89, all included respondents n=92" in shown.stdout
    assert cli("survey", "counts", "interop", "Q60", "--format", "csv", "--out", str(out)).exit_code == 0
    written = pd.read_csv(out)
    assert list(written.columns) == [
        "choice",
        "count",
        "n_answered",
        "n_respondents",
        "pct_of_answered",
        "pct_of_respondents",
    ]
    assert written.iloc[0]["choice"] == "PyTorch"
    bad = cli("survey", "counts", "interop", "Q999")
    assert bad.exit_code == 2 and "survey 'interop' has no question 'Q999'" in bad.stderr


def test_reimport_keeps_the_kind_the_first_import_chose(cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    header = [["ResponseId", "Q1"], ["Response ID", "Which runtime?"]]
    first = _write(tmp_path / "a.csv", [*header, ["R_1", "ORT"], ["R_2", "ORT"]])
    later = _write(tmp_path / "b.csv", [*header, ["R_1", "ORT"], ["R_2", "ORT"], ["R_3", "TVM"], ["R_4", "TensorRT"]])
    from miners.survey.choices import infer_kind

    assert infer_kind("Which runtime?", ["ORT", "ORT", "TVM", "TensorRT"])[0] == "text"  # alone, b.csv reads as text
    assert cli("survey", "import", str(first), "-s", "s").exit_code == 0
    before = list_questions(engine, SurveyFilter("s")).iloc[0]
    assert before["kind"] == "single"
    result = cli("survey", "import", str(later), "-s", "s")
    assert "2 new, 0 updated, 2 unchanged" in result.stdout
    after = list_questions(engine, SurveyFilter("s")).iloc[0]
    assert (after["kind"], after["kind_reason"]) == (before["kind"], before["kind_reason"])
    assert after["choices"] == ["ORT", "TVM", "TensorRT"]
    assert question_counts(engine, SurveyFilter("s", "Q1")).set_index("choice")["count"].to_dict() == {
        "ORT": 2,
        "TVM": 1,
        "TensorRT": 1,
    }


def test_unmigrated_database_gives_one_actionable_line(tmp_path: Path, monkeypatch, export_path: Path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from cli.main import app

    monkeypatch.setenv("INTEROP_DATABASE_URL", f"sqlite:///{tmp_path / 'blank.db'}")
    result = CliRunner().invoke(app, ["survey", "import", str(export_path), "-s", "interop"])
    assert result.exit_code == 2
    assert "run `interop db upgrade`" in result.stderr
    assert "Traceback" not in result.output


def test_newer_export_with_importid_row(cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = [
        ["StartDate", "Progress", "ResponseId", "Q1", "Q2", "Q2_4_TEXT"],
        ["Start Date", "Progress", "Response ID", "Consent?", "Tools? - Selected Choice", "Tools? - Other - Text"],
        [
            '{"ImportId":"startDate","timeZone":"UTC"}',
            '{"ImportId":"progress"}',
            '{"ImportId":"_recordId"}',
            '{"ImportId":"QID1"}',
            '{"ImportId":"QID2"}',
            '{"ImportId":"QID2_4_TEXT"}',
        ],
        ["2024-03-01 10:00:00", "100", "R_a", "Yes", "ONNX,Other", "TVM"],
        ["2024-03-02 10:00:00", "100", "R_b", "Yes", "ONNX", ""],
    ]
    result = cli("survey", "import", str(_write(tmp_path / "new.csv", rows)), "-s", "new")
    assert result.exit_code == 0, result.output
    questions = list_questions(engine, SurveyFilter("new"))
    assert list(questions["qid"]) == ["Q1", "Q2"]
    with Session(engine) as session:
        import_ids = dict(session.exec(select(SurveyQuestion.qid, SurveyQuestion.import_id)).all())
        raw = session.exec(select(SurveyResponse.raw).where(SurveyResponse.response_key == "R_a")).one()
    assert import_ids == {"Q1": "QID1", "Q2": "QID2"}
    assert raw["StartDate"] == "2024-03-01 10:00:00" and raw["Q2_4_TEXT"] == "TVM"
    keys = responses(engine, SurveyFilter("new", include_excluded=True))["key_source"]
    assert list(keys) == ["ResponseId", "ResponseId"]
    stored = answers(engine, SurveyFilter("new"))
    assert stored[stored["qid"] == "Q2"][["choice", "text"]].fillna("").values.tolist() == [
        ["ONNX", ""],
        ["Other", "TVM"],
        ["ONNX", ""],
    ]


def _answers_of(frame: pd.DataFrame, qid: str, kind: str) -> dict[int, set[str]]:
    """Row index -> the choices that respondent gave to `qid`, read from the file alone."""
    out: dict[int, set[str]] = {}
    for index, cell in frame[qid].dropna().items():
        values = set(fragments(cell)) if kind == "multi" else {cell.strip()}
        values.discard(ARTIFACT)
        if values:
            out[int(index)] = values
    return out


def test_crosstab_of_two_questions_matches_the_file(cli, engine: Engine, export_path: Path, frame) -> None:  # type: ignore[no-untyped-def]
    from db.queries.survey import SurveyLookupError, survey_crosstab

    assert cli("survey", "import", str(export_path), "--survey", "interop").exit_code == 0
    questions = list_questions(engine, SurveyFilter("interop"))
    single = questions[questions["kind"] == "single"].iloc[0]
    multi = questions[questions["kind"] == "multi"].iloc[0]
    rows, cols = _answers_of(frame, single.qid, "single"), _answers_of(frame, multi.qid, "multi")
    expected: dict[tuple[str, str], int] = {}
    for index in rows.keys() & cols.keys():
        for a in rows[index]:
            for b in cols[index]:
                expected[(a, b)] = expected.get((a, b), 0) + 1
    table = survey_crosstab(engine, SurveyFilter("interop", single.qid), multi.qid)
    assert {(r.choice, r.by_choice): r.count for r in table.itertuples()} == expected
    assert table.attrs["n_both"] == len(rows.keys() & cols.keys())
    result = cli("survey", "crosstab", "interop", single.qid, multi.qid, "--format", "csv")
    assert result.exit_code == 0, result.output
    parsed = list(csv.DictReader(result.stdout.splitlines()))
    assert len(parsed) == len(expected) and {"choice", "by_choice", "count", "pct_of_both"} <= set(parsed[0])
    shown = cli("survey", "crosstab", "interop", single.qid, multi.qid)
    assert shown.exit_code == 0 and f"answered both: n={len(rows.keys() & cols.keys())}" in shown.stdout
    with pytest.raises(SurveyLookupError, match="not with itself"):
        survey_crosstab(engine, SurveyFilter("interop", single.qid), single.qid)
    refused = cli("survey", "crosstab", "interop", single.qid, "Q999")
    assert refused.exit_code == 2 and refused.output.strip().startswith("error:")
