"""`experiment reduce`: the first node where onnxruntime departs from the source framework's values (else the ONNX
reference evaluator), whose fault it is, a smaller model that still mismatches and a standalone repro script (a
hand-built graph, built PyTorch and NNSmith models, and stored runs on both DBs)."""

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


# -- against the source framework's intermediate values ----------------------------------------------------


def _built(
    source: str,
    converter: str,
    params: dict[str, Any] | None = None,
    folder: Path = Path("."),
    kind: str = "torch_module",
) -> tuple[Any, onnx.ModelProto, list[dict[str, np.ndarray]]]:
    """A source's model built (into `folder`), converted at opset 17, and its first two seeded inputs."""
    import tests.support.divergent_sources  # noqa: F401
    from experiments.converters import CONVERTERS
    from experiments.core import seeded_inputs
    from experiments.sources import SOURCES

    loaded = SOURCES.get(source).build(params or {"seed": 0}, folder)
    proto = onnx.load_from_string(CONVERTERS.get(converter).convert(loaded, 17, kind))
    return loaded, proto, [seeded_inputs(loaded.inputs, 0, k) for k in range(2)]


def test_a_perturbed_node_is_found_against_the_source_framework_and_blamed_on_the_converter(tmp_path: Path) -> None:
    loaded, proto, feeds = _built("divergent-tanh", "torch.onnx-perturbed")
    assert not mismatches(proto, feeds, 1e-4, 1e-3)  # onnxruntime agrees with the spec: only the source tells
    done = reduce_model(proto, feeds, 1e-4, 1e-3, tmp_path / "out", loaded=loaded)
    assert (done.status, done.basis, done.cause, done.operator) == ("reduced", "source", "converter", "Sigmoid")
    assert done.node_name == "/Tanh" and done.nodes_after == 1 and done.matched_values == 5
    shown = subprocess.run([sys.executable, str(tmp_path / "out" / "repro.py")], capture_output=True, text=True)
    assert shown.returncode == 1 and "source framework=" in shown.stdout, shown.stdout + shown.stderr
    # the unperturbed export agrees with PyTorch on every matched value: nothing diverges, nothing to blame
    loaded, proto, feeds = _built("divergent-tanh", "torch.onnx-torchscript")
    clean = reduce_model(proto, feeds, 1e-4, 1e-3, tmp_path / "clean", loaded=loaded)
    assert (clean.status, clean.basis, clean.cause, clean.matched_values) == ("no_divergence", "source", None, 5)


@pytest.mark.parametrize("converter", ["torch.onnx-torchscript", "torch.onnx-dynamo"])
def test_onnxruntimes_nan_skipping_reducemax_is_found_against_pytorch_and_blamed_on_the_runtime(
    tmp_path: Path, converter: str
) -> None:
    loaded, proto, feeds = _built("divergent-nanmax", converter)
    done = reduce_model(proto, feeds, 1e-4, 1e-3, tmp_path / "out", loaded=loaded)
    assert (done.status, done.basis, done.cause, done.operator) == ("reduced", "source", "runtime", "ReduceMax")
    assert done.nodes_after == 1 and (done.matched_values or 0) >= 6
    shown = subprocess.run([sys.executable, str(tmp_path / "out" / "repro.py")], capture_output=True, text=True)
    assert shown.returncode == 1 and "reference=" in shown.stdout, shown.stdout + shown.stderr


def _chain(ops: list[tuple[str, list[str], str]]) -> onnx.ModelProto:
    """An ONNX graph of float [2] values from (op, inputs, output) triples; `x` is its input, the last its output."""
    nodes = [h.make_node(op, ins, [out], name=out) for op, ins, out in ops]
    vec = [2]
    graph = h.make_graph(
        nodes,
        "chain",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, vec)],
        [h.make_tensor_value_info(ops[-1][2], TensorProto.FLOAT, vec)],
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _source(steps: list[tuple[str, list[str], str]], output: str) -> Any:
    from experiments.source_values import SourceGraph, SourceStep

    return SourceGraph("test", [SourceStep(op, args, [out]) for op, args, out in steps], ["x"], [output], dict)


def test_a_chain_of_ops_whose_values_coincide_is_matched_in_order() -> None:
    """LeakyRelu of LeakyRelu of a positive value is that value: every candidate agrees, the nearest is the one."""
    from experiments.source_values import match_values

    x = np.array([1.0, 2.0], np.float32)
    model = _chain([("LeakyRelu", ["x"], "p"), ("LeakyRelu", ["p"], "q"), ("Mul", ["q", "x"], "r")])
    graph = _source([("LeakyReLU", ["x"], "a"), ("LeakyReLU", ["a"], "b"), ("Mul", ["b", "x"], "c")], "c")
    values = {"x": x, "a": x, "b": x, "c": x * x}
    mapping = match_values(model, graph, values, {"x": x, "p": x, "q": x, "r": x * x})
    assert mapping == {"x": "x", "p": "a", "q": "b", "r": "c"}  # not a→q, b→nothing: `c` would be compared to r


def test_a_diverging_node_is_matched_where_it_stands_not_to_a_later_value_that_happens_to_be_closer() -> None:
    from experiments.source_values import match_values

    x = np.array([1.0, 2.0], np.float32)
    model = _chain([("Sigmoid", ["x"], "s"), ("Relu", ["s"], "u"), ("Neg", ["u"], "m")])
    graph = _source([("Tanh", ["x"], "t"), ("Relu", ["t"], "v"), ("Neg", ["v"], "y")], "y")
    source = {
        "x": x,
        "t": np.full(2, 5.0, np.float32),
        "v": np.full(2, 5.0, np.float32),
        "y": np.full(2, -5.0, np.float32),
    }
    onnx_values = {
        "x": x,
        "s": np.zeros(2, np.float32),
        "u": np.full(2, 4.0, np.float32),
        "m": np.full(2, -4.0, np.float32),
    }
    # u (4) is closer to t (5) than s (0) is, and neither agrees: the node where the values part is s
    assert match_values(model, graph, source, onnx_values) == {"x": "x", "m": "y", "s": "t", "u": "v"}


@pytest.mark.parametrize(
    ("source", "converter", "kind"),
    [("nnsmith-torch", "torch.onnx-torchscript", "torch_module"), ("nnsmith-tensorflow", "tf2onnx", "tf_function")],
)
def test_an_nnsmith_models_values_are_matched_through_its_own_graph(
    tmp_path: Path, source: str, converter: str, kind: str
) -> None:
    """tf2onnx renames every value (`PartitionedCall/...:0`) and folds constant subgraphs: matching goes by the
    graph's structure; torch.onnx keeps one value per NNSmith result."""
    from experiments.reduce import _ort, expose_all
    from experiments.source_values import match_values, source_graph

    params = {"generator": "nnsmith", "method": "symbolic-cinit", "max_nodes": 10, "seed": 1}
    loaded, proto, (feed, _) = _built(source, converter, params, tmp_path / "model", kind)
    graph = source_graph(loaded)
    assert graph is not None and graph.kind == source
    values = graph.evaluate(feed)
    assert all(np.array_equal(values[k], feed[k]) for k in graph.inputs)
    got = _ort(expose_all(proto), feed)
    mapping = match_values(proto, graph, values, got)
    computed = {o for n in proto.graph.node for o in n.output} & set(mapping)
    # each ONNX value matched to an NNSmith result holds that result's values, and each result has one value
    assert computed and len({mapping[n] for n in computed}) == len(computed)
    assert all(np.allclose(values[mapping[n]], got[n], atol=1e-5, equal_nan=True) for n in computed)
    assert {mapping[o.name] for o in proto.graph.output if o.name in mapping} == set(graph.outputs)
    if source == "nnsmith-torch":  # every non-constant result is one ONNX value
        assert {mapping[n] for n in computed} == {o for s in graph.steps for o in s.outs if o not in graph.constants}
    done = reduce_model(proto, [feed], 1e-4, 1e-3, tmp_path / "out", loaded=loaded)
    assert (done.basis, done.status, done.matched_values) == ("source", "no_divergence", len(computed))


def _keras_model(tmp_path: Path, trained_batchnorm: bool) -> tuple[Any, onnx.ModelProto, dict[str, np.ndarray]]:
    """MobileNetV3Small (96 px) through tf2onnx; with BatchNorm statistics as training leaves them (not the identity
    of fresh layers), so that tf2onnx folds each BatchNorm's scale into its Conv and keeps its shift as an Add."""
    from experiments.converters import CONVERTERS
    from experiments.core import seeded_inputs
    from experiments.sources import SOURCES

    params = {"arch": "MobileNetV3Small", "input_size": 96, "seed": 0}
    loaded = SOURCES.get("keras-applications").build(params, tmp_path / "model")
    rng = np.random.default_rng(1)
    for layer in loaded.native.layers if trained_batchnorm else []:
        if type(layer).__name__ == "BatchNormalization":
            shape = layer.get_weights()[0].shape
            ranges = [(0.5, 2.0), (-0.5, 0.5), (-0.5, 0.5), (0.5, 2.0)]  # gamma, beta, moving mean, moving variance
            layer.set_weights([rng.uniform(lo, hi, shape).astype(np.float32) for lo, hi in ranges])
    proto = onnx.load_from_string(CONVERTERS.get("tf2onnx").convert(loaded, 17, "keras"))
    return loaded, proto, seeded_inputs(loaded.inputs, 0, 0)


@pytest.mark.slow
@pytest.mark.parametrize("trained_batchnorm", [False, True])
def test_a_keras_models_values_are_matched_operation_by_operation_across_layout_and_folding(
    tmp_path: Path, trained_batchnorm: bool
) -> None:
    from experiments.reduce import _ort, expose_all
    from experiments.source_values import match_values, source_graph, source_in_onnx_layout

    loaded, proto, feed = _keras_model(tmp_path, trained_batchnorm)
    graph = source_graph(loaded)
    assert graph is not None and graph.kind == "keras" and graph.channels_last
    values, got = graph.evaluate(feed), {**feed, **_ort(expose_all(proto), feed)}
    mapping = match_values(proto, graph, values, got)
    expected = source_in_onnx_layout(graph, mapping, values, got)
    assert set(expected) == set(mapping)
    assert all(np.allclose(expected[n], got[n], atol=1e-4, rtol=1e-3) for n in mapping)  # no false departure
    assert any(values[v].shape != got[n].shape for n, v in mapping.items())  # NHWC values held as NCHW
    steps = {o: s.op for s in graph.steps for o in s.outs}
    unmatched = [steps[o] for o in steps if o not in set(mapping.values())]
    # folded into neighbours: BatchNorm into its Conv (fresh ones are the identity), or the Conv's value never
    # stands alone once a trained BatchNorm's scale is folded into it
    assert set(unmatched) <= {"BatchNormalization", "Conv2D"} and len(unmatched) <= 0.15 * len(steps)
    clean = reduce_model(proto, [feed], 1e-4, 1e-3, tmp_path / "clean", loaded=loaded)
    assert (clean.status, clean.basis, clean.cause) == ("no_divergence", "source", None)
    # a planted converter bug: the third Relu computed as a Sigmoid; onnxruntime agrees with the spec on it
    node = [n for n in proto.graph.node if n.op_type == "Relu"][2]
    node.op_type = "Sigmoid"
    done = reduce_model(proto, [feed], 1e-4, 1e-3, tmp_path / "out", loaded=loaded)
    assert (done.status, done.basis, done.cause, done.operator) == ("reduced", "source", "converter", "Sigmoid")
    assert done.node_name == node.name and done.nodes_after == 1


# -- a stored mismatching run, through the CLI (both databases) ----------------------------------------------

DIVERGENT = "tests.support.divergent_sources"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INTEROP_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _campaign(  # type: ignore[no-untyped-def]
    engine,
    data_dir: Path,
    sources: list[str],
    name: str,
    plugins: tuple[str, ...] = (),
    converter: str = "torch.onnx-torchscript",
) -> list[Any]:
    from sqlmodel import Session, select

    import tests.support.divergent_sources  # noqa: F401
    from db.models.experiments import ConversionRun
    from experiments.campaign import run_campaign
    from experiments.spec import load_spec

    spec = load_spec(
        overrides={
            "name": name,
            "sources": sources,
            "converters": [converter],
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
    assert ops.to_dict("records") == [
        {"operator": "ReduceMax", "runs": 1, "models": 1, "converter_caused": 0, "runtime_caused": 1}
    ]

    assert (row.basis, row.cause) == ("source", "runtime")  # PyTorch's amax propagates NaN like the spec

    again = cli("experiment", "reduce", str(run.id), "--out", str(out))  # idempotent: one row, replaced
    assert again.exit_code == 0 and len(reductions(engine)) == 1


@pytest.mark.slow
def test_reduce_of_a_stored_run_whose_converter_perturbed_a_node_blames_the_converter(  # type: ignore[no-untyped-def]
    cli, engine, tmp_path: Path, data_dir: Path
) -> None:
    from db.queries.failures import reductions

    (run,) = _campaign(engine, data_dir, ["divergent-tanh"], "perturbed", converter="torch.onnx-perturbed")
    assert run.status == "mismatch", run.message
    result = cli("experiment", "reduce", str(run.id), "--out", str(tmp_path / "red"))
    assert result.exit_code == 0, result.output
    assert "'/Tanh' (Sigmoid, node" in result.output and "converter-caused" in result.output
    row = reductions(engine).iloc[0]
    assert (row.status, row.basis, row.cause, row.operator, row.matched_values) == (
        "reduced",
        "source",
        "converter",
        "Sigmoid",
        5,
    )


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


@pytest.mark.slow
def test_reductions_reach_the_operator_analysis_the_report_and_the_page(  # type: ignore[no-untyped-def]
    cli, engine, tmp_path: Path, data_dir: Path
) -> None:
    """Two campaigns: ReduceMax (runtime-caused) and the perturbed Tanh (converter-caused); H1 counts each reduced
    mismatch for its diverging operator only, the report and the Experiments page show the reductions."""
    import json

    import streamlit as st

    from reporting.paper import PaperReport
    from reporting.reductions import add_reductions
    from tests.support.apptest import open_page, texts

    (nanmax,) = _campaign(engine, data_dir, ["divergent-nanmax"], "nanmax")
    *_, tanh = _campaign(engine, data_dir, ["divergent-tanh"], "perturbed", converter="torch.onnx-perturbed")
    empty = PaperReport()
    add_reductions(engine, empty)
    assert "no mismatching run has been reduced yet" in empty.choices[-1]
    for run in (nanmax, tanh):
        assert cli("experiment", "reduce", str(run.id), "--out", str(tmp_path / str(run.id))).exit_code == 0

    every = json.loads(cli("experiment", "operators", "--format", "json").output)
    attributed = json.loads(cli("experiment", "operators", "--diverging", "--format", "json").output)
    before = {(r["operator"], r["converter"]): r["mismatches"] for r in every}
    after = {(r["operator"], r["converter"]): r for r in attributed}
    assert before[("Tanh", "torch.onnx")] == 1 and after[("Tanh", "torch.onnx")]["mismatches"] == 0  # nanmax's
    assert before[("Mul", "torch.onnx-perturbed")] == 1 and before[("Sigmoid", "torch.onnx-perturbed")] == 1
    assert after[("Mul", "torch.onnx-perturbed")]["mismatches"] == 0  # not the diverging operator
    sigmoid = after[("Sigmoid", "torch.onnx-perturbed")]
    assert (sigmoid["mismatches"], sigmoid["diverging"], sigmoid["converter_caused"]) == (1, 1, 1)
    reducemax = after[("ReduceMax", "torch.onnx")]
    assert (reducemax["mismatches"], reducemax["runtime_caused"], reducemax["mismatches_any_node"]) == (1, 1, 1)
    table = cli("experiment", "operators", "--diverging", "--campaign", "perturbed")
    assert table.exit_code == 0 and "Sigmoid" in table.output and "ReduceMax" not in table.output
    unknown = cli("experiment", "operators", "--campaign", "nope")
    assert unknown.exit_code == 2 and "error:" in unknown.output

    report = PaperReport()
    add_reductions(engine, report)
    summary = report.table("mismatch_reductions").set_index("campaign")
    assert summary.loc["perturbed", "reduced"] == 1 and summary.loc["perturbed", "converter_caused"] == 1
    assert summary.loc["nanmax", "runtime_caused"] == 1 and summary.loc["nanmax", "share_reduced"] == 1.0
    assert set(report.table("diverging_operators")["operator"]) == {"ReduceMax", "Sigmoid"}
    assert "2 of 2 mismatching runs" in report.choices[-1]

    st.cache_data.clear()
    at = open_page("experiments", campaign="perturbed")
    assert not at.exception
    assert "**1 of 1 mismatching runs reduced**" in texts(at)
    shown = [d.value for d in at.dataframe if "share_reduced" in d.value.columns]
    assert shown and int(shown[0]["converter_caused"].iloc[0]) == 1
    st.cache_data.clear()
