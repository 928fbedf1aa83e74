"""`experiment reduce`: the first node where onnxruntime departs from the ONNX reference evaluator, a smaller
model that still mismatches and a standalone repro script (a hand-built graph, and a stored run on both DBs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh

from experiments.reduce import mismatches, reduce_model


def _planted() -> onnx.ModelProto:
    """x → Mul → Add → Sqrt (NaN for negatives) → ReduceMax → Mul → Add, beside a Tanh branch. onnxruntime's
    ReduceMax skips NaN where the spec (and numpy) propagate it: the planted divergence is node `max`."""
    consts = [nh.from_array(np.array(v, np.float32), n) for n, v in (("two", 2.0), ("one", 1.0), ("three", 3.0))]
    nodes = [
        h.make_node("Mul", ["x", "two"], ["a"], name="scale"),
        h.make_node("Add", ["a", "one"], ["b"], name="shift"),
        h.make_node("Sqrt", ["b"], ["c"], name="root"),
        h.make_node("Tanh", ["x"], ["d"], name="squash"),
        h.make_node("ReduceMax", ["c"], ["e"], name="max", axes=[1], keepdims=1),
        h.make_node("Mul", ["e", "d"], ["f"], name="gate"),
        h.make_node("Add", ["f", "three"], ["y"], name="bias"),
    ]
    graph = h.make_graph(
        nodes,
        "planted",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, [4, 16])],
        consts,
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _feeds() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{"x": rng.standard_normal((4, 16)).astype(np.float32)} for _ in range(2)]


def test_reduce_finds_the_planted_node_and_writes_a_smaller_model_that_still_mismatches(tmp_path: Path) -> None:
    model, feeds = _planted(), _feeds()
    assert mismatches(model, feeds, 1e-4, 1e-3)
    done = reduce_model(model, feeds, 1e-4, 1e-3, tmp_path / "out")
    assert (done.status, done.node_name, done.operator, done.node_index) == ("reduced", "max", "ReduceMax", 4)
    assert done.nodes_before == 7 and done.nodes_after is not None and done.nodes_after < 7
    reduced = onnx.load(str(tmp_path / "out" / "reduced.onnx"))
    assert "ReduceMax" in [n.op_type for n in reduced.graph.node]
    assert {p.name for p in done.files} == {"reduced.onnx", "inputs.npz", "expected.npz", "actual.npz", "repro.py"}
    shown = subprocess.run([sys.executable, str(tmp_path / "out" / "repro.py")], capture_output=True, text=True)
    assert shown.returncode == 1 and "MISMATCH" in shown.stdout, shown.stdout + shown.stderr
    expected = np.load(tmp_path / "out" / "expected.npz")
    actual = np.load(tmp_path / "out" / "actual.npz")
    name = reduced.graph.output[0].name
    assert np.isnan(expected[name]).any() and not np.isnan(actual[name]).all()


def test_a_model_where_every_node_agrees_is_not_reduced(tmp_path: Path) -> None:
    model = _planted()
    feeds = [{"x": np.abs(f["x"]) + 0.5} for f in _feeds()]  # no negatives under the root: no NaN
    done = reduce_model(model, feeds, 1e-4, 1e-3, tmp_path / "out")
    assert done.status == "no_divergence" and done.node_name is None and not (tmp_path / "out").exists()


@pytest.mark.parametrize("atol", [1e-4])
def test_the_reduced_inputs_are_the_intermediate_values(tmp_path: Path, atol: float) -> None:
    done = reduce_model(_planted(), _feeds(), atol, 1e-3, tmp_path / "out")
    inputs = dict(np.load(tmp_path / "out" / "inputs.npz"))
    assert done.nodes_after == 1 and list(inputs) == ["c"]  # the Sqrt's output, NaNs and all
    assert np.isnan(inputs["c"]).any()


# -- a stored mismatching run, through the CLI (both databases) ----------------------------------------------

DIVERGENT = "tests.support.divergent_sources"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INTEROP_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _campaign(engine, data_dir: Path, sources: list[str], name: str, plugins: tuple[str, ...] = ()) -> list[Any]:  # type: ignore[no-untyped-def]
    from sqlmodel import Session, select

    import tests.support.divergent_sources  # noqa: F401
    from db.models.experiments import ConversionRun
    from experiments.campaign import run_campaign
    from experiments.spec import load_spec

    spec = load_spec(
        overrides={
            "name": name,
            "sources": sources,
            "converters": ["torch.onnx-torchscript"],
            "opsets": [17],
            "seeds": [0],
            "inputs_per_model": 2,
            "workers": 1,
            "timeout_s": 120,
            "memory_mb": 4000,
            "plugins": [DIVERGENT, *plugins],
        }
    )
    run_campaign(engine, spec, data_dir)
    with Session(engine) as s:
        return list(s.exec(select(ConversionRun).order_by(ConversionRun.id)).all())


@pytest.mark.slow
def test_reduce_of_a_stored_mismatch_finds_the_reducemax_and_stores_it(  # type: ignore[no-untyped-def]
    cli, engine, tmp_path: Path, data_dir: Path
) -> None:
    from db.queries.failures import diverging_operators, reductions

    (run,) = _campaign(engine, data_dir, ["divergent-nanmax"], "nanmax")
    assert run.status == "mismatch", run.message
    out = tmp_path / "red"
    result = cli("experiment", "reduce", str(run.id), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "(ReduceMax, node" in result.output and f"repro: python {out / 'repro.py'}" in result.output
    shown = subprocess.run([sys.executable, str(out / "repro.py")], capture_output=True, text=True)
    assert shown.returncode == 1 and "MISMATCH" in shown.stdout, shown.stdout + shown.stderr

    frame = reductions(engine)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert (row.run_id, row.status, row.operator, row.campaign) == (run.id, "reduced", "ReduceMax", "nanmax")
    assert row.nodes_after < row.nodes_before and 0 < row.reduction < 1 and row.seconds > 0
    assert reductions(engine, "other").empty
    ops = diverging_operators(engine, "nanmax")
    assert ops.to_dict("records") == [{"operator": "ReduceMax", "runs": 1, "models": 1}]

    again = cli("experiment", "reduce", str(run.id), "--out", str(out))  # idempotent: one row, replaced
    assert again.exit_code == 0 and len(reductions(engine)) == 1


@pytest.mark.slow
def test_reduce_refuses_runs_that_are_not_mismatches(cli, engine, tmp_path: Path, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    import tests.support.fault_sources  # noqa: F401

    (run,) = _campaign(engine, data_dir, ["fault-none"], "ok", ["tests.support.fault_sources"])
    assert run.status == "passed"
    refused = cli("experiment", "reduce", str(run.id), "--out", str(tmp_path / "x"))
    assert refused.exit_code == 2 and f"error: run {run.id} is passed, not a mismatch" in refused.output
    missing = cli("experiment", "reduce", "999999", "--out", str(tmp_path / "x"))
    assert missing.exit_code == 2 and "error: no conversion run with id 999999" in missing.output
    assert not (tmp_path / "x").exists()
