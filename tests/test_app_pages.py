"""Every explorer page through streamlit.testing (AppTest) on a seeded database, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from tests.support.apptest import APP, chart_data, metrics, open_page, texts
from tests.support.seed import Seeded, seed_github


@pytest.fixture
def seeded(configured_db: str, engine: Engine) -> Iterator[Seeded]:
    """A seeded, configured database, and a clean query cache (PostgreSQL URLs repeat across tests)."""
    st.cache_data.clear()
    yield seed_github(engine)
    st.cache_data.clear()


@pytest.fixture
def empty(configured_db: str) -> Iterator[str]:
    st.cache_data.clear()
    yield configured_db
    st.cache_data.clear()


def test_overview_counts_freshness_and_runs(seeded: Seeded) -> None:
    at = open_page()
    figures = metrics(at)
    github_rows = seeded.repositories + seeded.issues + seeded.events + 1 + seeded.sample_members
    assert figures["GitHub issues"] == f"{github_rows:,}"
    assert figures["Bookkeeping"] == str(seeded.ingest_runs)
    assert any(seeded.failed_error in w.value for w in at.warning)  # github-mine failed last
    frames = [t.value for t in at.table]
    fresh = next(f for f in frames if "error of the last failure" in f.columns).set_index("what ran")
    assert set(fresh.index) == {"github-mine", "survey-import"}
    assert fresh.loc["github-mine", "runs"] == 2
    assert fresh.loc["github-mine", "since last success"].endswith(" h")  # years ago: "N d M h"
    assert fresh.loc["survey-import", "last failure (UTC)"] == "—"  # never failed: no NaT, no None
    runs = next(f for f in frames if "seconds" in f.columns)
    assert len(runs) == seeded.ingest_runs


def test_overview_empty_database_says_what_fills_it(empty: str) -> None:
    at = open_page()
    assert "interop mine github --all" in texts(at)
    assert not at.exception


def test_sql_console_runs_caps_and_refuses(seeded: Seeded, configured_reader: str) -> None:
    at = open_page("sql")
    assert not at.dataframe, "nothing runs before Run is pressed"
    at.text_area(key="sql_text").input("SELECT number FROM issue ORDER BY number")
    at.number_input[0].set_value(5)
    next(b for b in at.button if b.label == "Run").click()
    at.run()
    assert not at.exception
    assert "Truncated: showing the first 5 rows" in texts(at)
    assert len(at.dataframe[-1].value) == 5
    assert at.query_params["sql"] == "SELECT number FROM issue ORDER BY number"
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download CSV", "Download Parquet"]

    at.text_area(key="sql_text").input("DROP TABLE issue")
    next(b for b in at.button if b.label == "Run").click()
    at.run()
    assert any("refused: DROP writes to the database" in w.value for w in at.warning)


def test_sql_console_shared_link_only_fills_the_box(seeded: Seeded, configured_reader: str) -> None:
    """A link someone shared (`/sql?sql=…`) never runs by itself: the query waits in the box for a click."""
    at = open_page("sql", sql="SELECT count(*) AS n FROM issue")
    assert at.text_area(key="sql_text").value == "SELECT count(*) AS n FROM issue"
    assert not at.dataframe and not at.warning and not at.error
    assert "press Run to run it" in texts(at)
    at.run()  # a rerun (any widget change) does not run it either
    assert not at.dataframe
    next(b for b in at.button if b.label == "Run").click()
    at.run()
    assert at.dataframe[-1].value["n"].tolist() == [seeded.issues]
    assert "Truncated" not in texts(at)


def test_sql_console_shared_attack_link_does_nothing(seeded: Seeded, configured_reader: str, engine: Engine) -> None:
    attack = "/**/SELECT e'\\''; COMMIT; DELETE FROM issue; --'"
    at = open_page("sql", sql=attack)
    assert at.text_area(key="sql_text").value == attack
    assert not at.dataframe and not at.warning and not at.error
    from sqlalchemy import text

    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM issue")).scalar() == seeded.issues


def test_sql_console_without_a_reader_on_postgres_says_how_to_set_one_up(
    seeded: Seeded, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INTEROP_READER_DATABASE_URL", raising=False)
    at = open_page("sql", sql="SELECT 1")
    run = next(b for b in at.button if b.label == "Run")
    if backend == "sqlite":  # SQLite needs no reader: the file is opened read-only
        assert not at.error and not run.disabled
        return
    assert any("INTEROP_READER_DATABASE_URL" in e.value and "interop db create-reader" in e.value for e in at.error)
    assert run.disabled


def test_issues_page_filters_from_the_url_and_detail(seeded: Seeded) -> None:
    at = open_page("issues")
    assert metrics(at)["Matching issues"] == str(seeded.issues)
    assert metrics(at)["Closed"] == str(seeded.closed_issues)
    assert at.get("vega_lite_chart"), "issues-over-time chart missing"

    at = open_page("issues", state="open", repo="pytorch/pytorch")
    open_per_repo = seeded.per_repo["pytorch/pytorch"] - seeded.closed_issues // 2
    assert metrics(at)["Matching issues"] == str(open_per_repo)
    assert metrics(at)["Closed"] == "0"
    listed = next(d.value for d in at.dataframe if "title" in d.value.columns)
    assert "fix_linked" not in listed  # no verdicts stored yet: no column of dashes

    at = open_page("issues", sample="pilot", issue="pytorch/pytorch#1001")
    assert metrics(at)["Matching issues"] == str(seeded.sample_members)
    body = texts(at)
    assert "pytorch export fails #1" in body and "samples: pilot" in body
    timeline = at.dataframe[-1].value
    assert list(timeline["event"]) == ["labeled", "closed"]
    assert timeline["commit_id"].iloc[0] == "—" and timeline["source"].iloc[0] == "—"  # missing: a dash, not None


def test_issues_label_filter(seeded: Seeded) -> None:
    at = open_page("issues")
    at.multiselect(key="param_label").select("question").run()
    assert metrics(at)["Matching issues"] == str(seeded.per_repo["onnx/tensorflow-onnx"] // 2)
    assert at.query_params["label"] in ("question", ["question"])


def test_issues_empty_state(empty: str) -> None:
    at = open_page("issues")
    assert "interop mine github" in texts(at)


def test_database_without_schema_says_upgrade(empty_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTEROP_DATABASE_URL", empty_db_url)
    st.cache_data.clear()
    at = open_page()
    assert "interop db upgrade" in texts(at)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite",  # a file that is not a database
        "postgresql://interop:secret-pw@127.0.0.1:1/nowhere",
        "postgresql+psycopg://interop@127.0.0.1:1/nowhere?password=secret-pw&sslmode=disable",
        "postgresql://interop:secret-pw@127.0.0.1:port/nowhere",  # a port that is not a number
    ],
)
def test_unreachable_database_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str) -> None:
    if url == "sqlite":
        (tmp_path / "no-such-dir").mkdir()
        (tmp_path / "no-such-dir" / "x.db").write_bytes(b"this is not a database" * 100)
        url = f"sqlite:///{tmp_path}/no-such-dir/x.db"
    monkeypatch.setenv("INTEROP_DATABASE_URL", url)
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    message = " ".join(e.value for e in at.error)
    assert "Cannot read the database" in message
    assert "secret-pw" not in message and "secret-pw" not in texts(at)
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert "Database: `" in sidebar and "secret-pw" not in sidebar
    if url.startswith("postgresql"):
        assert "***" in sidebar and "interop" in sidebar


@pytest.fixture
def survey_db(cli, shared_dir: Path, engine: Engine) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The study's survey export imported through the CLI (92 respondents)."""
    st.cache_data.clear()
    export = shared_dir / "data/paper-artifact/survey/interopSurvey.xlsx"
    result = cli("survey", "import", str(export), "--survey", "interop")
    assert result.exit_code == 0, result.output
    yield
    st.cache_data.clear()


def test_survey_page_charts_with_denominators(survey_db: None) -> None:
    at = open_page("survey")
    assert metrics(at)["Respondents"] == "92"
    assert metrics(at)["Included"] == "92"
    body = texts(at)
    assert "Q60 · multi-select" in body
    assert "n = 89 (89 answered of 92 included respondents). Several choices per respondent" in body
    assert len(at.get("vega_lite_chart")) >= 10

    at = open_page("survey", q="Q61,Q78", denom="respondents")
    body = texts(at)
    assert "n = 92 (90 answered of 92 included respondents)." in body
    assert "7 of 92 included respondents wrote an answer" in body
    assert len(at.get("vega_lite_chart")) == 1
    labels = set(chart_data(at.get("vega_lite_chart")[0])["label"])
    assert {"51 (55.4%)", "39 (42.4%)"} <= labels  # of all 92 respondents


def test_survey_page_compares_by_a_group_without_cutting_texts(survey_db: None) -> None:
    at = open_page("survey", q="Q65", by="Q61")
    body = texts(at)
    assert "Do you commonly encounter problems while working with ONNX models?" in body
    assert "Selected Choice" not in body
    assert "By Q61 (Yes, I use ONNX n = 34, No n = 16; 50 answered both): % of each group." in body
    assert "Fisher's exact test" in body  # the 'Other' choice: an expected count below 5
    grouped = chart_data(at.get("vega_lite_chart")[1])
    long_choice = "Performance differences (e.g., the accuracy of the ONNX model does not match the original model)"
    assert long_choice in set(grouped["choice"]) and {"column_n", "pct_of_column"} <= set(grouped.columns)


def test_survey_empty_state(empty: str) -> None:
    at = open_page("survey")
    assert "interop survey import" in texts(at)


def test_issues_fix_linked_filter_uses_stored_verdicts(seeded: Seeded, cli) -> None:  # type: ignore[no-untyped-def]
    relink = cli("issues", "relink")
    assert relink.exit_code == 0, relink.output
    st.cache_data.clear()
    at = open_page("issues")
    # the seed closes two issues in three with a commit: the study's rule marks exactly those fix-linked
    assert metrics(at)["Fix-linked (study-v1)"] == str(seeded.closed_issues)
    at = open_page("issues", fixed="yes")
    assert metrics(at)["Matching issues"] == str(seeded.closed_issues)
    at = open_page("issues", fixed="no", issue="pytorch/pytorch#1003")
    assert metrics(at)["Matching issues"] == str(seeded.issues - seeded.closed_issues)
    verdicts = next(d.value for d in at.dataframe if "rule_version" in d.value.columns)
    assert verdicts["fix_linked"].tolist() == ["no"]
