"""`experiment reduce`: the first node where onnxruntime departs from the ONNX reference evaluator, a smaller
model that still mismatches and a standalone repro script (a hand-built graph, and a stored run on both DBs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
