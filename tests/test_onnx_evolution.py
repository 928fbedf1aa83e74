"""Failures against ONNX's evolution: a small mined history from the local GitHub server (issues spread over the
months of ONNX releases) against the study's opset diff, on both backends; and the too-thin verdicts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from scipy.stats import spearmanr
from sqlalchemy.engine import Engine

from reporting.evolution import (
    EvolutionError,
    correlate,
    evolution,
    load_opset_diff,
    monthly_changes,
    operators_against_opsets,
)
from tests.support.github_server import FakeGitHub

TOKEN = "ghp_TestSecretToken0123456789abcdef"
REPO = "onnx/tensorflow-onnx"
#: (year, month, issues opened): a history over the months of ONNX 1.3–1.8, more issues around big releases
HISTORY = [(2018, 5, 4), (2018, 6, 1), (2018, 8, 3), (2018, 10, 1), (2019, 1, 5), (2019, 3, 2), (2019, 4, 4)]
HISTORY += [(2019, 6, 1), (2019, 9, 7), (2019, 12, 2), (2020, 5, 3), (2020, 8, 1), (2020, 11, 6)]


def diff_path(shared_dir: Path) -> Path:
    return shared_dir / "data/paper-artifact/failure-analysis/onnx_opset_diff.json"


@pytest.fixture
def mined(shared_dir: Path, cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:  # type: ignore[no-untyped-def]
    """The issues of HISTORY served by the local GitHub server and mined with `interop mine github`."""
    server = FakeGitHub(shared_dir, tokens=(TOKEN,))
    server.add_repo(REPO)
    number, per_month = 0, {}
    for year, month, count in HISTORY:
        for day in range(1, count + 1):
            number += 1
            raw = server.add_issue(REPO, number, updated_at=datetime(2021, 1, 1, tzinfo=UTC))
            raw["created_at"] = f"{year:04d}-{month:02d}-{day:02d}T10:00:00Z"
        per_month[f"{year:04d}-{month:02d}"] = count
    monkeypatch.setenv("INTEROP_GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("INTEROP_GITHUB_BASE_URL", server.url)
    monkeypatch.setenv("INTEROP_GITHUB_MIN_REQUEST_INTERVAL", "0")
    with server:
        done = cli("mine", "github", "--repo", REPO, "--timelines", "none")
        assert done.exit_code == 0, done.output
        yield per_month


def test_trend_of_a_mined_history_against_operator_changes(
    mined: dict[str, int], engine: Engine, shared_dir: Path
) -> None:
    found = evolution(engine, diff_path(shared_dir))
    monthly = found["monthly_issues"]
    assert dict(zip(monthly["month"], monthly["issues"], strict=True)) == mined
    trend = found["trends"][REPO]
    # the same correlation computed here from the files: changes per release month, zero-filled months between
    diff = load_opset_diff(diff_path(shared_dir))
    changes = Counter()
    for row in diff.itertuples():
        changes[row.date.strftime("%Y-%m")] += row.changes
    months = pd.period_range("2018-05", "2020-11", freq="M").strftime("%Y-%m")
    expected = spearmanr([changes.get(m, 0) for m in months], [mined.get(m, 0) for m in months])
    assert trend.months == len(months) and trend.dated_issues == sum(mined.values())
    assert trend.rho == pytest.approx(expected.statistic) and trend.p_value == pytest.approx(expected.pvalue)
    assert trend.verdict.startswith("Spearman ρ = ")
    assert found["trends"]["all"].rho == pytest.approx(trend.rho)  # one repository: the same series


def test_too_thin_data_says_so(shared_dir: Path) -> None:
    changes = monthly_changes(load_opset_diff(diff_path(shared_dir)))
    empty = correlate(pd.DataFrame(columns=["repository", "month", "issues"]), changes, undated=238)
    assert empty.rho is None and empty.verdict == "too thin for a conclusion: no issue has a creation date"
    assert "238 issues have no creation date" in empty.notes[0]
    few = correlate(pd.DataFrame({"repository": ["r"] * 2, "month": ["2019-01", "2019-02"], "issues": [3, 1]}), changes)
    assert few.rho is None and few.verdict.startswith("too thin for a conclusion: 2 overlapping months")


def test_failing_operators_against_the_opsets_that_changed_them(shared_dir: Path, tmp_path: Path) -> None:
    diff = load_opset_diff(diff_path(shared_dir))
    failing = pd.DataFrame(
        {"converter": ["torch.onnx"] * 3, "operator": ["Trilu", "Tan", "Nope"], "requested_opset": [16, 16, 16]}
    ).assign(outcome="failed", runs=[38, 67, 1])
    table = operators_against_opsets(failing, diff).set_index("operator")
    assert (table.loc["Trilu", "introduced"], table.loc["Trilu", "last_changed"]) == (14, 14)  # new in opset 14
    assert (table.loc["Tan", "introduced"], table.loc["Tan", "changed_opsets_ago"]) == (7, 9)
    assert pd.isna(table.loc["Nope", "introduced"])
    bad = tmp_path / "diff.json"
    bad.write_text('{"1": {"added": []}}')
    with pytest.raises(EvolutionError, match="opset 1: field 'date' is missing"):
        load_opset_diff(bad)


def test_experiments_page_charts_onnx_evolution(mined: dict[str, int], engine: Engine, shared_dir: Path) -> None:
    import streamlit as st

    from tests.support.apptest import open_page, texts
    from tests.support.seed import seed_experiments

    seed_experiments(engine)
    st.cache_data.clear()
    at = open_page("experiments", campaign="seeded")
    at.text_input(key="opset_diff").set_value(str(diff_path(shared_dir))).run()
    assert not at.exception
    assert f"**{REPO}**: Spearman ρ = " in texts(at)
    assert any("Failing operators of campaign `seeded`" in t for t in [texts(at)])
    st.cache_data.clear()
