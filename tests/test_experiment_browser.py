"""The Experiments page's SQL aggregates against a campaign whose answers are known by construction (both backends)."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from db.queries import experiment_browser as xq
from tests.support.seed import seed_experiments


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
    buckets = xq.tolerance_buckets(engine, rtol=rtol, campaign=seeded.name)
    for atol in (0.0, 1e-8, 1e-5, 1e-3, 1.0):
        fast = xq.rejudge(buckets, atol)
        direct = xq.rejudged(engine, atol=atol, rtol=rtol, campaign=seeded.name)
        pd.testing.assert_frame_equal(fast, direct[fast.columns], check_dtype=False)
        got = {r.converter: (r.passed, r.mismatch) for r in fast.itertuples()}
        assert got == expected_rates(seeded.needed, atol, rtol), (atol, rtol)
    with pytest.raises(ValueError, match="decade grid"):
        xq.rejudge(buckets, 5e-4)


def test_no_numbers_for_an_rtol_is_not_judgeable(engine: Engine) -> None:
    seeded = seed_experiments(engine)
    table = xq.rejudged(engine, atol=1e-5, rtol=1e-2, campaign=seeded.name).set_index("converter")
    assert table.loc["torch.onnx", "not_judgeable"] == len(seeded.needed["torch.onnx"])
    assert table.loc["torch.onnx", "passed"] == 0 and table.loc["torch.onnx", "mismatch"] == 0


def test_outcomes_stages_operators_campaigns(engine: Engine) -> None:
    seeded = seed_experiments(engine)
    counts = xq.outcome_counts(engine, campaign=seeded.name)
    assert int(counts["runs"].sum()) == seeded.runs
    assert int(counts.loc[counts["status"] == "failed", "runs"].sum()) == seeded.failed
    stages = xq.failure_stages(engine, campaign=seeded.name)
    assert stages["stage"].tolist() == [seeded.failed_stage] * len(stages) and stages["runs"].sum() == seeded.failed
    ops = xq.operator_rates(engine, campaign=seeded.name)
    assert ops.groupby("operator")["runs"].sum().to_dict() == seeded.operators
    assert ops["failure_rate"].between(0, 1).all()
    listed = xq.campaigns(engine).set_index("campaign")
    assert listed.loc[seeded.name, "runs"] == seeded.runs and listed.loc[seeded.name, "failed"] == seeded.failed
    before = xq.data_version(engine)
    assert before[0] == seeded.runs
    detail = xq.run_detail(engine, seeded.first_run_id)
    assert detail is not None and detail["run"]["converter"] == "torch.onnx" and len(detail["outputs"]) == 1
    assert xq.run_detail(engine, 10**9) is None


def test_operator_rates_match_a_plain_group_by_per_operator_and_converter(engine: Engine) -> None:
    """The pivoted SQL (one row per operator, sums per converter) gives what pandas counts from the raw rows."""
    seeded = seed_experiments(engine)
    with engine.connect() as conn:
        ops = pd.read_sql("SELECT model_id, operator FROM model_operator", conn)
        runs = pd.read_sql("SELECT model_id, converter, status FROM conversion_run", conn)
    joined = ops.merge(runs, on="model_id")
    expected = (
        joined.groupby(["operator", "converter"])
        .agg(
            runs=("status", "size"),
            failures=("status", lambda s: int((~s.isin(["passed", "mismatch"])).sum())),
            mismatches=("status", lambda s: int((s == "mismatch").sum())),
        )
        .reset_index()
    )
    got = xq.operator_rates(engine, campaign=seeded.name)
    key = ["operator", "converter"]
    pd.testing.assert_frame_equal(
        got[expected.columns].sort_values(key, ignore_index=True),
        expected.sort_values(key, ignore_index=True),
        check_dtype=False,
    )
    assert len(got) == len(expected) and set(got["converter"]) == {"torch.onnx", "tf2onnx"}
    assert xq.operator_rates(engine, campaign="no-such-campaign").empty
