"""`interop mine repos`: ecosystem snapshots through the local GitHub-like server's GraphQL side, into both
databases; the read model's latest snapshot and history."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from db.models import IngestRun, RepoSnapshot
from db.queries import ecosystem
from miners.github.ecosystem import DEFAULT_LIST, load_list
from tests.support.github_server import FakeGitHub

TOKEN = "ghp_EcosystemTestToken0123456789abcdef"
LIST = """
[repos]
format = ["onnx/onnx"]
framework = ["pytorch/pytorch", "tensorflow/tensorflow"]
converter = ["nobody/missing-converter"]
"""


@pytest.fixture
def gh(shared_dir: Path) -> Iterator[FakeGitHub]:
    server = FakeGitHub(shared_dir, tokens=(TOKEN,))
    onnx = server.add_repo("onnx/onnx")
    onnx.raw.update(
        topics=["onnx", "deep-learning"],
        description="Open standard for machine learning interoperability",
        stargazers_count=17000,
        license={"spdx_id": "Apache-2.0"},
        releases=[
            {"tag_name": "v1.16.0", "created_at": "2024-03-25T10:00:00Z", "published_at": "2024-03-25T10:00:00Z"},
            {"tag_name": "v1.17.0", "created_at": "2024-10-01T10:00:00Z", "published_at": "2024-10-01T10:00:00Z"},
        ],
    )
    torch = server.add_repo("pytorch/pytorch")  # ONNX only in a label
    torch.raw.update(
        topics=["deep-learning"], description="Tensors and Dynamic neural networks", stargazers_count=80000
    )
    server.populate("pytorch/pytorch", 20, pr_every=7, open_every=5, labels=("module: onnx",))
    tf = server.add_repo("tensorflow/tensorflow")  # no ONNX anywhere
    tf.raw.update(topics=["machine-learning"], description="An Open Source Machine Learning Framework", releases=[])
    server.populate("tensorflow/tensorflow", 5, labels=("comp:lite",))
    with server:
        yield server


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, gh: FakeGitHub, tmp_path: Path) -> Path:
    monkeypatch.setenv("INTEROP_GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("INTEROP_GITHUB_BASE_URL", gh.url)
    monkeypatch.setenv("INTEROP_GITHUB_MIN_REQUEST_INTERVAL", "0")
    path = tmp_path / "repos.toml"
    path.write_text(LIST)
    return path


def snapshots(engine: Engine) -> list[RepoSnapshot]:
    with Session(engine) as s:
        return list(s.execute(select(RepoSnapshot).order_by(RepoSnapshot.id)).scalars())


def test_mine_repos_stores_a_dated_snapshot_per_repository(env: Path, gh: FakeGitHub, cli, engine: Engine) -> None:
    result = cli("mine", "repos", "--list", str(env), "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "3 repositories snapshotted (2 naming ONNX), 1 not found" in result.output
    assert "not found on GitHub: nobody/missing-converter" in result.output
    # one GraphQL request per batch of 2: 4 repositories, 2 requests, each naming its repositories as aliases
    batches = [r.query for r in gh.requests("graphql")]
    assert [b["operation"] for b in batches] == ["RepoBatch", "RepoBatch"]
    assert (batches[0]["o0"], batches[0]["n1"], batches[1]["n1"]) == ("onnx", "pytorch", "missing-converter")
    rows = {r.full_name: r for r in snapshots(engine)}
    assert set(rows) == {"onnx/onnx", "pytorch/pytorch", "tensorflow/tensorflow", "nobody/missing-converter"}
    onnx, torch, tf, missing = (
        rows[n] for n in ("onnx/onnx", "pytorch/pytorch", "tensorflow/tensorflow", "nobody/missing-converter")
    )
    assert (onnx.onnx, torch.onnx, tf.onnx) == (True, True, False)  # topic, label, nowhere
    assert onnx.stars == 17000 and onnx.license == "Apache-2.0" and onnx.role == "format"
    assert onnx.topics == ["onnx", "deep-learning"] and onnx.latest_release == "v1.17.0"
    assert [r["tag"] for r in onnx.releases] == ["v1.17.0", "v1.16.0"]
    assert onnx.latest_release_at is not None and onnx.latest_release_at.year == 2024
    expected_open = sum(1 for n in range(1, 21) if n % 5 == 0 and n % 7)
    assert torch.open_issues == expected_open and torch.open_prs == 0 and torch.default_branch == "main"
    assert torch.raw and torch.raw["nameWithOwner"] == "pytorch/pytorch"
    assert missing.found is False and missing.stars is None and missing.role == "converter"
    assert len({r.run_id for r in rows.values()}) == 1 and onnx.snapshot_date == onnx.taken_at.date()
    with Session(engine) as s:
        run = s.get(IngestRun, onnx.run_id)
    assert run is not None and run.kind == "repos-snapshot" and run.status == "ok"
    assert run.counts["repos_found"] == 3 and run.counts["repos_not_found"] == 1 and run.counts["requests"] == 2
    assert run.parameters["not_found"] == ["nobody/missing-converter"]

    # a second run (the same day) adds a second dated snapshot; the read model shows the newest
    gh.repos["onnx/onnx"].raw["stargazers_count"] = 17100
    again = cli("mine", "repos", "--list", str(env))
    assert again.exit_code == 0, again.output
    assert len(snapshots(engine)) == 8
    latest = ecosystem.latest_snapshots(engine).set_index("full_name")
    assert latest.loc["onnx/onnx", "stars"] == 17100 and latest.loc["onnx/onnx", "snapshots"] == 2
    assert list(latest.index[:3]) == ["pytorch/pytorch", "onnx/onnx", "tensorflow/tensorflow"]  # most stars first
    assert bool(latest.loc["nobody/missing-converter", "found"]) is False
    assert set(ecosystem.latest_snapshots(engine, onnx_only=True).full_name) == {"onnx/onnx", "pytorch/pytorch"}
    points = ecosystem.history(engine, ("onnx/onnx",))
    assert list(points["stars"]) == [17000, 17100] and points["taken_at"].is_monotonic_increasing
    assert len(ecosystem.history(engine)) == 6  # the not-found repository has no points


def test_mine_repos_bad_list_and_no_token_write_nothing(
    env: Path, monkeypatch: pytest.MonkeyPatch, cli, engine: Engine, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[repos]\nconverter = ["onnx/onnx", "not-a-repo"]\n')
    result = cli("mine", "repos", "--list", str(bad))
    assert result.exit_code != 0
    assert f"error: {bad}: repos.converter entry 2 must be owner/name, got 'not-a-repo'" in result.output
    missing = cli("mine", "repos", "--list", str(tmp_path / "nope.toml"))
    assert missing.exit_code != 0 and "cannot read repository list" in missing.output
    monkeypatch.delenv("INTEROP_GITHUB_TOKEN")
    anonymous = cli("mine", "repos", "--list", str(env))
    assert anonymous.exit_code != 0 and "needs a token" in anonymous.output
    with Session(engine) as s:
        assert s.execute(select(func.count()).select_from(RepoSnapshot)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(IngestRun)).scalar_one() == 0


def test_default_list_names_the_ecosystem() -> None:
    names = {name for name, _ in load_list(DEFAULT_LIST)}
    assert {
        "pytorch/pytorch",
        "onnx/tensorflow-onnx",
        "microsoft/onnxruntime",
        "apache/tvm",
        "NVIDIA/TensorRT",
    } <= names
    assert len(names) == 12


# -- the Ecosystem page ------------------------------------------------------------------------------


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    import streamlit as st

    st.cache_data.clear()
    yield
    st.cache_data.clear()


def test_ecosystem_page_shows_latest_snapshots_and_star_history(
    env: Path, gh: FakeGitHub, cli, fresh_cache: None
) -> None:
    from tests.support.apptest import chart_data, metrics, open_page, texts

    assert cli("mine", "repos", "--list", str(env)).exit_code == 0
    gh.repos["onnx/onnx"].raw["stargazers_count"] = 17250
    assert cli("mine", "repos", "--list", str(env)).exit_code == 0
    at = open_page("ecosystem")
    assert metrics(at)["Repositories"] == "3" and metrics(at)["Naming ONNX"] == "2"
    assert "Not found on GitHub at their latest snapshot: nobody/missing-converter" in texts(at)
    table = at.dataframe[0].value.set_index("repository")
    assert list(table.index) == ["pytorch/pytorch", "onnx/onnx", "tensorflow/tensorflow"]
    assert table.loc["onnx/onnx", "stars"] == 17250 and table.loc["onnx/onnx", "snapshots"] == 2
    assert (
        table.loc["tensorflow/tensorflow", "names ONNX"] == "no" and table.loc["onnx/onnx", "license"] == "Apache-2.0"
    )
    assert table.loc["onnx/onnx", "topics"] == "onnx, deep-learning"
    points = chart_data(at.get("vega_lite_chart")[0])
    stars = points[points["full_name"] == "onnx/onnx"]["stars"].tolist()
    assert stars == [17000, 17250] and len(points) == 6

    at = open_page("ecosystem", onnx="1", repo="onnx/onnx")
    assert set(at.dataframe[0].value["repository"]) == {"onnx/onnx", "pytorch/pytorch"}
    assert set(chart_data(at.get("vega_lite_chart")[0])["full_name"]) == {"onnx/onnx"}


def test_ecosystem_page_empty_says_what_fills_it(configured_db: str, fresh_cache: None) -> None:
    from tests.support.apptest import open_page, texts

    at = open_page("ecosystem")
    assert "interop mine repos" in texts(at) and not at.exception


def test_exports_include_the_snapshots(env: Path, cli, tmp_path: Path) -> None:
    import pandas as pd

    assert cli("mine", "repos", "--list", str(env)).exit_code == 0
    out = tmp_path / "exports"
    result = cli("export", "--format", "parquet", "--out", str(out))
    assert result.exit_code == 0, result.output
    exported = pd.read_parquet(out / "repo_snapshot.parquet").set_index("full_name")
    assert len(exported) == 4 and bool(exported.loc["onnx/onnx", "onnx"]) is True
    assert str(exported["taken_at"].dtype) == "datetime64[us, UTC]" and exported.loc["onnx/onnx", "stars"] == 17000


def test_overview_is_the_report_section_from_snapshots(env: Path, gh: FakeGitHub, cli, engine: Engine) -> None:
    from reporting.ecosystem import add_ecosystem
    from reporting.paper import PaperReport

    empty = PaperReport()
    add_ecosystem(engine, empty)
    assert not empty.tables and "`interop mine repos` takes them" in empty.choices[0]

    assert cli("mine", "repos", "--list", str(env)).exit_code == 0
    gh.repos["onnx/onnx"].raw["stargazers_count"] = 17250
    assert cli("mine", "repos", "--list", str(env)).exit_code == 0
    overview = ecosystem.ecosystem_overview(engine)
    # found repositories only, frameworks before the format, most stars first within a role
    assert list(overview["full_name"]) == ["pytorch/pytorch", "tensorflow/tensorflow", "onnx/onnx"]
    assert list(overview["role"]) == ["framework", "framework", "format"]
    onnx = overview.set_index("full_name").loc["onnx/onnx"]
    assert (onnx["stars"], onnx["stars_gained"], onnx["days_observed"]) == (17250, 250, 0)
    assert onnx["latest_release"] == "v1.17.0" and bool(onnx["onnx"]) is True
    # both releases are of 2024: none in the year before a snapshot taken now
    assert list(overview["releases_last_year"]) == [0, 0, 0]

    report = PaperReport()
    add_ecosystem(engine, report)
    (table,) = report.tables
    assert table.name == "ecosystem_overview" and len(table.frame) == 3
    assert report.facts["ecosystem"]["naming_onnx"] == 2 and report.facts["ecosystem"]["repositories"] == 3
    assert "2 of 3 name ONNX" in report.choices[0]
