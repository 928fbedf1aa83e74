"""The Experiments page through AppTest on the study's imported results plus a seeded campaign (both backends)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy.engine import Engine

from tests.support.apptest import chart_data, metrics, open_page, texts
from tests.support.seed import SeededCampaign, seed_experiments


@pytest.fixture
def empty(configured_db: str) -> Iterator[str]:
    st.cache_data.clear()
    yield configured_db
    st.cache_data.clear()


@pytest.fixture
def campaigns(cli, shared_dir: Path, engine: Engine) -> Iterator[SeededCampaign]:  # type: ignore[no-untyped-def]
    st.cache_data.clear()
    results = shared_dir / "data/paper-artifact/synthetic-models/exporter_test_results"
    imported = cli("experiment", "import-results", str(results))
    assert imported.exit_code == 0, imported.output
    yield seed_experiments(engine)
    st.cache_data.clear()


def test_experiments_page_opens_on_the_newest_live_campaign_and_switches_with_its_selector(
    campaigns: SeededCampaign,
) -> None:
    at = open_page("experiments")
    picker = at.selectbox(key="param_campaign")
    assert picker.value == "seeded"  # the live campaign, not the study's historical import created after it
    assert metrics(at)["Runs"] == f"{campaigns.runs:,}"
    assert "live campaign, started 2023-01-01 00:00 UTC" in texts(at) and "finished after 2 min" in texts(at)
    listed = next(d.value for d in at.dataframe if "kind" in d.value.columns).set_index("campaign")
    assert listed.loc["study-exporter-results", "runs"] == 3544 and listed.loc["seeded", "runs"] == campaigns.runs
    assert (listed.loc["seeded", "cpu"], listed.loc["seeded", "tensorflow"]) == ("—", "—")  # missing: a dash

    picker.set_value("study-exporter-results").run()
    assert not at.exception
    assert metrics(at)["Runs"] == "3,544" and at.query_params["campaign"] == "study-exporter-results"
    assert "historical campaign" in texts(at)
    counts = chart_data(at.get("vega_lite_chart")[0])
    assert int(counts["runs"].sum()) == 3544  # the headline chart covers this campaign only


def test_runs_are_picked_by_model_and_converter_and_durations_are_formatted(campaigns: SeededCampaign) -> None:
    at = open_page("experiments", campaign="seeded")
    options = at.selectbox(key="param_run").options
    first = next(o for o in options if o.endswith(f"#{campaigns.first_run_id}"))
    assert first.startswith("model1 · torch.onnx (torchscript) · opset 17 · passed")
    at = open_page("experiments", campaign="seeded", run=str(campaigns.first_run_id))
    assert "**Time per stage:** —" in texts(at) and "**peak memory** —" in texts(at)


def test_experiments_page_outcomes_tolerance_operators_detail(campaigns: SeededCampaign) -> None:
    at = open_page("experiments", campaign="seeded", ops="1")
    figures = metrics(at)
    assert figures["torch.onnx: mismatch at atol=1e-05, rtol=0"] == "40.0%"  # 2 of 5 need more than 1e-5
    assert figures["tf2onnx: mismatch at atol=1e-05, rtol=0"] == "66.7%"
    assert "ort_session" in set(chart_data(at.get("vega_lite_chart")[1])["stage"])
    ops = next(d.value for d in at.dataframe if "failure_rate" in d.value.columns)
    runs_with = ops.groupby("operator")["runs"].sum().to_dict()
    assert runs_with == campaigns.operators

    at = open_page("experiments", campaign="seeded", atol="0.001")
    figures = metrics(at)
    assert figures["torch.onnx: mismatch at atol=0.001, rtol=0"] == "20.0%"
    assert figures["tf2onnx: mismatch at atol=0.001, rtol=0"] == "33.3%"
    at = open_page("experiments", campaign="seeded", rtol="0.001")
    assert metrics(at)["torch.onnx: mismatch at atol=1e-05, rtol=0.001"] == "20.0%"

    at = open_page("experiments", campaign="seeded", run=str(campaigns.first_run_id))
    command, toml = (c.value for c in at.code)
    assert command == f"interop experiment repro {campaigns.first_run_id}"
    spec = tomllib.loads(toml)["campaign"]
    assert spec["sources"] == ["nnsmith-torch"] and spec["converters"] == ["torch.onnx-torchscript"]
    assert spec["opsets"] == [17] and spec["input_seeds"] == [0] and spec["inputs_per_model"] == 1
    assert spec["source_options"] == {"nnsmith-torch": {"params": [{}]}}  # the seeded model's exact parameters
    assert "interop experiment run repro.toml" in texts(at)


def test_experiments_historical_run_detail(campaigns: SeededCampaign) -> None:
    at = open_page("experiments", campaign="study-exporter-results", run="5")
    body = texts(at)
    assert "historical" in body and "no model files here to re-run" in body
    assert metrics(at)["tf2onnx: mismatch at atol=1e-05, rtol=0"].endswith("%")


def test_experiments_empty_state(empty: str) -> None:
    assert "interop experiment run --preset quick" in texts(open_page("experiments"))
