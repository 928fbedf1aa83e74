"""`interop report paper` on the real artifact, checked against counts derived here straight from the files."""

from __future__ import annotations

import glob
import json
import math
from collections import Counter
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import yaml
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import text

CONVERTER_OF_SHEET = {"PyTorch": "torch.onnx (PyTorch)", "tf2onnx": "tf2onnx (TensorFlow)"}


def survey_rows(shared: Path) -> tuple[list[str], list[dict[str, str]]]:
    """QIDs of the header row and the 92 respondent rows (the row below the header holds question texts)."""
    path = shared / "data/paper-artifact/survey/interopSurvey.xlsx"
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    qids = [str(c) if c is not None else "" for c in rows[0]]
    people = [
        {q: ("" if v is None else str(v).strip()) for q, v in zip(qids, row, strict=False)}
        for row in rows[2:]
        if any(v not in (None, "") for v in row)
    ]
    return qids, people


def sheet_codes(shared: Path, dimension: str) -> dict[str, Counter]:
    """Code counts of one dimension per converter sheet, using the codebook's column name."""
    book = yaml.safe_load((shared / "codebook/onnx-converter-failures.yaml").read_text())
    column = next(d["column"] for d in book["dimensions"] if d["key"] == dimension)
    wb = openpyxl.load_workbook(
        shared / "data/paper-artifact/failure-analysis/FailureAnalysis.xlsx", read_only=True, data_only=True
    )
    out = {}
    for sheet, converter in CONVERTER_OF_SHEET.items():
        rows = list(wb[sheet].iter_rows(values_only=True))
        col = list(rows[0]).index(column)
        out[converter] = Counter(int(r[col]) for r in rows[1:] if r[0] is not None and isinstance(r[col], int | float))
    return out


def synthetic_counts(shared: Path) -> dict[tuple[str, int], Counter]:
    """Outcome counts per (converter, node count) from the study's JSON files (node count from the file name)."""
    base = shared / "data/paper-artifact/synthetic-models/exporter_test_results"
    out: dict[tuple[str, int], Counter] = {}
    for framework, converter in (("torch", "torch.onnx"), ("tensorflow", "tf2onnx")):
        for path in glob.glob(str(base / framework / "*.json")):
            nodes = int(Path(path).stem.rsplit("_", 1)[1])
            counter = out.setdefault((converter, nodes), Counter())
            for entry in json.loads(Path(path).read_text()):
                if entry.get("hang"):
                    counter["timeout"] += 1
                elif entry["result"] != 0:
                    counter["failed"] += 1
                elif framework == "torch":
                    counter["mismatch" if entry.get("mismatch") else "passed"] += 1
                else:
                    mad = entry.get("mad")
                    ok = mad is not None and not math.isnan(mad) and mad <= 1e-5
                    counter["passed" if ok else "mismatch"] += 1
    return out


def raw_totals(shared: Path) -> dict[tuple[str, str], dict[str, int]]:
    """Per (converter, rule): compared models that pass and that mismatch, read here straight from the JSON files.

    The study's rule (its tf2onnx notebook): `mad > 1e-7` is a mismatch and NaN is filled with 0 (a pass); ours:
    `mad <= 1e-5` passes and NaN/Inf mismatch. torch stores a flag, the same under both rules."""
    base = shared / "data/paper-artifact/synthetic-models/exporter_test_results"
    out: dict[tuple[str, str], dict[str, int]] = {}
    for framework, converter in (("torch", "torch.onnx"), ("tensorflow", "tf2onnx")):
        study = {"pass": 0, "output mismatch": 0, "failed": 0}
        ours = {"pass": 0, "output mismatch": 0, "failed": 0}
        for path in sorted((base / framework).glob("*.json")):
            for entry in json.loads(path.read_text()):
                if entry["result"] != 0:
                    study["failed"] += 1
                    ours["failed"] += 1
                    continue
                if framework == "torch":
                    bad_study = bad_ours = bool(entry["mismatch"])
                else:
                    mad = float(entry["mad"])
                    bad_study = (0.0 if math.isnan(mad) else mad) > 1e-7
                    bad_ours = not (math.isfinite(mad) and mad <= 1e-5)
                study["output mismatch" if bad_study else "pass"] += 1
                ours["output mismatch" if bad_ours else "pass"] += 1
        out[(converter, "study")], out[(converter, "ours")] = study, ours
    return out


def check_synthetic_totals(report_dir: Path, shared: Path, md: str) -> None:
    """The report's totals under both verdict rules equal the counts computed here from the raw JSON."""
    totals = pd.read_csv(report_dir / "synthetic_totals.csv").set_index(["converter", "rule"])
    expected = raw_totals(shared)
    assert set(totals.index) == set(expected)
    for key, counts in expected.items():
        row = totals.loc[key]
        assert int(row["pass"]) == counts["pass"], key
        assert int(row["output mismatch"]) == counts["output mismatch"], key
        failed = int(row["conversion failure"] + row["runtime (onnxruntime) failure"] + row["timeout"])
        assert failed == counts["failed"], key
        assert int(row["models"]) == sum(counts.values()), key
    # the rules disagree on tf2onnx only, and the report says the study's rule gives the study's counts
    assert expected[("tf2onnx", "study")] != expected[("tf2onnx", "ours")]
    assert expected[("torch.onnx", "study")] == expected[("torch.onnx", "ours")]
    assert "The study's rule reproduces the study's own counts exactly" in md
    assert "Synthetic models (NNSmith): outcomes per converter by stage" in md


def check_figures_and_html(report_dir: Path) -> None:
    """Every figure is a valid PNG and SVG pair next to the tables; the HTML report needs nothing from outside."""
    import re
    import xml.etree.ElementTree as ET

    from PIL import Image

    pngs = sorted(report_dir.glob("figure_*.png"))
    names = {p.stem for p in pngs}
    for required in (
        "figure_synthetic_outcomes",
        "figure_failures_symptom_x_cause",
        "figure_survey_interoperability_Q60",
    ):
        assert required in names, sorted(names)
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            assert image.size[0] > 100 and image.size[1] > 50, png
        svg = png.with_suffix(".svg")
        root = ET.parse(svg).getroot()
        assert root.tag.endswith("svg"), svg
    assert {p.stem for p in report_dir.glob("figure_*.svg")} == names
    md = (report_dir / "paper-report.md").read_text()
    assert all(f"]({p.name})" in md for p in pngs)
    # the survey tables: one heading per question, its text once (not on every row)
    assert "### Q60 · multi-select" in md and md.count("Which framework do you use for model development?") == 1
    page = (report_dir / "paper-report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    sources = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', page, flags=re.I)
    assert sources and all(s.startswith("data:") for s in sources), [s for s in sources if not s.startswith("data:")]
    assert page.count("data:image/png;base64,") == len(pngs)
    assert "<link" not in page.lower() and "@import" not in page and "url(" not in page


@pytest.fixture
def report_dir(cli, shared_dir: Path, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path / "report"
    result = cli("report", "paper", "--artifact", str(shared_dir / "data/paper-artifact"), "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_report_paper_matches_the_files(report_dir: Path, shared_dir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    md = (report_dir / "paper-report.md").read_text()
    for heading in (
        "Choices these numbers depend on",
        "Survey: respondents' background",
        "Failure symptom",
        "Symptom × cause",
        "Inter-rater agreement",
        "Synthetic models",
    ):
        assert heading in md

    # survey: single choices and a multi-select without commas inside its choices
    _, people = survey_rows(shared_dir)
    assert len(people) == 92
    demo = pd.read_csv(report_dir / "survey_demographics.csv")
    interop = pd.read_csv(report_dir / "survey_interoperability.csv")
    for frame, qid in ((demo, "Q1"), (demo, "Q5"), (interop, "Q61")):
        expected = Counter(p[qid] for p in people if p[qid])
        got = frame[frame["qid"] == qid].set_index("choice")["count"].to_dict()
        assert got == dict(expected), qid
        assert set(frame.loc[frame["qid"] == qid, "n_answered"]) == {sum(expected.values())}
        assert set(frame.loc[frame["qid"] == qid, "n_respondents"]) == {92}
    q60 = Counter(c.strip() for p in people for c in p["Q60"].split(",") if p["Q60"])
    got60 = interop[interop["qid"] == "Q60"].set_index("choice")["count"].to_dict()
    assert got60 == dict(q60)
    pct = interop[(interop["qid"] == "Q60") & (interop["choice"] == "PyTorch")].iloc[0]
    answered60 = sum(1 for p in people if p["Q60"])
    assert pct["pct_of_answered"] == pytest.approx(round(100 * q60["PyTorch"] / answered60, 1))

    # thematic tables: the study's survey_analysis.xlsx themes, counted independently from the workbook (every
    # answer of this sheet matches one of the export's, so all its rows count)
    raw = pd.read_excel(
        shared_dir / "data/paper-artifact/survey/survey_analysis.xlsx",
        sheet_name="How to address ONNX issues",
        header=None,
        dtype=str,
        keep_default_na=False,
    )
    first = [str(v).strip().casefold() for v in raw.iloc[0]].index("themes")
    body = raw.iloc[1:][raw.iloc[1:, 0].str.strip() != ""]
    written: Counter[str] = Counter()
    for row in body.iloc[:, first:].itertuples(index=False):
        written.update({t.strip().casefold() for t in row if t.strip()})
    q66 = pd.read_csv(report_dir / "survey_themes_Q66.csv").set_index("theme")["count"]
    assert {str(k).casefold(): int(v) for k, v in q66.items()} == dict(written)
    assert (q66["Community"], q66["Test run"], q66["Versioning"]) == (7, 5, 3)  # the paper's figures
    assert "Survey themes: Q66" in md

    # failure taxonomy per converter: the sheets' code columns
    for dimension in ("symptom", "cause", "component"):
        expected = sheet_codes(shared_dir, dimension)
        table = pd.read_csv(report_dir / f"failures_{dimension}.csv")
        table = table[table["label"] != "(denominator)"]
        for converter, counts in expected.items():
            got = {int(c): int(n) for c, n in zip(table["code"], table[f"{converter} n"], strict=True) if n}
            assert got == dict(counts), (dimension, converter)
    xt = pd.read_csv(report_dir / "failures_symptom_x_cause.csv").set_index("symptom \\ cause")
    assert xt.loc["total", "total"] == 200

    # pilot agreement: recomputed from the Interrater sheet (two side-by-side blocks of 30 issues)
    wb = openpyxl.load_workbook(
        shared_dir / "data/paper-artifact/failure-analysis/PilotStudy.xlsx", read_only=True, data_only=True
    )
    rows = [r for r in list(wb["Interrater"].iter_rows(values_only=True))[2:] if r[0] is not None or r[9] is not None]
    pairs: dict[str, tuple[list[int], list[int]]] = {"cause": ([], []), "symptom": ([], [])}
    for row in rows:
        for start in (0, 9):
            if isinstance(row[start], int | float) and isinstance(row[start + 1], int | float):
                pairs["cause"][0].append(int(row[start + 1]))
                pairs["cause"][1].append(int(row[start + 2]))
                pairs["symptom"][0].append(int(row[start + 4]))
                pairs["symptom"][1].append(int(row[start + 5]))
    agreement = pd.read_csv(report_dir / "pilot_agreement.csv")
    pilot = agreement[agreement["round"] == "pilotstudy"].set_index("dimension")
    for dimension, (r1, r2) in pairs.items():
        assert len(r1) == 60
        assert pilot.loc[dimension, "items"] == 60
        assert pilot.loc[dimension, "percent_agreement"] == pytest.approx(
            sum(a == b for a, b in zip(r1, r2, strict=True)) / 60, abs=1e-3
        )
        assert pilot.loc[dimension, "cohen_kappa"] == pytest.approx(cohen_kappa_score(r1, r2), abs=1e-3)
        # α is read on Krippendorff's scale, κ on Landis–Koch's
        alpha = pilot.loc[dimension, "krippendorff_alpha"]
        expected = "reliable" if alpha >= 0.8 else "tentative conclusions" if alpha >= 0.667 else "unreliable"
        assert pilot.loc[dimension, "α reading (Krippendorff)"] == expected
        assert pilot.loc[dimension, "κ reading (Landis–Koch)"] in ("substantial", "almost perfect")

    # synthetic models: outcome per converter and node count
    synthetic = pd.read_csv(report_dir / "synthetic_outcomes.csv")
    for (converter, nodes), counts in synthetic_counts(shared_dir).items():
        row = synthetic[(synthetic["converter"] == converter) & (synthetic["node_count"] == nodes)].iloc[0]
        assert row["models"] == sum(counts.values()), (converter, nodes)
        for outcome, n in counts.items():
            assert row[outcome] == n, (converter, nodes, outcome)

    # the paper's totals by stage under the study's verdict rule and ours; the figures and the HTML report
    check_synthetic_totals(report_dir, shared_dir, md)
    check_figures_and_html(report_dir)

    # beyond the paper: distinct failures, whose runs are every run without a passing verdict
    distinct = pd.read_csv(report_dir / "distinct_failures.csv")
    for converter in ("torch.onnx", "tf2onnx"):
        failing = sum(
            n
            for (conv, _), c in synthetic_counts(shared_dir).items()
            if conv == converter
            for outcome, n in c.items()
            if outcome != "passed"
        )
        mine = distinct[distinct["converter"] == converter]
        assert int(mine["runs"].sum()) == failing and (mine["signatures"] >= 1).all()
    signatures = pd.read_csv(report_dir / "failure_signatures.csv")
    assert (
        int(signatures["runs"].sum()) == int(distinct["runs"].sum()) and len(signatures) == distinct["signatures"].sum()
    )
    assert "distinct failures (signatures) per converter × stage" in md
    # beyond the paper: ONNX's evolution, from the artifact's opset diff; the sheets' issues carry no dates
    diff = json.loads((shared_dir / "data/paper-artifact/failure-analysis/onnx_opset_diff.json").read_text())
    releases = pd.read_csv(report_dir / "onnx_releases.csv")
    assert len(releases) == len(diff) and int(releases["added"].sum()) == sum(len(v["added"]) for v in diff.values())
    assert "all: too thin for a conclusion: no issue has a creation date" in md
    operators = pd.read_csv(report_dir / "failing_operators_by_opset.csv")
    assert int(operators["runs"].sum()) <= int(distinct["runs"].sum()) and (operators["requested_opset"] == 16).all()

    # a second run imports nothing new and writes the same tables
    again = cli(
        "report",
        "paper",
        "--artifact",
        str(shared_dir / "data/paper-artifact"),
        "--out",
        str(report_dir.parent / "again"),
    )
    assert again.exit_code == 0, again.output
    assert "nothing new" in again.output
    for name in ("survey_demographics", "failures_cause", "synthetic_outcomes", "pilot_agreement", "distinct_failures"):
        first = pd.read_csv(report_dir / f"{name}.csv")
        second = pd.read_csv(report_dir.parent / "again" / f"{name}.csv")
        pd.testing.assert_frame_equal(first, second)

    # the tolerance stated is the one the stored verdicts were judged at, also after a rescore
    assert "(`mad`) at atol=1e-05, rtol=0 (" in md
    assert cli("experiment", "rescore", "--atol", "1e-3", "--campaign", "study-exporter-results").exit_code == 0
    assert (
        cli(
            "report",
            "paper",
            "--artifact",
            str(shared_dir / "data/paper-artifact"),
            "--out",
            str(report_dir.parent / "rejudged"),
        ).exit_code
        == 0
    )
    rejudged = (report_dir.parent / "rejudged" / "paper-report.md").read_text()
    assert "(`mad`) at atol=0.001, rtol=0 (" in rejudged and "the study's own: atol=1e-05, rtol=0" in rejudged


def test_report_paper_refuses_a_directory_that_is_not_the_artifact(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("report", "paper", "--artifact", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "not the study's artifact" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"name: x\ndimensions:\n  - key: a\n    codes: {1: {labl: A}}\n", "unknown key 'labl'"),
        (b"PK\x03\x04\xc1\xff\x00binary", "not UTF-8 text"),
    ],
    ids=["malformed", "binary"],
)
def test_report_paper_with_a_bad_codebook_is_one_error_line_and_imports_nothing(  # type: ignore[no-untyped-def]
    cli, engine, shared_dir: Path, tmp_path: Path, content: bytes, fragment: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(content)
    out = tmp_path / "out"
    result = cli(
        "report",
        "paper",
        "--artifact",
        str(shared_dir / "data/paper-artifact"),
        "--codebook",
        str(bad),
        "--out",
        str(out),
    )
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: ") and fragment in lines[0], result.output
    with engine.connect() as conn:
        for table in ("survey", "survey_response", "codebook_version", "label_round", "conversion_run", "ingest_run"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0, table
    assert not out.exists()


def test_a_failing_step_is_its_own_error_line_and_says_what_stays_imported(  # type: ignore[no-untyped-def]
    cli, engine, shared_dir: Path, tmp_path: Path
) -> None:
    artifact = shared_dir / "data/paper-artifact"
    copy = tmp_path / "artifact"
    for rel in ("survey", "synthetic-models"):
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).symlink_to(artifact / rel)
    (copy / "failure-analysis").mkdir()
    (copy / "failure-analysis/PilotStudy.xlsx").symlink_to(artifact / "failure-analysis/PilotStudy.xlsx")
    (copy / "failure-analysis/FailureAnalysis.xlsx").write_bytes(b"not a workbook")
    codebook = shared_dir / "codebook/onnx-converter-failures.yaml"
    result = cli("report", "paper", "--artifact", str(copy), "--codebook", str(codebook), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "FailureAnalysis.xlsx" in errors[0], result.output
    assert "no report written: stopped at step 4 of 9; steps 1–3 stay imported" in result.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM survey_response")).scalar_one() == 92
        assert conn.execute(text("SELECT count(*) FROM label_round")).scalar_one() == 0
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_every_table_of_the_study_exports(report_dir: Path, cli, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """After the artifact is imported, `interop export` writes every table of every area with its row count."""
    import pyarrow.parquet as pq

    from db.queries.overview import area_counts

    expected = area_counts(engine).set_index("table")["rows"].to_dict()
    result = cli("export", "--format", "parquet", "--out", str(tmp_path / "parquet"))
    assert result.exit_code == 0, result.output
    written = {p.stem: pq.read_metadata(p).num_rows for p in (tmp_path / "parquet").glob("*.parquet")}
    assert written == expected
    assert expected["conversion_run"] == 3544 and expected["survey_response"] == 92
    with engine.connect() as conn:  # imported runs carry their model's node count (the breakdown reads it there)
        drift = conn.execute(
            text(
                "SELECT count(*) FROM conversion_run r JOIN model m ON m.id = r.model_id WHERE NOT "
                "(r.node_count = m.node_count OR (r.node_count IS NULL AND m.node_count IS NULL))"
            )
        ).scalar_one()
    assert drift == 0


def test_synthetic_choice_states_the_tolerance_the_stored_runs_were_judged_at(cli, engine, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """After a rescore the report names the new tolerance (and the study's own), not the one of the import."""
    from reporting.paper import _synthetic, judged_at

    results = shared_dir / "data/paper-artifact/synthetic-models/exporter_test_results"
    assert cli("experiment", "import-results", str(results)).exit_code == 0
    compared = sum(
        counts["passed"] + counts["mismatch"]
        for (conv, _), counts in synthetic_counts(shared_dir).items()
        if conv == "tf2onnx"
    )

    def stated() -> str:
        _table, facts = _synthetic(engine)
        return judged_at(facts["tolerances"], facts["campaign"]["spec"]["judged_at"])

    assert stated() == f" at atol=1e-05, rtol=0 ({compared:,} tf2onnx runs)"
    rescored = cli("experiment", "rescore", "--atol", "1e-3", "--campaign", "study-exporter-results")
    assert rescored.exit_code == 0, rescored.output
    assert stated() == (
        f" at atol=0.001, rtol=0 ({compared:,} tf2onnx runs) (re-judged with `interop experiment "
        "rescore`; the study's own: atol=1e-05, rtol=0)"
    )
