"""The study's coding sheets import as rounds; counts are re-derived here straight from the workbooks."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import openpyxl
import pytest
from sqlmodel import Session, func, select

from db.models.github import Issue, Repository
from db.models.labeling import Coding, CodingValue, FinalLabel, LabelItem
from db.queries.labeling import LabelFilter, final_labels, ratings, taxonomy_distribution

CODE_COLUMNS = {
    "cause": "Type By Number",
    "symptom": "Symptom by Number",
    "component": "Component by number",
    "incompatibility_type": "Incomp. Type by Number",
    "type_problem_type": "Type Prob. Type by Number",
}


@pytest.fixture
def study(shared_dir: Path) -> Path:
    return shared_dir / "data" / "paper-artifact" / "failure-analysis"


@pytest.fixture
def loaded(cli, shared_dir: Path):  # type: ignore[no-untyped-def]
    result = cli("label", "codebook", "load", str(shared_dir / "codebook" / "onnx-converter-failures.yaml"))
    assert result.exit_code == 0, result.output
    return cli


def sheet_counts(path: Path, sheet: str, header_row: int = 1) -> dict[str, Counter[int]]:
    """Per dimension, how often each code appears in a sheet's data rows (rows with a URL)."""
    ws = openpyxl.load_workbook(path, data_only=True)[sheet]
    rows = list(ws.iter_rows(values_only=True))
    header = list(rows[header_row - 1])
    url = header.index("URL")
    out: dict[str, Counter[int]] = {}
    for key, column in CODE_COLUMNS.items():
        if column in header:
            idx = [i for i, h in enumerate(header) if h == column]
            out[key] = Counter(r[i] for r in rows[header_row:] if r[url] for i in idx if r[i] is not None)
    return out


def db_counts(frame, repository: str, coder: str | None = None) -> dict[str, Counter[int]]:  # type: ignore[no-untyped-def]
    sub = frame[frame["repository"] == repository]
    if coder:
        sub = sub[sub["coder"] == coder]
    return {k: Counter(g["code"].tolist()) for k, g in sub.groupby("dimension")}


def test_failure_analysis_final_and_drift_rounds(loaded, engine, study: Path) -> None:  # type: ignore[no-untyped-def]
    path = study / "FailureAnalysis.xlsx"
    result = loaded("label", "import-sheet", str(path))
    assert result.exit_code == 0, result.output
    assert "round 'failureanalysis' (PyTorch, tf2onnx): 200 items" in result.output
    final = ratings(engine, LabelFilter(rounds=("failureanalysis",)))
    assert final["item_id"].nunique() == 200 and set(final["coder"]) == {"study"}
    for sheet, repo in (("PyTorch", "pytorch/pytorch"), ("tf2onnx", "onnx/tensorflow-onnx")):
        expected = sheet_counts(path, sheet)
        assert db_counts(final, repo) == expected
        assert sum(expected["cause"].values()) == 100
    # the study's final codes are final labels straight away
    labels = final_labels(engine, LabelFilter(rounds=("failureanalysis",)))
    assert len(labels) == len(final) and set(labels["decided_by"]) == {"sheet"}
    dist = taxonomy_distribution(engine, LabelFilter(rounds=("failureanalysis",)), "cause")
    pt = dist[dist["repository"] == "pytorch/pytorch"].set_index("code")["count"].to_dict()
    assert pt == dict(sheet_counts(path, "PyTorch")["cause"])

    drift = ratings(engine, LabelFilter(rounds=("failureanalysis-drift-testing",)))
    assert set(drift["coder"]) == {"Rater A", "Rater B"}
    for sheet, repo in (("PT Drift Testing", "pytorch/pytorch"), ("TF Drift Testing", "onnx/tensorflow-onnx")):
        both = sheet_counts(path, sheet, header_row=2)  # Rater A and B columns share the header names
        mine = db_counts(drift, repo)
        assert mine == both
        assert drift[drift["repository"] == repo]["item_id"].nunique() == 9


def test_pilot_study_per_rater_sheets_cross_checked_with_interrater(loaded, engine, study: Path) -> None:  # type: ignore[no-untyped-def]
    path = study / "PilotStudy.xlsx"
    result = loaded("label", "import-sheet", str(path))
    assert result.exit_code == 0, result.output
    assert "cross-checked 240 cells" in result.output
    pilot = ratings(engine, LabelFilter(rounds=("pilotstudy",)))
    assert sorted(pilot["dimension"].unique()) == ["cause", "symptom"]
    assert pilot["item_id"].nunique() == 60
    for sheet, repo, coder in (
        ("PyTorch Issues - R1", "pytorch/pytorch", "R1"),
        ("tf2onnx Issues - R2", "onnx/tensorflow-onnx", "R2"),
    ):
        assert db_counts(pilot, repo, coder) == sheet_counts(path, sheet)
    # the Interrater sheet: R1 and R2 disagree on exactly the rows whose "Agree?" cell is FALSE
    ws = openpyxl.load_workbook(path, data_only=True)["Interrater"]
    rows = list(ws.iter_rows(min_row=3, values_only=True))
    disagree_cause = sum(1 for r in rows for i in (3, 12) if r[i] is False)
    wide = pilot[pilot["dimension"] == "cause"].pivot(index="item_id", columns="coder", values="code")
    # the per-rater sheets' "Description" cells (a rater's summary of the issue) are kept as the coding's note
    with Session(engine) as s:
        notes = [c.note for c in s.exec(select(Coding)).all() if c.note]
    wb = openpyxl.load_workbook(path, data_only=True)
    described = [
        r for name in wb.sheetnames[1:] for r in wb[name].iter_rows(min_row=2, values_only=True) if r[2] and r[3]
    ]
    assert len(notes) == len(described) > 0 and "Switch op not supported" in notes
    assert int((wide["R1"] != wide["R2"]).sum()) == disagree_cause == 5


def test_import_is_idempotent_and_completes_url_only_issues_without_duplicates(loaded, engine, study: Path) -> None:  # type: ignore[no-untyped-def]
    # an issue the GitHub miner already has (hydrated) must be reused, not duplicated or overwritten
    with Session(engine) as s:
        repo = Repository(full_name="pytorch/pytorch")
        s.add(repo)
        s.flush()
        s.add(Issue(repository_id=repo.id, number=49403, title="mined title", hydrated=True))
        s.commit()
    path = study / "FailureAnalysis.xlsx"
    loaded("label", "import-sheet", str(path))

    def snapshot() -> tuple[int, ...]:
        with Session(engine) as s:
            return tuple(
                s.exec(select(func.count()).select_from(t)).one()
                for t in (Issue, Repository, LabelItem, Coding, CodingValue, FinalLabel)
            )

    before = snapshot()
    again = loaded("label", "import-sheet", str(path))
    text = " ".join(again.output.split())
    assert (
        "round 'failureanalysis' (PyTorch, tf2onnx): nothing new: 200 items already coded as in the sheet "
        "(200 codings by study)" in text
    )
    assert (
        "round 'failureanalysis-drift-testing' (PT Drift Testing, TF Drift Testing): nothing new: 18 items "
        "already coded as in the sheet (36 codings by Rater A, Rater B)" in text
    )
    assert "unchanged" not in text
    assert snapshot() == before
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Issue)).one() == 200  # the 18 drift issues are among them
        mined = s.exec(select(Issue).where(Issue.number == 49403)).one()
        assert mined.title == "mined title" and mined.hydrated
        url_only = s.exec(select(Issue).where(Issue.number == 53730)).one()
        assert not url_only.hydrated and url_only.title and url_only.title.startswith("[ONNX] RuntimeError")


def test_bad_cell_is_one_line_naming_sheet_row_column_and_nothing_is_written(
    loaded,
    engine,
    study: Path,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    path = tmp_path / "FailureAnalysis.xlsx"
    shutil.copy(study / "FailureAnalysis.xlsx", path)
    wb = openpyxl.load_workbook(path)
    wb["tf2onnx"]["E50"] = 99  # cause 99 is not in the codebook
    wb.save(path)
    result = loaded("label", "import-sheet", str(path))
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "FailureAnalysis.xlsx!tf2onnx row 50 column 'Type By Number': code 99" in text
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Coding)).one() == 0
        assert s.exec(select(func.count()).select_from(Issue)).one() == 0


def test_label_column_must_match_the_code(loaded, engine, study: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "fa.xlsx"
    shutil.copy(study / "FailureAnalysis.xlsx", path)
    wb = openpyxl.load_workbook(path)
    wb["PyTorch"]["H3"] = "Hang"  # symptom 1 (Crash) labelled Hang
    wb.save(path)
    result = loaded("label", "import-sheet", str(path), "--sheet", "PyTorch")
    assert result.exit_code == 2
    assert "label 'Hang' does not match code 1" in " ".join(result.output.split())


def test_a_new_codebook_version_leaves_old_codings_on_theirs(
    loaded,
    engine,
    study: Path,
    shared_dir: Path,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    from db.models.labeling import CodebookDimension, CodebookVersion, LabelRound

    loaded("label", "import-sheet", str(study / "PilotStudy.xlsx"))
    changed = tmp_path / "book.yaml"
    text = (shared_dir / "codebook" / "onnx-converter-failures.yaml").read_text()
    changed.write_text(text.replace("1: {label: Crash,", "1: {label: Crash, aliases: [Error],"))
    out = loaded("label", "codebook", "load", str(changed))
    assert "stored as version 2" in out.output
    with Session(engine) as s:
        rnd = s.exec(select(LabelRound).where(LabelRound.name == "pilotstudy")).one()
        assert s.get(CodebookVersion, rnd.codebook_version_id).version == 1

    def coded_versions() -> set[int]:
        with Session(engine) as s:
            return set(
                s.exec(
                    select(CodebookVersion.version)
                    .join(CodebookDimension, CodebookDimension.version_id == CodebookVersion.id)
                    .join(CodingValue, CodingValue.dimension_id == CodebookDimension.id)
                ).all()
            )

    assert coded_versions() == {1}
    # re-importing into the existing round keeps using the round's own version, not the newest one
    again = loaded("label", "import-sheet", str(study / "PilotStudy.xlsx"))
    assert again.exit_code == 0, again.output
    assert coded_versions() == {1}
    fresh = loaded("label", "import-sheet", str(study / "PilotStudy.xlsx"), "--round", "pilot-v2")
    assert fresh.exit_code == 0, fresh.output
    with Session(engine) as s:
        rnd = s.exec(select(LabelRound).where(LabelRound.name == "pilot-v2")).one()
        assert s.get(CodebookVersion, rnd.codebook_version_id).version == 2
    assert (
        len(ratings(engine, LabelFilter(rounds=("pilot-v2",))))
        == len(ratings(engine, LabelFilter(rounds=("pilotstudy",))))
        == 60 * 2 * 2
    )


def test_reimport_reads_the_sheet_with_the_rounds_version_even_where_the_newest_rejects_it(  # type: ignore[no-untyped-def]
    loaded, engine, study: Path, shared_dir: Path, tmp_path: Path
) -> None:
    from db.models.labeling import CodebookVersion, LabelRound

    path = study / "FailureAnalysis.xlsx"
    assert loaded("label", "import-sheet", str(path)).exit_code == 0
    # version 2 drops the alias the sheets' misspelled "Incompatability" labels need
    text = (shared_dir / "codebook" / "onnx-converter-failures.yaml").read_text()
    assert "aliases: [Incompatability], " in text
    v2 = tmp_path / "book.yaml"
    v2.write_text(text.replace("aliases: [Incompatability], ", ""))
    assert "stored as version 2" in loaded("label", "codebook", "load", str(v2)).output
    with Session(engine) as s:
        before = s.exec(select(func.count()).select_from(CodingValue)).one()
    again = loaded("label", "import-sheet", str(path))
    assert again.exit_code == 0, again.output
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(CodingValue)).one() == before
        used = {r.name: s.get(CodebookVersion, r.codebook_version_id).version for r in s.exec(select(LabelRound))}
    assert used == {"failureanalysis": 1, "failureanalysis-drift-testing": 1}
    # a new round takes the newest version, which rejects the misspelling
    fresh = loaded("label", "import-sheet", str(path), "--sheet", "PyTorch", "--round", "fa-v2")
    assert fresh.exit_code == 2
    assert "label 'Incompatability' does not match code 2" in " ".join(fresh.output.split())


def test_reimport_of_a_changed_sheet_counts_what_changed(loaded, engine, study: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "FailureAnalysis.xlsx"
    shutil.copy(study / "FailureAnalysis.xlsx", path)
    assert loaded("label", "import-sheet", str(path), "--sheet", "PyTorch").exit_code == 0
    wb = openpyxl.load_workbook(path)
    ws = wb["PyTorch"]
    header = [c.value for c in ws[1]]
    code_cell = ws.cell(row=3, column=header.index("Symptom by Number") + 1)
    code_cell.value = 5 if code_cell.value != 5 else 1
    ws.cell(row=3, column=header.index("Symptoms") + 1).value = None  # the label column may stay empty
    wb.save(path)
    again = loaded("label", "import-sheet", str(path), "--sheet", "PyTorch")
    assert again.exit_code == 0, again.output
    text = " ".join(again.output.split())
    assert "100 codings (0 new, 1 changed, 99 unchanged, 0 removed)" in text and "nothing new" not in text
    number = int(str(ws.cell(row=3, column=header.index("URL") + 1).value).rstrip("/").rsplit("/", 1)[1])
    labels = final_labels(engine, LabelFilter(rounds=("failureanalysis",))).set_index(["item", "dimension"])
    assert labels.loc[(f"pytorch/pytorch#{number}", "symptom"), "code"] == code_cell.value


def _rename(sheet: str, *pairs: tuple[str, str]):  # type: ignore[no-untyped-def]
    """A change to a workbook: rename header cells of `sheet` (row 1, or row 2 under raters' names)."""

    def change(wb) -> None:  # type: ignore[no-untyped-def]
        ws = wb[sheet]
        for row in (1, 2):
            for cell in ws[row]:
                for old, new in pairs:
                    if cell.value == old:
                        cell.value = new

    return change


def _shift(sheet: str, n: int):  # type: ignore[no-untyped-def]
    return lambda wb: wb[sheet].insert_rows(1, n)


def _clear_urls(sheet: str):  # type: ignore[no-untyped-def]
    def change(wb) -> None:  # type: ignore[no-untyped-def]
        ws = wb[sheet]
        col = [c.value for c in ws[1]].index("URL") + 1
        for row in range(2, ws.max_row + 1):
            ws.cell(row=row, column=col).value = None
            ws.cell(row=row, column=1).value = None  # ids too: rows without both are legends

    return change


@pytest.mark.parametrize(
    ("workbook", "change", "fragments"),
    [
        # the code column renamed: its label column is still there
        (
            "FailureAnalysis.xlsx",
            _rename("PyTorch", ("Type By Number", "Type By Num")),
            ["FailureAnalysis.xlsx!PyTorch row 1: no column 'Type By Number' for dimension 'cause'", "'Type'"],
        ),
        # code and label column renamed: the conditional dimension that depends on it gives it away
        (
            "FailureAnalysis.xlsx",
            _rename("PyTorch", ("Type By Number", "Cause #"), ("Type", "Cause")),
            ["FailureAnalysis.xlsx!PyTorch row 1: column 'Incomp. Type by Number'", "no column 'Type By Number'"],
        ),
        # a required dimension gone from a sheet of final codes
        (
            "FailureAnalysis.xlsx",
            _rename("tf2onnx", ("Symptom by Number", "S#"), ("Symptoms", "S")),
            ["FailureAnalysis.xlsx!tf2onnx row 1: no column 'Symptom by Number' for the required dimension 'symptom'"],
        ),
        # one per-rater sheet lost a column the others of its round have
        (
            "PilotStudy.xlsx",
            _rename("tf2onnx Issues - R2", ("Type By Number", "T"), ("Type", "TT")),
            ["PilotStudy.xlsx!tf2onnx Issues - R2: no column 'Type By Number' for dimension 'cause'", "R1"],
        ),
        # a rater's block lost a column
        (
            "FailureAnalysis.xlsx",
            lambda wb: setattr(wb["TF Drift Testing"]["J2"], "value", "Cause"),
            ["FailureAnalysis.xlsx!TF Drift Testing row 2 (Rater B)", "no column 'Type By Number'"],
        ),
        (
            "FailureAnalysis.xlsx",
            lambda wb: setattr(wb["PT Drift Testing"]["K2"], "value", "Symptom"),
            ["PT Drift Testing row 2 (Rater B): no column 'Symptom by Number'", "the other rater's block has it"],
        ),
        # the header shifted down: the whole sheet was skipped before
        (
            "FailureAnalysis.xlsx",
            _shift("PyTorch", 3),
            ["FailureAnalysis.xlsx!PyTorch row 4: the header", "must be row 1", "remove the 3 row(s) above it"],
        ),
        ("FailureAnalysis.xlsx", _shift("PT Drift Testing", 2), ["PT Drift Testing row 4: the header"]),
        ("PilotStudy.xlsx", _shift("Interrater", 1), ["PilotStudy.xlsx!Interrater row 3: an inter-rater table"]),
        ("FailureAnalysis.xlsx", _rename("PyTorch", ("URL", "Link")), ["PyTorch row 1: code columns", "no 'URL'"]),
        (
            "FailureAnalysis.xlsx",
            _rename(
                "PyTorch",
                *[(c, c + "!") for c in ("Type By Number", "Symptom by Number", "Component by number")],
                *[(c, c + "!") for c in ("Incomp. Type by Number", "Type Prob. Type by Number")],
            ),
            ["PyTorch row 1: a 'URL' column but none of the codebook's code columns"],
        ),
        ("FailureAnalysis.xlsx", _clear_urls("tf2onnx"), ["FailureAnalysis.xlsx!tf2onnx: no data rows"]),
    ],
)
def test_a_broken_layout_stops_the_import_naming_sheet_and_column(  # type: ignore[no-untyped-def]
    loaded, engine, study: Path, tmp_path: Path, workbook: str, change, fragments: list[str]
) -> None:
    from tests.support.snapshot import last_ingest_run_id, table_digests
    from tests.test_cli_errors import assert_one_error_line

    path = tmp_path / workbook
    shutil.copy(study / workbook, path)
    wb = openpyxl.load_workbook(path)
    change(wb)
    wb.save(path)
    before, runs = table_digests(engine), last_ingest_run_id(engine)
    result = loaded("label", "import-sheet", str(path))
    assert result.exit_code == 2
    assert_one_error_line(result.output, *fragments)
    assert table_digests(engine) == before and last_ingest_run_id(engine) == runs


def test_sheets_that_are_no_coding_sheets_are_named_not_silently_dropped(  # type: ignore[no-untyped-def]
    loaded, engine, study: Path, tmp_path: Path
) -> None:
    path = tmp_path / "fa.xlsx"
    shutil.copy(study / "FailureAnalysis.xlsx", path)
    wb = openpyxl.load_workbook(path)
    wb.create_sheet("Notes")["A1"] = "who coded what, and when"
    wb.save(path)
    result = loaded("label", "import-sheet", str(path), "--sheet", "PyTorch", "--sheet", "Notes")
    assert result.exit_code == 2 and "fa.xlsx!Notes: not a coding sheet" in " ".join(result.output.split())
    ok = loaded("label", "import-sheet", str(path))
    assert ok.exit_code == 0, ok.output
    text = " ".join(ok.output.split())
    assert "skipped sheet Notes (no 'URL' or code column in its first 20 rows): not a coding sheet" in text
    assert "PyTorch: 100 rows read, " in text and "tf2onnx: 100 rows read, " in text


def test_rows_read_and_codes_stored_are_reported_per_sheet(loaded, engine, study: Path) -> None:  # type: ignore[no-untyped-def]
    from db.models.ingest import IngestRun

    result = loaded("label", "import-sheet", str(study / "FailureAnalysis.xlsx"))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    with Session(engine) as s:
        stored = s.exec(select(func.count()).select_from(CodingValue)).one()
        run = s.exec(select(IngestRun).where(IngestRun.kind == "label-import-sheet")).one()
    # independently from the workbook: non-empty code cells of the rows with a URL, per sheet
    expected = {}
    for sheet, header_row in (("PyTorch", 1), ("tf2onnx", 1), ("PT Drift Testing", 2), ("TF Drift Testing", 2)):
        counts = sheet_counts(study / "FailureAnalysis.xlsx", sheet, header_row)
        expected[sheet] = sum(sum(c.values()) for c in counts.values())
        rows = 100 if header_row == 1 else 9
        assert f"{sheet}: {rows} rows read, {expected[sheet]} codes stored (symptom, cause," in text
    assert stored == sum(expected.values()) == run.counts["codes_stored"]
    assert run.counts["rows_read"] == 218
    assert run.parameters["sheets_read"]["PyTorch"]["rows"] == 100
