"""The experiments read model (db/queries/experiments.py) and the `run_outcomes` view, against campaigns whose
answers are known by construction (both backends)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from db.outcomes import RunOutcome
from db.queries import experiments as xq
from experiments.compare import compare_output
from experiments.results import ModelInfo, Produced, RunResult
from experiments.store import CampaignStore
from tests.support.seed import seed_experiments

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def expected_rates(needed: dict[str, list[float]], atol: float, rtol: float) -> dict[str, tuple[int, int]]:
    """(passed, mismatch) per converter, judged here from the seeded needed-atol values."""
    out = {}
    for converter, values in needed.items():
        at_rtol = [v if rtol == 0 else max(v - 1e-3, 0.0) for v in values]
        passed = sum(v <= atol for v in at_rtol)
        out[converter] = (passed, len(values) - passed)
    return out


@pytest.mark.parametrize("rtol", [0.0, 1e-3])
def test_rejudge_from_buckets_equals_the_direct_sql(engine: Engine, rtol: float) -> None:
    seeded = seed_experiments(engine)
    buckets = xq.tolerance_buckets(engine, xq.RunFilter(campaign=seeded.name), rtol=rtol)
    for atol in (0.0, 1e-8, 1e-5, 1e-3, 1.0):
        fast = xq.rejudge(buckets, atol)
        direct = xq.rejudged(engine, seeded.name, atol=atol, rtol=rtol)
        pd.testing.assert_frame_equal(fast, direct[fast.columns], check_dtype=False)
        got = {r.converter: (r.passed, r.mismatch) for r in fast.itertuples()}
        assert got == expected_rates(seeded.needed, atol, rtol), (atol, rtol)
    with pytest.raises(ValueError, match="decade grid"):
        xq.rejudge(buckets, 5e-4)


def test_no_numbers_for_an_rtol_is_not_judgeable(engine: Engine) -> None:
    seeded = seed_experiments(engine)
    table = xq.rejudged(engine, seeded.name, atol=1e-5, rtol=1e-2).set_index("converter")
    assert table.loc["torch.onnx", "not_judgeable"] == len(seeded.needed["torch.onnx"])
    assert table.loc["torch.onnx", "passed"] == 0 and table.loc["torch.onnx", "mismatch"] == 0


def test_outcomes_stages_operators_campaigns(engine: Engine) -> None:
    seeded = seed_experiments(engine)
    counts = xq.outcome_counts(engine, seeded.name)
    assert int(counts["runs"].sum()) == seeded.runs
    assert int(counts.loc[counts["status"] == "failed", "runs"].sum()) == seeded.failed
    stages = xq.failure_stages(engine, seeded.name)
    assert stages["stage"].tolist() == [seeded.failed_stage] * len(stages) and stages["runs"].sum() == seeded.failed
    ops = xq.operator_rates(engine, seeded.name)
    assert ops.groupby("operator")["runs"].sum().to_dict() == seeded.operators
    assert ops["failure_rate"].between(0, 1).all()
    listed = xq.campaigns(engine).set_index("campaign")
    assert listed.loc[seeded.name, "runs"] == seeded.runs and listed.loc[seeded.name, "failed"] == seeded.failed
    before = xq.data_version(engine)
    assert before[0] == seeded.runs
    detail = xq.run_detail(engine, seeded.first_run_id)
    assert detail is not None and detail["run"]["converter"] == "torch.onnx" and len(detail["outputs"]) == 1
    assert xq.run_detail(engine, 10**9) is None


def test_operator_rates_match_a_plain_group_by_per_operator_converter_and_exporter(engine: Engine) -> None:
    """The SQL over `model_operator` gives what pandas counts from the raw rows, with the exporter column."""
    seeded = seed_experiments(engine)
    with engine.connect() as conn:
        ops = pd.read_sql("SELECT model_id, operator FROM model_operator", conn)
        runs = pd.read_sql("SELECT model_id, converter, exporter, status FROM conversion_run", conn)
    joined = ops.merge(runs, on="model_id")
    expected = (
        joined.groupby(["operator", "converter", "exporter"])
        .agg(
            runs=("status", "size"),
            failures=("status", lambda s: int((~s.isin(["passed", "mismatch"])).sum())),
            mismatches=("status", lambda s: int((s == "mismatch").sum())),
        )
        .reset_index()
    )
    got = xq.operator_rates(engine, seeded.name)
    key = ["operator", "converter", "exporter"]
    pd.testing.assert_frame_equal(
        got[expected.columns].sort_values(key, ignore_index=True),
        expected.sort_values(key, ignore_index=True),
        check_dtype=False,
    )
    assert len(got) == len(expected) and set(got["converter"]) == {"torch.onnx", "tf2onnx"}
    assert xq.operator_rates(engine, "no-such-campaign").empty


def _store_one_run(engine: Engine) -> tuple[int, RunResult]:
    """A live campaign with one model and one fully described run, written through the store."""
    store = CampaignStore(engine)
    cid = store.campaign("typed", {"x": 1}, {"packages": {}})
    planned = [
        {
            "model_key": "typed-0",
            "source": "nnsmith-torch",
            "framework": "torch",
            "name": "nnsmith-torch-n7-s0",
            "params": {"seed": 0, "max_nodes": 7},
            "node_count": 7,
            "resolved": {"kind": "torch_module", "params": {"seed": 0}},
        }
    ]
    model = store.models(cid, planned)["typed-0"]
    store.record_model(int(model.id or 0), ModelInfo(operators=["Add", "Tan"], content_hash="h"))
    a = np.ones(3, np.float32)
    result = RunResult.judged(
        [{"input_index": 0, "output_index": 0, "output_name": "y", **compare_output(a, a + 1e-3, 1e-4, 0)}],
        1e-4,
        0.0,
        durations={"generate": 1.5, "export": 2.25, "onnx_check": 0.01, "compare": 0.5},
        onnx_graph=[["Add", []], ["Tan", [0]]],
        produced=Produced(opset=18, ir_version=10, producer_name="pytorch", producer_version="2.13.0"),
        onnx_path="/tmp/m.onnx",
        peak_rss_mb=321.5,
    )
    spec = {
        "converter": "torch.onnx-dynamo",
        "converter_name": "torch.onnx",
        "converter_version": "2.13.0",
        "exporter": "dynamo",
        "opset": 11,
        "input_seed": 3,
        "n_inputs": 1,
    }
    assert store.record_run(cid, int(model.id or 0), spec, result, "h") == RunOutcome.mismatch
    failed = RunResult("crash", stage="export", error_class="worker.crash", message="killed by SIGSEGV")
    assert store.record_run(cid, int(model.id or 0), {**spec, "input_seed": 4}, failed, "h") == "crash"
    return int(model.id or 0), result


def test_a_run_result_round_trips_through_the_store_with_its_verdict_registry_name_and_provenance(
    engine: Engine,
) -> None:
    _, result = _store_one_run(engine)
    run_id = int(xq.runs(engine, xq.RunFilter(campaign="typed", outcomes=("mismatch",)))["run_id"].iloc[0])
    detail = xq.run_detail(engine, run_id)
    assert detail is not None
    run = detail["run"]
    assert (run["status"], run["stage"], run["atol"], run["rtol"]) == ("mismatch", None, 1e-4, 0.0)
    assert run["registry_name"] == "torch.onnx-dynamo" and (run["opset"], run["produced_opset"]) == (11, 18)
    produced = Produced(
        run["produced_opset"], run["onnx_ir_version"], run["onnx_producer"], run["onnx_producer_version"]
    )
    assert produced == result.produced and run["onnx_path"] == result.onnx_path
    assert run["durations"] == result.durations and run["peak_rss_mb"] == result.peak_rss_mb
    assert run["onnx_graph"] == result.onnx_graph and run["node_count"] == 7
    stored = detail["outputs"].to_dict("records")[0]
    assert stored["needed_atol"] == result.outputs[0]["needed_atol"] and stored["shape_match"]


def test_run_outcomes_view_is_one_row_per_run_with_model_converter_opsets_outcome_and_durations(
    engine: Engine,
) -> None:
    seeded = seed_experiments(engine)
    _store_one_run(engine)
    with engine.connect() as conn:
        rows = pd.read_sql(text("SELECT * FROM run_outcomes ORDER BY run_id"), conn)
        total = conn.execute(text("SELECT count(*) FROM conversion_run")).scalar_one()
    assert len(rows) == total == seeded.runs + 2
    assert list(rows.columns) == list(xq.VIEW_COLUMNS)
    typed = rows[rows["campaign"] == "typed"].set_index("input_seed")
    assert typed.loc[3, ["model", "source", "framework", "model_kind"]].tolist() == [
        "nnsmith-torch-n7-s0",
        "nnsmith-torch",
        "torch",
        "torch_module",
    ]
    assert typed.loc[3, ["converter", "exporter", "registry_name"]].tolist() == [
        "torch.onnx",
        "dynamo",
        "torch.onnx-dynamo",
    ]
    assert typed.loc[3, ["requested_opset", "produced_opset", "outcome", "node_count"]].tolist() == [
        11,
        18,
        "mismatch",
        7,
    ]
    assert typed.loc[3, "export_s"] == 2.25 and pd.isna(typed.loc[3, "load_s"])
    assert typed.loc[3, "total_s"] == pytest.approx(1.5 + 2.25 + 0.01 + 0.5)
    assert typed.loc[4, ["outcome", "stage"]].tolist() == ["crash", "export"] and pd.isna(
        typed.loc[4, "produced_opset"]
    )
    per_outcome = rows[rows["campaign"] == seeded.name]["outcome"].value_counts().to_dict()
    assert per_outcome.get("failed") == seeded.failed and sum(per_outcome.values()) == seeded.runs
    blocks = [b.split("```", 1)[0] for b in README.split("```sql\n")[1:]]
    example = next(b for b in blocks if "FROM run_outcomes" in b).replace("'quick'", "'typed'")
    with engine.connect() as conn:
        grouped = conn.execute(text(example)).all()
    assert sorted((r.outcome, r.runs) for r in grouped) == [("crash", 1), ("mismatch", 1)]
    # the read model's `runs` is the view, filtered
    assert xq.runs(engine, "typed")["run_id"].tolist() == sorted(typed["run_id"], reverse=True)


def test_one_filter_object_narrows_every_read_the_same_way(engine: Engine) -> None:
    seeded = seed_experiments(engine)
    _store_one_run(engine)
    only_failed = xq.RunFilter(campaign=seeded.name, outcomes=("failed",))
    assert xq.outcome_counts(engine, only_failed)["runs"].sum() == seeded.failed
    assert len(xq.runs(engine, only_failed)) == seeded.failed
    tf = xq.RunFilter(converters=("tf2onnx",))
    assert set(xq.outcome_counts(engine, tf)["converter"]) == {"tf2onnx"}
    assert set(xq.operator_rates(engine, tf)["converter"]) == {"tf2onnx"}
    dynamo = xq.RunFilter(exporters=("dynamo",), outcomes=("passed", "mismatch"))
    assert xq.outcome_rates(engine, dynamo)[["produced_opset", "requested_opsets", "runs"]].values.tolist() == [
        [18, "11", 1]
    ]
    assert xq.RunFilter.of({"campaign": "typed", "outcomes": ["crash"]}) == xq.RunFilter("typed", outcomes=("crash",))
    with pytest.raises(ValueError, match="unknown outcome 'compared'"):
        xq.RunFilter(outcomes=("compared",))
    live = xq.campaigns(engine)
    assert live["campaign"].tolist()[0] == "typed"  # newest first
    assert live.set_index("campaign").loc["typed", ["runs", "models", "mismatch", "crash"]].tolist() == [2, 1, 1, 1]


def test_stage_durations_and_onnx_level_operator_rates(engine: Engine) -> None:
    _store_one_run(engine)
    times = xq.stage_durations(engine, "typed")
    assert times["stage"].tolist() == ["generate", "export", "onnx_check", "compare"]  # pipeline order
    assert times.set_index("stage").loc["export", ["runs", "mean_s", "max_s"]].tolist() == [1, 2.25, 2.25]
    onnx = xq.operator_rates(engine, "typed", level="onnx")
    assert sorted(onnx["operator"]) == ["Add", "Tan"] and set(onnx["exporter"]) == {"dynamo"}
    assert onnx["runs"].tolist() == [1, 1] and onnx["mismatch_rate"].tolist() == [1.0, 1.0]
