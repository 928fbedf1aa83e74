"""The Labeling page through AppTest on the study's real coding sheets (both backends)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st

from tests.support.apptest import chart_data, open_page, texts


@pytest.fixture
def empty(configured_db: str) -> Iterator[str]:
    st.cache_data.clear()
    yield configured_db
    st.cache_data.clear()


@pytest.fixture
def labeled(cli, shared_dir: Path) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The codebook and the study's pilot and final coding sheets, imported through the CLI."""
    st.cache_data.clear()
    sheets = shared_dir / "data/paper-artifact/failure-analysis"
    for args in (
        ("label", "codebook", "load", str(shared_dir / "codebook/onnx-converter-failures.yaml")),
        ("label", "import-sheet", str(sheets / "PilotStudy.xlsx")),
        ("label", "import-sheet", str(sheets / "FailureAnalysis.xlsx")),
    ):
        result = cli(*args)
        assert result.exit_code == 0, result.output
    yield
    st.cache_data.clear()


def test_labeling_page_agreement_progress_taxonomy(labeled: None) -> None:
    at = open_page("labeling")
    body = texts(at)
    assert "Agreement in round `pilotstudy`" in body  # the round with two coders and the most items
    frames = [d.value for d in at.dataframe]
    progress = next(f for f in frames if "items_coded" in f.columns)
    pilot = progress[progress["round"] == "pilotstudy"].set_index("coder")
    assert pilot.loc["R1", "items_coded"] == 60 and pilot.loc["R2", "items_coded"] == 60
    agreement = next(f for f in frames if "measure" in f.columns).set_index("measure")  # a row per measure
    assert set(agreement.columns) == {"symptom", "cause"}
    assert agreement.loc["Cohen's κ", "symptom"].startswith("0.953 [")
    assert agreement.loc["percent agreement", "cause"].startswith("0.917 [")
    assert agreement.loc["Krippendorff's α", "cause"].startswith("0.904 [")
    assert agreement.loc["α reading (Krippendorff)", "cause"] == "reliable"
    assert "Krippendorff 2004" in body
    assert "item × dimension pairs with different codes" in body
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 3  # coefficients, taxonomy per converter, symptom × cause heatmap
    taxonomy = chart_data(charts[1])
    crash = taxonomy[(taxonomy["label"] == "Crash")].set_index("repository")["count"]
    assert crash.to_dict() == {"pytorch/pytorch": 62, "onnx/tensorflow-onnx": 50}

    at = open_page("labeling", round="failureanalysis-drift-testing", dim="cause")
    body = texts(at)
    assert "Agreement in round `failureanalysis-drift-testing`" in body
    assert "few items (18 < 30)" in body


def test_labeling_page_shows_decisions_with_evidence_and_history(labeled: None, cli) -> None:  # type: ignore[no-untyped-def]
    for rule in ("R1", "R2"):  # the second rule changes the 7 disputed cells: 7 decisions with a previous value
        assert cli("label", "adjudicate", "--round", "pilotstudy", "--prefer-coder", rule).exit_code == 0
    st.cache_data.clear()
    at = open_page("labeling", round="pilotstudy")
    assert "Decisions in round `pilotstudy`" in texts(at)
    frames = [d.value for d in at.dataframe]
    decisions = next(f for f in frames if "evidence" in f.columns and "action" not in f.columns)
    cause = decisions[(decisions["item"] == "pytorch/pytorch#15192") & (decisions["dimension"] == "cause")].iloc[0]
    assert cause["decided_by"] == "rule:prefer-coder=R2" and cause["evidence"].endswith("(disagreed)")
    history = next(f for f in frames if "action" in f.columns)
    assert len(history) == 127 and (history["action"] == "changed").sum() == 7
    assert set(history.loc[history["action"] == "changed", "previous_decided_by"]) == {"rule:prefer-coder=R1"}
    sheet = open_page("labeling", round="failureanalysis")
    shown = next(f for f in (d.value for d in sheet.dataframe) if "evidence" in f.columns and "action" not in f.columns)
    assert set(shown["decided_by"]) == {"sheet"} and set(shown["evidence"]) == {"sheet FailureAnalysis.xlsx"}


def test_labeling_empty_state(empty: str) -> None:
    assert "interop label codebook load" in texts(open_page("labeling"))


def test_issues_page_shows_coded_failures_over_time(labeled: None, engine) -> None:  # type: ignore[no-untyped-def]
    """Once the sheet's issues are mined (here: given creation dates), the Issues page charts their symptoms."""
    from datetime import UTC, datetime, timedelta

    from sqlmodel import Session, select

    from db.models.github import Issue

    with Session(engine) as session:
        issues = session.exec(select(Issue).order_by(Issue.id)).all()
        for i, issue in enumerate(issues):
            issue.created_at = datetime(2021, 1, 1, tzinfo=UTC) + timedelta(days=10 * i)
            issue.hydrated = True  # as a GitHub mine leaves it
            session.add(issue)
        session.commit()
    st.cache_data.clear()
    at = open_page("issues")
    chart = next(c for c in at.get("vega_lite_chart") if "code" in chart_data(c).columns)
    data = chart_data(chart)
    assert int(data["issues"].sum()) == 200  # every issue of FailureAnalysis.xlsx has a final symptom
    assert int(data.loc[data["code"] == "Crash", "issues"].sum()) == 112


def test_progress_uses_label_studio_assignments(labeled: None, engine) -> None:  # type: ignore[no-untyped-def]
    """With tasks pushed to Label Studio (recorded as ls_task rows), progress is coded out of assigned."""
    from sqlmodel import Session, select

    from db.models.labeling import Coder, LabelItem, LabelRound, LsProject, LsTask

    with Session(engine) as session:
        rnd = session.exec(select(LabelRound).where(LabelRound.name == "pilotstudy")).one()
        coder = session.exec(select(Coder).where(Coder.name == "R1")).one()
        items = session.exec(select(LabelItem).order_by(LabelItem.id)).all()
        project = LsProject(round_id=rnd.id, coder_id=coder.id, purpose="coding", ls_project_id=1, config_hash="x")
        session.add(project)
        session.flush()
        session.add_all([LsTask(project_id=project.id, item_id=i.id, ls_task_id=n) for n, i in enumerate(items[:80])])
        session.commit()
    st.cache_data.clear()
    at = open_page("labeling")
    progress = next(d.value for d in at.dataframe if "items_coded" in d.value.columns)
    r1 = progress[(progress["round"] == "pilotstudy") & (progress["coder"] == "R1")].iloc[0]
    assert r1["assigned"] == "80" and r1["share"] == 60 / 80
    r2 = progress[(progress["round"] == "pilotstudy") & (progress["coder"] == "R2")].iloc[0]
    assert r2["share"] == 1.0  # no Label Studio assignment: out of the round's items


def test_the_cli_and_the_app_count_the_same_final_labels(labeled: None, cli) -> None:  # type: ignore[no-untyped-def]
    """`label taxonomy` and the Labeling page's taxonomy chart read the same function with the same filter."""
    import io

    import pandas as pd

    result = cli("label", "taxonomy", "--dimension", "cause", "--format", "csv")
    assert result.exit_code == 0, result.output
    printed = pd.read_csv(io.StringIO(result.output))
    at = open_page("labeling", dim="cause")
    shown = next(chart_data(c) for c in at.get("vega_lite_chart") if "share" in chart_data(c).columns)
    key = ["repository", "label", "count"]
    assert sorted(map(tuple, printed[key].values.tolist())) == sorted(map(tuple, shown[key].values.tolist()))
    assert len(printed) > 5


def test_invalid_codings_are_shown_with_why_and_counted_in_progress(labeled: None, engine) -> None:  # type: ignore[no-untyped-def]
    from sqlmodel import Session, select

    from db.models.labeling import Coder, Coding, LabelItem, LabelRound

    with Session(engine) as session:
        rnd = session.exec(select(LabelRound).where(LabelRound.name == "pilotstudy")).one()
        zoe = Coder(name="zoe")
        session.add(zoe)
        session.flush()
        item = session.exec(select(LabelItem).order_by(LabelItem.id)).first()
        session.add(Coding(round_id=rnd.id, item_id=item.id, coder_id=zoe.id, valid=False, problems=["unknown choice"]))
        session.commit()
    st.cache_data.clear()
    at = open_page("labeling", round="pilotstudy")
    frames = [d.value for d in at.dataframe]
    invalid = next(f for f in frames if "problems" in f.columns)
    assert invalid[["coder", "problems"]].values.tolist() == [["zoe", "unknown choice"]]
    assert set(invalid["ls_task_id"]) == {"—"}  # a missing value is a dash, not None
    progress = next(f for f in frames if "items_coded" in f.columns).set_index(["round", "coder"])
    assert progress.loc[("pilotstudy", "zoe"), "invalid_codings"] == 1
    assert progress.loc[("pilotstudy", "zoe"), "items_coded"] == 0
