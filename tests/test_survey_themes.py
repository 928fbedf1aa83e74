"""Free-text survey answers coded like issues: the study's thematic sheet imported and matched to the Qualtrics
export, theme counts checked against the workbook itself, MASI α against NLTK, and a Label Studio round of survey
answers with a multi-label dimension, on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlmodel import Session, select

from db.models.labeling import Coder, Coding, CodingValue, FinalLabel, LabelItem, LsProject, LsTask
from db.models.survey import SurveyAnswer
from db.queries.labeling import theme_counts
from labeling.agreement import masi_alpha, masi_distance, multi_label_agreement
from labeling.codebook import CodebookError, parse_codebook, read_codebook
from labeling.labelstudio import check_result, choice_value, labeling_config

ROOT = Path(__file__).resolve().parent.parent
THEMES_CODEBOOK = ROOT / "labeling" / "codebooks" / "survey-themes.yaml"
EXPORT = Path("data/paper-artifact/survey/interopSurvey.xlsx")
THEMATIC = Path("data/paper-artifact/survey/survey_analysis.xlsx")
#: The questions the study's sheets code (read off the export's question texts, not from the importer).
SHEET_QUESTION = {"Deployment Consideration": "Q64", "How to address ONNX issues": "Q66", "Use case": "Q78"}
#: The wording the codebook merges; case differences are merged by the lookup itself.
ALIASES = {"deploy requirements": "deployment requirements"}


def _norm(text: str) -> str:
    return " ".join(html.unescape(str(text)).split()).casefold()


@pytest.fixture(scope="module")
def export_frame(shared_dir: Path) -> pd.DataFrame:
    return pd.read_excel(shared_dir / EXPORT, header=0, skiprows=[1], dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def sheets(shared_dir: Path) -> dict[str, pd.DataFrame]:
    """Each sheet as pandas reads it: the data rows with column 0 the answer, columns from "Themes" the themes."""
    out = {}
    for name in SHEET_QUESTION:
        frame = pd.read_excel(shared_dir / THEMATIC, sheet_name=name, header=None, dtype=str, keep_default_na=False)
        header = [str(v).strip().casefold() for v in frame.iloc[0]]
        first = header.index("themes")
        body = frame.iloc[1:]
        body = body[body.iloc[:, 0].str.strip() != ""]
        out[name] = pd.DataFrame(
            {
                "row": body.index + 1,
                "text": body.iloc[:, 0],
                "themes": [[t.strip() for t in r if t.strip()] for r in body.iloc[:, first:].itertuples(index=False)],
            }
        )
    return out


@pytest.fixture
def imported(cli, shared_dir: Path):  # type: ignore[no-untyped-def]
    """The study's export imported as survey `interop` and the themes codebook loaded."""
    result = cli("survey", "import", str(shared_dir / EXPORT), "-s", "interop")
    assert result.exit_code == 0, result.output
    loaded = cli("label", "codebook", "load", str(THEMES_CODEBOOK))
    assert loaded.exit_code == 0, loaded.output
    return cli


def test_thematic_sheet_import_matches_every_answer_or_reports_it(  # type: ignore[no-untyped-def]
    imported, engine, shared_dir: Path, export_frame: pd.DataFrame, sheets: dict[str, pd.DataFrame]
) -> None:
    cli = imported
    result = cli("label", "import-sheet", str(shared_dir / THEMATIC), "--codebook", "onnx-survey-themes")
    assert result.exit_code == 0, result.output
    out = result.output
    # independently: which rows of each sheet have an answer to their question in the export with that text
    expected_unmatched: list[tuple[str, int]] = []
    matched_rows: dict[str, pd.DataFrame] = {}
    for name, frame in sheets.items():
        pool = Counter(_norm(v) for v in export_frame[SHEET_QUESTION[name]] if v.strip())
        keep = []
        for r in frame.itertuples(index=False):
            if pool[_norm(r.text)] > 0:
                pool[_norm(r.text)] -= 1
                keep.append(True)
            else:
                keep.append(False)
                expected_unmatched.append((name, int(r.row)))
        matched_rows[name] = frame[keep]
        n = len(frame)
        line = f"{name}: question {SHEET_QUESTION[name]}, {len(matched_rows[name])} of {n} rows matched"
        assert line in " ".join(out.split()), out
    reported = re.findall(r"unmatched: survey_analysis.xlsx sheet '([^']+)' row (\d+)", out)
    assert sorted((s, int(r)) for s, r in reported) == sorted(expected_unmatched)
    assert expected_unmatched == [("Use case", 68)]  # the sheet's "NA" is no respondent's answer
    total = sum(len(f) for f in sheets.values())
    assert f"summary: {total - len(expected_unmatched)} of {total} rows matched an answer, 1 unmatched" in out
    # spellings merged through the codebook, visibly
    assert "merged 'Deploy requirements' into 'Deployment requirements' (5 cells)" in out
    assert "merged 'inference speed' into 'Inference speed' (3 cells)" in out

    # the theme counts per question, from the stored final labels, equal counts made here from the workbook
    with Session(engine) as session:
        for name, qid in (("How to address ONNX issues", "Q66"), ("Deployment Consideration", "Q64")):
            frame = matched_rows[name]
            want: Counter[str] = Counter()
            for themes in frame["themes"]:
                want.update({ALIASES.get(t.casefold(), t.casefold()) for t in themes})
            got = theme_counts(session, "interop", qid)
            assert dict(zip(got["theme"].str.casefold(), got["count"], strict=True)) == dict(want)
            assert set(got["n_coded"]) == {sum(1 for t in frame["themes"] if t)}
            assert set(got["n_answers"]) == {len(frame)}
            assert np.allclose(got["share"], got["count"] / got["n_coded"])
        paper = theme_counts(session, "interop", "Q66").set_index("theme")["count"]
        assert (paper["Community"], paper["Test run"], paper["Versioning"]) == (7, 5, 3)  # the paper's numbers
    # the newest final labels keep every theme of an answer (one final label per theme), as `label taxonomy` reads
    from db.queries.labeling import LabelFilter, taxonomy_distribution

    spread = taxonomy_distribution(engine, LabelFilter(), "onnx_issue_handling")
    assert dict(zip(spread["label"], spread["count"], strict=True)) == paper.to_dict()
    with Session(engine) as session:
        # every coded item is one of the survey's answers to the sheet's question
        items = session.exec(select(LabelItem).where(LabelItem.kind == "survey_answer")).all()
        assert len(items) == total - 1 and all(i.survey_answer_id for i in items)
        answer_texts = {
            a.id: a.text
            for a in session.exec(select(SurveyAnswer)).all()
            if a.id in {i.survey_answer_id for i in items}
        }
        sheet_texts = {_norm(t) for f in matched_rows.values() for t in f["text"]}
        assert {_norm(t or "") for t in answer_texts.values()} <= sheet_texts
        finals = session.exec(select(FinalLabel)).all()
        assert len(finals) == sum(
            len({ALIASES.get(t.casefold(), t.casefold()) for t in ts})
            for f in matched_rows.values()
            for ts in f["themes"]
        )

    again = cli("label", "import-sheet", str(shared_dir / THEMATIC), "--codebook", "onnx-survey-themes")
    assert again.exit_code == 0 and "0 new, 0 changed, 56 unchanged, 0 removed" in " ".join(again.output.split())
    assert "final themes 0 new, 0 withdrawn, 58 unchanged" in " ".join(again.output.split())


def test_unknown_theme_stops_the_import_and_writes_nothing(imported, engine, shared_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from openpyxl import load_workbook

    book = load_workbook(shared_dir / THEMATIC)
    book["How to address ONNX issues"]["C35"] = "Prayer"
    bad = tmp_path / "survey_analysis.xlsx"
    book.save(bad)
    result = imported("label", "import-sheet", str(bad), "--codebook", "onnx-survey-themes")
    assert result.exit_code == 2
    assert "sheet 'How to address ONNX issues' cell C35: unknown theme 'Prayer'" in result.output
    with Session(engine) as session:
        assert session.exec(select(Coding)).all() == []
        assert session.exec(select(LabelItem)).all() == []


def test_masi_alpha_equals_nltk_on_built_data() -> None:
    from nltk.metrics.agreement import AnnotationTask
    from nltk.metrics.distance import masi_distance as nltk_masi

    rng = np.random.default_rng(7)
    for coders in (2, 3, 4):
        sets = np.empty((50, coders), dtype=object)
        data = []
        for i in range(50):
            base = set(rng.choice(6, size=int(rng.integers(1, 4)), replace=False).tolist())
            for j in range(coders):
                if rng.random() < 0.1:
                    continue  # this coder did not code the item
                given = set(base)
                if rng.random() < 0.35:
                    given ^= {int(rng.integers(0, 6))}
                given = given or {0}
                sets[i, j] = frozenset(given)
                data.append((f"c{j}", f"i{i}", frozenset(given)))
        ours = masi_alpha(sets)
        theirs = AnnotationTask(data=data, distance=nltk_masi).alpha()
        assert ours == pytest.approx(theirs, abs=1e-12)
        for a, b in ((frozenset({1, 2}), frozenset({1, 2, 3, 4})), (frozenset({1}), frozenset({2}))):
            assert masi_distance(a, b) == pytest.approx(nltk_masi(a, b))
    # per-theme presence κ of two coders: sklearn's κ on the 0/1 presence columns, with intervals and warnings
    from sklearn.metrics import cohen_kappa_score

    two = np.array([[frozenset({1, 2}), frozenset({1})]] * 10 + [[frozenset({3}), frozenset({3})]] * 10, dtype=object)
    two[::3, 1] = frozenset({1, 2})
    result = multi_label_agreement(two, ["a", "b"], "r", "themes", {1: "One", 2: "Two", 3: "Three"}, n_boot=200)
    theme = {t["theme"]: t for t in result.themes}
    for code, name in ((1, "One"), (2, "Two"), (3, "Three")):
        a = [int(code in s) for s in two[:, 0]]
        b = [int(code in s) for s in two[:, 1]]
        expected = cohen_kappa_score(a, b) if len(set(a) | set(b)) > 1 else float("nan")
        assert theme[name]["kappa"] == pytest.approx(expected, nan_ok=True)
        lo, hi = theme[name]["kappa_ci"]
        assert lo <= theme[name]["kappa"] <= hi
    assert result.distance == "MASI" and result.as_row()["alpha_distance"] == "MASI"
    assert any(w.startswith("few items (20 < 30)") for w in result.warnings)
    assert result.krippendorff_alpha == pytest.approx(
        AnnotationTask(
            data=[(c, str(i), s) for i, row in enumerate(two) for c, s in zip("ab", row, strict=True)],
            distance=masi_distance,
        ).alpha()
    )


def test_multi_label_codebook_config_and_results() -> None:
    spec = read_codebook(THEMES_CODEBOOK)
    dim = spec.dimension("onnx_issue_handling")
    assert dim.multi and dim.lookup("deploy requirements") is None and dim.lookup("case-by-case") is not None
    config = labeling_config(spec)
    assert '<Choices name="onnx_issue_handling" toName="body" choice="multiple"' in config
    assert '<TextArea name="onnx_issue_handling_new"' in config
    # a codebook without `multi` keeps its normalized content (and hash): no new version on reload
    single = parse_codebook({"name": "x", "dimensions": [{"key": "a", "codes": {1: "One"}}]})
    assert "multi" not in json.dumps(single.to_json())
    with pytest.raises(CodebookError, match="multi-label"):
        parse_codebook(
            {
                "name": "x",
                "dimensions": [
                    {"key": "a", "multi": True, "codes": {1: "One"}},
                    {"key": "b", "required_when": {"a": 1}, "codes": {1: "One"}},
                ],
            }
        )
    with pytest.raises(CodebookError, match="expected true or false"):
        parse_codebook({"name": "x", "dimensions": [{"key": "a", "multi": "yes", "codes": {1: "One"}}]})
    checked = check_result(
        [
            {
                "from_name": "onnx_issue_handling",
                "type": "choices",
                "value": {"choices": [choice_value(1, "Community"), choice_value(3, "Versioning")]},
            },
            {"from_name": "onnx_issue_handling_new", "type": "textarea", "value": {"text": ["Ask a colleague "]}},
        ],
        spec,
    )
    assert checked.valid and checked.sets == {"onnx_issue_handling": (1, 3)}
    assert checked.proposals == [{"dimension": "onnx_issue_handling", "text": "Ask a colleague"}]
    bad = check_result(
        [{"from_name": "onnx_issue_handling", "type": "choices", "value": {"choices": ["99 Magic"]}}], spec
    )
    assert not bad.valid and "unknown choice '99 Magic'" in bad.problems[0]


@pytest.mark.labelstudio
def test_push_survey_answers_and_pull_multi_label_annotations(  # type: ignore[no-untyped-def]
    imported, engine, ls_client, label_studio, monkeypatch: pytest.MonkeyPatch, export_frame, backend: str
) -> None:
    from nltk.metrics.agreement import AnnotationTask
    from nltk.metrics.distance import masi_distance as nltk_masi

    monkeypatch.setenv("INTEROP_LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("INTEROP_LABEL_STUDIO_API_KEY", label_studio.token)
    cli = imported
    round_name = f"themes-{backend}"
    for args, message in (
        (("--survey", "interop"), "push either an issue sample (--sample) or a survey question"),
        (("--sample", "s", "--survey", "interop", "--question", "Q66"), "push either an issue sample"),
        (("--survey", "interop", "--question", "Q61"), "question 'Q61' of survey 'interop' is a single question"),
        (("--survey", "interop", "--question", "Q99"), "survey 'interop' has no question 'Q99'"),
        (("--survey", "other", "--question", "Q66"), "no survey named 'other' (surveys: interop)"),
    ):
        refused = cli("label", "push", *args, "--round", round_name, "--coders", "ann,ben")
        assert refused.exit_code == 2 and message in " ".join(refused.output.split()), refused.output
    with Session(engine) as s:
        assert s.exec(select(LabelItem)).all() == [] and s.exec(select(LsProject)).all() == []
    pushed = cli(
        "label", "push", "--survey", "interop", "--question", "Q66", "--round", round_name, "--coders", "ann,ben"
    )
    assert pushed.exit_code == 0, pushed.output
    answers = [v.strip() for v in export_frame["Q66"] if v.strip()]
    assert f"{len(answers)} items, {len(answers)} coded by several coders" in pushed.output
    with Session(engine) as s:
        projects = {s.get(Coder, p.coder_id).name: p for p in s.exec(select(LsProject)).all()}
        users = {c.name: c.ls_user_id for c in s.exec(select(Coder)).all()}
        tasks = {
            name: {t.item_id: t.ls_task_id for t in s.exec(select(LsTask).where(LsTask.project_id == p.id))}
            for name, p in projects.items()
        }
    assert set(tasks) == {"ann", "ben"} and all(len(t) == len(answers) for t in tasks.values())
    # what the coder sees: the question's text and the answer
    listed = list(ls_client.tasks.list(project=projects["ann"].ls_project_id))
    assert sorted(t.data["body"] for t in listed) == sorted(answers)
    assert all(
        t.data["title"].startswith("Q66: If you encounter such problems, how do you address them") for t in listed
    )
    config = ls_client.projects.get(id=projects["ann"].ls_project_id).label_config
    assert 'choice="multiple"' in config and "onnx_issue_handling_new" in config

    # both coders choose theme sets (ben differs on some); one proposes a new theme; one answer gets no theme
    themes = [(1, "Community"), (2, "Test run"), (3, "Versioning"), (4, "Documentation")]
    planned: dict[str, dict[int, frozenset[int]]] = {"ann": {}, "ben": {}}
    for i, item_id in enumerate(sorted(tasks["ann"])):
        for coder in ("ann", "ben"):
            chosen = {themes[i % 4][0]} | ({themes[(i + 1) % 4][0]} if i % 3 == 0 else set())
            if coder == "ben" and i % 4 == 1:
                chosen = {themes[(i + 2) % 4][0]}
            if i == 5:
                chosen = set()
            planned[coder][item_id] = frozenset(chosen)
            result = []
            if chosen:
                labels = dict(themes)
                result.append(
                    {
                        "from_name": "onnx_issue_handling",
                        "to_name": "body",
                        "type": "choices",
                        "value": {"choices": [choice_value(c, labels[c]) for c in sorted(chosen)]},
                    }
                )
            if coder == "ben" and i in (2, 7):
                result.append(
                    {
                        "from_name": "onnx_issue_handling_new",
                        "to_name": "body",
                        "type": "textarea",
                        "value": {"text": ["ask a colleague"]},
                    }
                )
            ls_client.annotations.create(id=tasks[coder][item_id], result=result, completed_by=users[coder])
    pulled = cli("label", "pull", "--round", round_name)
    assert pulled.exit_code == 0, pulled.output
    assert f"{2 * len(answers)} new" in pulled.output and "0 invalid" in pulled.output
    with Session(engine) as s:
        stored: dict[str, dict[int, frozenset[int]]] = {"ann": {}, "ben": {}}
        codes = {c.id: c for c in s.exec(select(Coding)).all()}
        names = {c.id: c.name for c in s.exec(select(Coder)).all()}
        for coding in codes.values():
            stored[names[coding.coder_id]].setdefault(coding.item_id, frozenset())
        from db.models.labeling import CodebookCode

        for value in s.exec(select(CodingValue)).all():
            coding = codes[value.coding_id]
            code = s.get(CodebookCode, value.code_id).code
            who = names[coding.coder_id]
            stored[who][coding.item_id] = stored[who][coding.item_id] | {code}
        assert stored == planned
        assert sum(1 for c in codes.values() if c.proposals) == 2
    proposed = cli("label", "themes", "--round", round_name, "--format", "json")
    rows = json.loads(proposed.output)
    assert [(r["proposal"], r["codings"], r["coders"]) for r in rows] == [("ask a colleague", 2, ["ben"])]

    agreement = cli("label", "agreement", "--round", round_name, "--format", "json", "--bootstrap", "50")
    assert agreement.exit_code == 0, agreement.output
    document = json.loads(agreement.output)
    summary = {r["dimension"]: r for r in document["summary"]}["onnx_issue_handling"]
    assert summary["alpha_distance"] == "MASI"
    items = sorted(planned["ann"])
    data = [(c, str(i), planned[c][i]) for i in items for c in ("ann", "ben")]

    def masi_or_both_empty(a: frozenset[int], b: frozenset[int]) -> float:
        return 0.0 if not a and not b else float(nltk_masi(a, b))  # NLTK divides 0 by 0 for two empty sets

    expected = AnnotationTask(data=data, distance=masi_or_both_empty).alpha()
    assert summary["krippendorff_alpha"] == pytest.approx(expected)
    exact = np.mean([planned["ann"][i] == planned["ben"][i] for i in items])
    assert summary["percent_agreement"] == pytest.approx(exact)
    assert {t["theme"] for t in document["themes"]} == {"Community", "Test run", "Versioning", "Documentation"}

    # disagreements go to the review project as survey answers (question and answer), not refused as non-issues
    reviewed = cli("label", "adjudicate", "--round", round_name, "--review")
    assert reviewed.exit_code == 0, reviewed.output
    disagreed = {i for i in items if planned["ann"][i] != planned["ben"][i]}
    with Session(engine) as s:
        review = s.exec(select(LsProject).where(LsProject.purpose == "review")).one()
        agreed = s.exec(select(FinalLabel).where(FinalLabel.decided_by == "agreement")).all()
        texts = {
            item.id: s.get(SurveyAnswer, item.survey_answer_id).text.strip() for item in s.exec(select(LabelItem)).all()
        }
    review_tasks = list(ls_client.tasks.list(project=review.ls_project_id))
    assert sorted(t.data["body"] for t in review_tasks) == sorted(texts[i] for i in disagreed)
    assert all(t.data["title"].startswith("Q66: ") for t in review_tasks)
    assert all("Disagreement on onnx_issue_handling" in t.data["codings"] for t in review_tasks)
    # agreed theme sets become one final label per theme
    assert len(agreed) == sum(len(planned["ann"][i]) for i in items if i not in disagreed)

    adjudicated = cli("label", "adjudicate", "--round", round_name, "--prefer-coder", "ann")
    assert adjudicated.exit_code == 0, adjudicated.output
    with Session(engine) as s:
        counts = theme_counts(s, "interop", "Q66", round=round_name).set_index("theme")["count"].to_dict()
    want: Counter[str] = Counter()
    for i in items:
        want.update(dict(themes)[c] for c in planned["ann"][i])
    assert counts == dict(want)


def test_survey_page_shows_theme_counts_with_denominators(imported, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    import streamlit as st

    from tests.support.apptest import chart_data, open_page, texts

    st.cache_data.clear()
    result = imported("label", "import-sheet", str(shared_dir / THEMATIC), "--codebook", "onnx-survey-themes")
    assert result.exit_code == 0, result.output
    try:
        at = open_page("survey", q="Q66")
        body = texts(at)
        assert "n = 16 answers with at least one theme (17 answers coded)." in " ".join(body.split())
        charts = at.get("vega_lite_chart")
        assert len(charts) == 1
        labels = dict(zip(chart_data(charts[0])["theme"], chart_data(charts[0])["label"], strict=True))
        assert labels["Community"] == "7 (43.8%)" and labels["Test run"] == "5 (31.2%)"
    finally:
        st.cache_data.clear()


def test_adjudication_of_theme_sets() -> None:
    from labeling.adjudicate import _decide

    spec = read_codebook(THEMES_CODEBOOK)
    covered = {"onnx_issue_handling"}
    same = {"a": {"onnx_issue_handling": (1, 3)}, "b": {"onnx_issue_handling": (1, 3)}}
    assert _decide(same, spec, None, False, covered) == ({"onnx_issue_handling": ((1, 3), "agreement")}, [])
    differ = {"a": {"onnx_issue_handling": (1, 3)}, "b": {"onnx_issue_handling": (1,)}}
    assert _decide(differ, spec, None, False, covered) == ({}, ["onnx_issue_handling"])
    assert _decide(differ, spec, "b", False, covered)[0] == {"onnx_issue_handling": ((1,), "rule:prefer-coder=b")}
    three = {**differ, "c": {"onnx_issue_handling": (2, 3)}}
    # a theme stays when more than half the coders chose it: 1 (a, b) and 3 (a, c), not 2 (c only)
    assert _decide(three, spec, None, True, covered)[0] == {"onnx_issue_handling": ((1, 3), "rule:majority")}
