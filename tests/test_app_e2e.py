"""End to end: `streamlit run` on a free port, every page loaded in headless Chromium, screenshots kept.

Needs the Debian packages `chromium` and `chromium-driver` (skipped with the reason where /usr/bin/chromium
is missing; CI installs them). Screenshots go to test-artifacts/e2e-<backend>-<page>.png.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.support.browser import CHROMIUM, Chromium, StreamlitServer, click_and_wait, wait_for_page
from tests.support.seed import seed_experiments, seed_github
from tests.support.services import skip_or_fail

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def browser() -> Iterator[Chromium]:
    if not CHROMIUM.exists():
        skip_or_fail("headless Chromium is missing: apt-get install -y chromium chromium-driver")
    chrome = Chromium()
    try:
        chrome.connect()
        yield chrome
    finally:
        chrome.close()


@pytest.fixture
def server(  # type: ignore[no-untyped-def]
    db_url: str, reader_url: str, backend: str, engine: Engine, tmp_path: Path, cli, shared_dir: Path
) -> Iterator[tuple[StreamlitServer, dict]]:
    seeded = seed_github(engine)
    artifact = shared_dir / "data/paper-artifact"
    for args in (
        ("survey", "import", str(artifact / "survey/interopSurvey.xlsx"), "--survey", "interop"),
        ("label", "codebook", "load", str(shared_dir / "codebook/onnx-converter-failures.yaml")),
        ("label", "import-sheet", str(artifact / "failure-analysis/PilotStudy.xlsx")),
        ("label", "import-sheet", str(artifact / "failure-analysis/FailureAnalysis.xlsx")),
        ("experiment", "import-results", str(artifact / "synthetic-models" / "exporter_test_results")),
    ):
        imported = cli(*args)
        assert imported.exit_code == 0, imported.output
    seeded_campaign = seed_experiments(engine)
    from db.queries.issues import IssueFilter, issue_summary
    from db.queries.overview import area_counts

    counts = area_counts(engine)
    every_issue = issue_summary(engine, IssueFilter(mined=None))
    assert int(every_issue["issues"].sum()) > seeded.issues  # the sheets' issues known only by URL are listed too
    expected = {
        "areas": counts.groupby("area")["rows"].sum().astype(int).to_dict(),
        "issues": int(every_issue["issues"].sum()),
        "first_run": seeded_campaign.first_run_id,
    }
    env = {"INTEROP_DATABASE_URL": db_url}
    if backend == "postgresql":
        env["INTEROP_READER_DATABASE_URL"] = reader_url
    app = StreamlitServer(ROOT / "streamlit_app.py", env, tmp_path / "streamlit.log")
    try:
        app.wait()
        yield app, expected
    except TimeoutError:
        pytest.fail(f"streamlit did not start: {(tmp_path / 'streamlit.log').read_text()[-2000:]}")
    finally:
        app.stop()


def test_every_page_renders_in_chromium(browser: Chromium, server: tuple[StreamlitServer, dict], backend: str) -> None:
    app, expected = server
    ARTIFACTS.mkdir(exist_ok=True)
    sql = urllib.parse.quote("SELECT state, count(*) AS n FROM issue GROUP BY state ORDER BY state")
    visits = [
        (
            "overview",
            "",
            "Overview",
            [
                "Freshness",
                "GitHub issues",
                f"{expected['areas']['GitHub issues']:,}",
                "Labeling",
                f"{expected['areas']['Labeling']:,}",
            ],
        ),
        ("survey", "survey?q=Q60,Q61,Q78", "Survey", ["Respondents", "92", "n = 89 (89 answered of 92", "Q78"]),
        (
            "issues",
            "issues",
            "Issues",
            ["Matching issues", str(expected["issues"]), "Issues opened and closed", "known only by URL"],
        ),
        (
            "issues-detail",
            "issues?state=open&issue=pytorch/pytorch%231003",
            "Issues",
            ["pytorch export fails #3", "Timeline"],
        ),
        (
            "issues-codes",  # a pilot issue the two coders coded differently: their codes side by side
            "issues?issue=pytorch/pytorch%2315192",
            "Issues",
            ["known only by its URL", "coders: R1, R2", "Codes", "Discussion"],
        ),
        ("labeling", "labeling", "Labeling", ["Agreement in round", "pilotstudy", "Disagreements", "Taxonomy"]),
        (
            "experiments",
            "experiments?campaign=study-exporter-results",
            "Experiments",
            ["Outcomes by converter", "3,544 runs", "Where runs fail", "Differences and tolerance"],
        ),
        (
            "experiments-run",
            f"experiments?campaign=seeded&ops=1&run={expected['first_run']}",
            "Experiments",
            ["Per operator", "How to reproduce", "interop experiment run"],
        ),
        # a shared link only fills the box; the query runs on the click below
        ("sql", f"sql?sql={sql}", "SQL", ["press Run to run it"]),
    ]
    problems = []
    for name, path, title, expected in visits:
        browser.navigate(f"{app.url}/{path}")
        state = wait_for_page(browser, title)
        browser.screenshot(ARTIFACTS / f"e2e-{backend}-{name}.png")
        if state["exceptions"]:
            problems.append(f"{name}: exception shown in the page: {state['exceptions'][0][:500]}")
        if state["dialogs"]:
            problems.append(f"{name}: a dialog covers the page: {state['dialogs'][0][:200]!r}")
        missing = [text for text in expected if text not in state["text"]]
        if name == "sql":
            if state["dataframes"]:
                problems.append("sql: the shared link ran the query without a click")
            state = click_and_wait(browser, "Run", "3 rows")  # closed, open, and NULL (URL-only)
            browser.screenshot(ARTIFACTS / f"e2e-{backend}-sql-run.png")
            expected = ["3 rows", "Download Parquet"]
            missing = [text for text in expected if text not in state["text"]]
            if not state["dataframes"]:
                missing.append("a table")
            if missing:
                problems.append(f"sql after Run: {missing} not shown; page text starts {state['text'][:300]!r}")
            continue
        if name in ("overview", "issues", "issues-codes") and not (state["dataframes"] or state["tables"]):
            missing.append("a table")
        if name in ("issues", "survey", "labeling", "experiments") and not state["charts"]:
            missing.append("a chart")
        if missing:
            problems.append(f"{name}: {missing} not shown; page text starts {state['text'][:300]!r}")
    assert not problems, "\n".join(problems)


def test_overview_opens_at_the_root_and_at_slash_overview(
    browser: Chromium, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    """`/` and `/overview` both show the Overview (a default page alone is served at `/` only), no dialog."""
    seed_github(engine)
    app = StreamlitServer(ROOT / "streamlit_app.py", {"INTEROP_DATABASE_URL": db_url}, tmp_path / "streamlit.log")
    try:
        app.wait()
        for path in ("/", "/overview"):
            browser.navigate(f"{app.url}{path}")
            state = wait_for_page(browser, "Overview")
            assert not state["dialogs"], f"{path}: {state['dialogs']}"
            assert not state["exceptions"], f"{path}: {state['exceptions']}"
            assert state["path"] == path, f"{path} was redirected to {state['path']}"
            assert "Freshness" in state["text"] and "Recent runs" in state["text"] and state["tables"] >= 2
    finally:
        app.stop()


def test_interop_app_prints_the_url_serves_and_stops(db_url: str, tmp_path: Path) -> None:
    """`interop app --port P` prints the URL, answers on it, and takes its server down on SIGTERM."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.support.browser import free_port, wait_http

    port = free_port()
    log = tmp_path / "app.log"
    env = {**os.environ, "INTEROP_DATABASE_URL": db_url}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "app", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"http://localhost:{port}/_stcore/health", 60)
            assert f"http://localhost:{port}" in log.read_text()
            busy = subprocess.run(
                [sys.executable, "-m", "cli.main", "app", "--port", str(port)],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert busy.returncode == 2 and f"port {port} is already in use" in busy.stderr
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            wait_http(f"http://localhost:{port}/_stcore/health", 0.5)
        except TimeoutError:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the streamlit server outlived `interop app`")
