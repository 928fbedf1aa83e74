"""The analysis queries (outcome rates, study H1 per-operator rates, study H2 sequences) on both databases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, text

from db.queries.experiments import (
    graph_paths,
    operator_rates,
    operator_sequences,
    outcome_rates,
    runs,
    sequence_comparison,
)
from experiments.compare import compare_output
from experiments.results import ModelInfo, Produced, RunResult
from experiments.store import CampaignStore


def _spec(opset: int = 17) -> dict:
    return {
        "converter": "torch.onnx-torchscript",
        "converter_name": "torch.onnx",
        "converter_version": "2.13.0",
        "exporter": "torchscript",
        "opset": opset,
        "input_seed": 0,
        "n_inputs": 1,
    }


@pytest.fixture
def stored(engine):  # type: ignore[no-untyped-def]
    """Three runs of three models: one passes, one mismatches, one fails at export."""
    store = CampaignStore(engine)
    cid = store.campaign("q", {"x": 1}, {"python": "3.11", "packages": {}})
    planned = [
        {
            "model_key": f"k{i}",
            "source": "nnsmith-torch",
            "framework": "torch",
            "name": f"m{i}",
            "params": {"seed": i, "max_nodes": 5},
            "node_count": 5,
        }
        for i in range(3)
    ]
    models = store.models(cid, planned)
    ops = {"k0": ["Add", "Relu"], "k1": ["Relu", "Tan"], "k2": ["Add", "Tan"]}
    for key, info in ops.items():
        store.record_model(int(models[key].id), ModelInfo(operators=info, content_hash=key))
    a = np.ones(4, np.float32)
    produced = Produced(opset=17, ir_version=8, producer_name="pytorch", producer_version="2.13.0")
    ok = RunResult.judged(
        [{"input_index": 0, "output_index": 0, **compare_output(a, a, 1e-4, 0)}],
        1e-4,
        0.0,
        produced=produced,
        onnx_graph=[["Add", []], ["Relu", [0]]],
    )
    bad = RunResult.judged(
        [{"input_index": 0, "output_index": 0, **compare_output(a, a + 1, 1e-4, 0)}],
        1e-4,
        0.0,
        produced=produced,
        onnx_graph=[["Relu", []], ["Tan", [0]]],
    )
    failed = RunResult("failed", stage="export", error_class="RuntimeError", message="no")
    for key, result in (("k0", ok), ("k1", bad), ("k2", failed)):
        assert store.record_run(cid, int(models[key].id), _spec(), result, key)
    assert not store.record_run(cid, int(models["k0"].id), _spec(), ok, "k0")  # the run key is unique
    return engine


def test_outcome_rates_by_converter_node_count_and_produced_opset(stored) -> None:  # type: ignore[no-untyped-def]
    rates = outcome_rates(stored)
    by = {None if pd.isna(row["produced_opset"]) else int(row["produced_opset"]): row for _, row in rates.iterrows()}
    assert set(by) == {17, None}  # the export that failed produced no model, so it has no opset
    assert (by[17]["runs"], by[17]["passed"], by[17]["mismatch"], by[17]["requested_opsets"]) == (2, 1, 1, "17")
    assert by[17]["node_count"] == 5 and by[17]["mismatch_rate"] == pytest.approx(1 / 2)
    assert (by[None]["runs"], by[None]["failed"], by[None]["requested_opsets"]) == (1, 1, "17")


def test_a_run_at_another_opset_than_requested_is_analysed_at_the_produced_one_and_flagged(
    stored, cli, wide_console
) -> None:  # type: ignore[no-untyped-def]
    from db.queries.experiments import opset_changes, outcome_counts

    store = CampaignStore(stored)
    cid = store.campaign("q", {"x": 1}, {})
    planned = [
        {
            "model_key": "k3",
            "source": "nnsmith-torch",
            "framework": "torch",
            "name": "m3",
            "params": {"seed": 3, "max_nodes": 5},
            "node_count": 5,
        }
    ]
    model = store.models(cid, planned)["k3"]
    dynamo = {**_spec(11), "converter": "torch.onnx-dynamo", "exporter": "dynamo"}
    a = np.ones(4, np.float32)
    result = RunResult.judged(
        [{"input_index": 0, "output_index": 0, **compare_output(a, a, 1e-4, 0)}],
        1e-4,
        0.0,
        produced=Produced(opset=18, ir_version=10, producer_name="pytorch", producer_version="2.13.0+cpu"),
    )
    assert store.record_run(cid, int(model.id), dynamo, result, "k3", parameters={"registry_name": "x"})
    with stored.connect() as conn:
        row = conn.execute(
            text(
                "SELECT opset, produced_opset, onnx_ir_version, onnx_producer, onnx_producer_version, registry_name "
                "FROM conversion_run WHERE model_id = :m"
            ),
            {"m": model.id},
        ).one()
    assert tuple(row) == (11, 18, 10, "pytorch", "2.13.0+cpu", "torch.onnx-dynamo")

    frame = runs(stored)
    assert frame.loc[frame["exporter"] == "dynamo", "opset_differs"].tolist() == [True]
    assert frame["opset_differs"].isna().sum() == 1 and (~frame["opset_differs"].dropna()).sum() == 2  # type: ignore[operator]
    rates = outcome_rates(stored)
    mine = rates[rates["exporter"] == "dynamo"]
    assert mine[["produced_opset", "requested_opsets", "runs", "passed"]].values.tolist() == [[18, "11", 1, 1]]
    counts = outcome_counts(stored)
    assert counts[counts["exporter"] == "dynamo"][["produced_opset", "requested_opset"]].values.tolist() == [[18, 11]]
    changes = opset_changes(stored)
    assert changes.to_dict("records") == [
        {
            "campaign": "q",
            "converter": "torch.onnx-dynamo",
            "exporter": "dynamo",
            "requested_opset": 11,
            "produced_opset": 18,
            "runs": 1,
        }
    ]
    status = cli("experiment", "status", "--campaign", "q")
    assert "q: 1 torch.onnx-dynamo (dynamo) run(s) asked for opset 11 produced opset 18" in status.output
    analyzed = cli("experiment", "analyze", "outcomes")
    assert analyzed.exit_code == 0 and "opset: of the produced ONNX model" in analyzed.output
    dynamo_line = next(line for line in analyzed.output.splitlines() if " dynamo " in line)
    assert dynamo_line.replace("│", " ").split()[:5] == ["torch.onnx", "dynamo", "5", "18", "11"]


def test_runs_carry_their_models_node_count_for_the_breakdown(stored) -> None:  # type: ignore[no-untyped-def]
    from db.queries.experiments import outcome_counts

    with stored.connect() as conn:
        pairs = conn.execute(
            text("SELECT r.node_count, m.node_count FROM conversion_run r JOIN model m ON m.id = r.model_id")
        ).all()
    assert len(pairs) == 3 and all(run == model == 5 for run, model in pairs)
    counts = outcome_counts(stored)
    assert set(counts["node_count"]) == {5} and counts["runs"].sum() == 3


def test_model_operator_rows_follow_each_models_operator_list(stored) -> None:  # type: ignore[no-untyped-def]
    with stored.connect() as conn:
        rows = conn.execute(
            text("SELECT m.model_key, o.operator FROM model_operator o JOIN model m ON m.id = o.model_id ORDER BY 1, 2")
        ).all()
        k0 = conn.execute(text("SELECT id FROM model WHERE model_key = 'k0'")).scalar_one()
    assert [tuple(r) for r in rows] == [
        ("k0", "Add"),
        ("k0", "Relu"),
        ("k1", "Relu"),
        ("k1", "Tan"),
        ("k2", "Add"),
        ("k2", "Tan"),
    ]
    CampaignStore(stored).record_model(k0, ModelInfo(operators=["Mul", "Mul", "Add"]))  # a re-probe replaces them
    with stored.connect() as conn:
        again = (
            conn.execute(text("SELECT operator FROM model_operator WHERE model_id = :m ORDER BY 1"), {"m": k0})
            .scalars()
            .all()
        )
    assert again == ["Add", "Mul"]


def test_per_operator_failure_and_mismatch_rates(stored) -> None:  # type: ignore[no-untyped-def]
    rates = operator_rates(stored).set_index("operator")
    assert rates.loc["Tan", "runs"] == 2 and rates.loc["Tan", "failure_rate"] == 0.5
    assert rates.loc["Tan", "mismatch_rate"] == 1.0 and rates.loc["Add", "mismatch_rate"] == 0.0
    onnx = operator_rates(stored, level="onnx").set_index("operator")
    assert set(rates["exporter"]) == {"torchscript"}
    assert set(onnx.index) == {"Add", "Relu", "Tan"} and onnx.loc["Relu", "runs"] == 2


def test_operator_sequences_in_mismatching_vs_correct_runs(stored) -> None:  # type: ignore[no-untyped-def]
    seqs = operator_sequences(stored, length=2)
    assert set(zip(seqs["sequence"], seqs["status"], strict=True)) == {
        ("Add > Relu", "passed"),
        ("Relu > Tan", "mismatch"),
    }
    cmp = sequence_comparison(stored, length=2).set_index("sequence")
    assert cmp.loc["Relu > Tan", "mismatch_runs"] == 1 and cmp.loc["Relu > Tan", "correct_runs"] == 0
    assert cmp.loc["Add > Relu", "correct_share"] == 1.0


def test_graph_paths_follow_edges() -> None:
    graph = [["A", []], ["B", [0]], ["C", [0]], ["D", [1, 2]]]
    assert graph_paths(graph, 3) == {("A", "B", "D"), ("A", "C", "D")}
    assert graph_paths(graph, 1) == {("A",), ("B",), ("C",), ("D",)}


def test_analyze_command_prints_and_exports_each_analysis(stored, cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    for what in ("outcomes", "operators", "sequences"):
        out = tmp_path / f"{what}.csv"
        result = cli("experiment", "analyze", what, "--format", "csv", "--out", str(out))
        assert result.exit_code == 0, result.output
        assert len(pd.read_csv(out)) >= 1
    assert "Relu > Tan" in set(pd.read_csv(tmp_path / "sequences.csv")["sequence"])
    assert "sequences (2 rows)" in cli("experiment", "analyze", "sequences").output
    # The terminal shows each count with its rate, "n (p%)", and names the statuses no row has.
    first = pd.read_csv(tmp_path / "outcomes.csv").iloc[0]
    printed = cli("experiment", "analyze", "outcomes").output
    assert f"{first['passed']} ({first['passed_rate']:.0%})" in printed and "passed_rate" not in printed
    absent = [s for s in ("crash", "timeout", "oom") if pd.read_csv(tmp_path / "outcomes.csv")[s].sum() == 0]
    assert not absent or f"none in any row: {', '.join(absent)}" in printed
    bad = cli("experiment", "analyze", "everything")
    assert bad.exit_code == 2 and "unknown analysis" in bad.output


def test_status_lists_campaigns_without_runs_and_refuses_an_unknown_name(stored, cli) -> None:  # type: ignore[no-untyped-def]
    from db.queries.experiments import campaign_summary
    from experiments.spec import CampaignSpec
    from tests.test_cli_errors import assert_one_error_line

    spec = CampaignSpec(name="empty", sources=["nnsmith-torch"], converters=["torch.onnx-torchscript"], seeds=[0])
    CampaignStore(stored).campaign("empty", spec.identity(), {"packages": {}})  # started, nothing stored yet
    summary = campaign_summary(stored)
    assert summary.loc[summary["campaign"] == "empty", "runs"].tolist() == [0]
    assert summary.loc[summary["campaign"] == "q", "runs"].sum() == 3

    one = cli("experiment", "status", "--campaign", "empty")
    assert one.exit_code == 0, one.output
    assert "empty (live): 0/1 runs stored" in one.output and "(no runs yet)" in one.output
    assert "no campaign" not in one.output and "q (live)" not in one.output
    everything = cli("experiment", "status").output
    assert "(no runs yet)" in everything and "q (live): 3/" in everything and "no campaigns yet" not in everything
    unknown = cli("experiment", "status", "--campaign", "nope")
    assert unknown.exit_code == 2
    assert_one_error_line(unknown.output, "no campaign named 'nope'", "known: q, empty")


def test_rescore_rejudges_live_campaigns_unless_one_is_named_and_unknown_names_are_errors(stored, cli) -> None:  # type: ignore[no-untyped-def]
    from db.models.experiments import Campaign, ConversionRun
    from tests.test_cli_errors import assert_one_error_line

    store = CampaignStore(stored)
    old = store.campaign("old", {"import": "x"}, {}, kind="historical")
    model = store.models(
        old,
        [
            {
                "model_key": "h0",
                "source": "study-x",
                "framework": "torch",
                "name": "h0",
                "params": {"seed": 0, "max_nodes": 5},
                "node_count": 5,
            }
        ],
    )["h0"]
    a = np.ones(4, np.float32)
    close = RunResult.judged([{"input_index": 0, "output_index": 0, **compare_output(a, a + 1e-3, 1e-4, 0)}], 1e-4, 0)
    assert store.record_run(old, int(model.id), _spec(), close, None) == "mismatch"

    def verdicts() -> dict[str, list[tuple[str, float]]]:
        with stored.connect() as conn:
            rows = conn.execute(
                select(Campaign.name, ConversionRun.status, ConversionRun.atol)
                .join(Campaign, Campaign.id == ConversionRun.campaign_id)
                .where(ConversionRun.atol.is_not(None))
                .order_by(ConversionRun.id)
            ).all()
        out: dict[str, list[tuple[str, float]]] = {}
        for name, status, atol in rows:
            out.setdefault(name, []).append((status, atol))
        return out

    result = cli("experiment", "rescore", "--atol", "1e-2")
    assert result.exit_code == 0, result.output
    assert "re-judged 2 runs at atol=0.01 rtol=0 in live campaigns" in result.output
    assert verdicts() == {"q": [("passed", 1e-2), ("mismatch", 1e-2)], "old": [("mismatch", 1e-4)]}
    named = cli("experiment", "rescore", "--atol", "1e-2", "--campaign", "old")
    assert named.exit_code == 0 and "re-judged 1 runs" in named.output
    assert verdicts()["old"] == [("passed", 1e-2)]

    for args in (["rescore", "--atol", "1"], ["analyze", "outcomes"], ["analyze", "operators"]):
        unknown = cli("experiment", *args, "--campaign", "nope")
        assert unknown.exit_code == 2, args
        assert_one_error_line(unknown.output, "no campaign named 'nope'", "known: q, old")
    assert verdicts()["q"] == [("passed", 1e-2), ("mismatch", 1e-2)]
