"""Failure signatures: the normalisation rule on real messages of the study's runs, and the stored signatures
(idempotent, per rule version, following rescored verdicts) read through db/queries/failures on both backends."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.engine import Engine

from db.models.experiments import ConversionRun
from db.queries import failures as fq
from experiments.signatures import compute_signatures, load_rule, normalise, operator_of, signature_of
from experiments.study_import import classify, import_exporter_results
from tests.support.seed import seed_experiments

ORT = "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for {op} node with name '{name}'"


def sig(message: str, converter: str = "tf2onnx", status: str = "failed", rule: str = "sig-v1") -> str:
    """The signature key of a study failure message (stage and class classified as the study import does)."""
    stage, error_class = classify(message)
    run = {"converter": converter, "status": status, "stage": stage, "error_class": error_class, "message": message}
    return signature_of(run, load_rule(rule)).key


def test_argmax_variants_are_one_signature_and_other_operators_are_not() -> None:
    names = [
        "StatefulPartitionedCall/ArgMax_1",
        "StatefulPartitionedCall/ArgMax",
        "PartitionedCall/ArgMax_2",
        "ArgMax_50",
    ]
    argmax = {sig(ORT.format(op="ArgMax(12)", name=n)) for n in names}
    assert len(argmax) == 1
    assert sig(ORT.format(op="ArgMax(13)", name="ArgMax_110")) in argmax  # the opset is a number, canonicalised
    others = {
        sig(ORT.format(op=op, name=f"StatefulPartitionedCall/{op[:-4]}")) for op in ("Cos(7)", "Tan(7)", "ArgMin(13)")
    }
    assert len(others) == 3 and not others & argmax
    assert operator_of(ORT.format(op="DepthToSpace(13)", name="PartitionedCall/DepthToSpace_1")) == "DepthToSpace"
    # the same message from the other converter is another signature
    assert sig(ORT.format(op="ArgMax(13)", name="ArgMax_50"), converter="torch.onnx") not in argmax
    # a rule that keeps operator versions tells ArgMax(12) from ArgMax(13), still not node names
    v12 = {sig(ORT.format(op="ArgMax(12)", name=n), rule="sig-v1-dtypes") for n in names}
    assert len(v12) == 1 and sig(ORT.format(op="ArgMax(13)", name="x/ArgMax_3"), rule="sig-v1-dtypes") not in v12


def test_paths_shapes_and_numbers_are_canonicalised_in_real_messages() -> None:
    load = (
        "[ONNXRuntimeError] : 1 : FAIL : Load model from exporter_test_results/tensorflow/{d}/model_{m}/model.onnx "
        "failed:Node ({node}) Op (Sub) [ShapeInferenceError] Incompatible dimensions"
    )
    a = load.format(d=20, m="8_399897940", node="StatefulPartitionedCall/Sub")
    b = load.format(d=75, m="37_1351042143", node="PartitionedCall/Sub_3")
    assert sig(a) == sig(b)
    assert "exporter_test_results" not in normalise(a) and operator_of(a) == "Sub"
    concat = (
        "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Concat node. "
        "Name:'{name}' Status Message: /Users/runner/work/1/s/onnxruntime/core/providers/cpu/tensor/concat.cc:141 "
        "onnxruntime::common::Status onnxruntime::ConcatBase::PrepareForCompute(onnxruntime::OpKernelContext *, "
        "const onnxruntime::ConcatBase::InlinedTensorsVector &, onnxruntime::Prepare &) const input_rank == "
        "reference_rank was false. Ranks of input data are different, cannot concatenate them. "
        "expected rank: {r} got: {g}"
    )
    one, two = concat.format(name="PartitionedCall/concat_1", r=2, g=1), concat.format(name="Concat_15", r=1, g=0)
    assert sig(one) == sig(two)
    assert "concat.cc" in normalise(one) and "/Users/runner" not in normalise(one)
    tf = (
        "Value for attr 'T' of {t} is not in the list of allowed values: bfloat16, half, float, double, uint8, "
        "int8, uint16, int16, int32, int64, complex64, complex128, uint32, uint64\n\t; NodeDef: {{{{node Sub}}}}; "
        "Op<name=Sub; signature=x:T, y:T -> z:T; attr=T:type,allowed=[DT_BFLOAT16, DT_HALF, DT_FLOAT]> [Op:Sub] name: "
    )
    assert sig(tf.format(t="bool")) == sig(tf.format(t="string"))
    assert operator_of(tf.format(t="bool")) == "Sub"
    shapes = (
        "{{function_node __wrapped__Sub_device_/job:localhost/replica:0/task:0/device:CPU:0}} "
        "Incompatible shapes: {a} vs. {b} [Op:Sub] name: "
    )
    assert sig(shapes.format(a="[49,18,1]", b="[49,18]")) == sig(shapes.format(a="[3,1]", b="[2]"))
    typed = (
        "[ONNXRuntimeError] : 10 : INVALID_GRAPH : This is an invalid model. Type Error: Type 'tensor({t})' of "
        "input parameter ({p}) of operator (ReduceSum) in node ({n}) is invalid."
    )
    int8, int16 = typed.format(t="int8", p="v56_0", n="Sum"), typed.format(t="int16", p="aten::gt_444", n="Sum_2")
    assert sig(int8) == sig(int16)  # sig-v1: the dtype is canonicalised …
    assert sig(int8, rule="sig-v1-dtypes") != sig(int16, rule="sig-v1-dtypes")  # … a rule may keep it
    assert sig(int8) != sig(typed.format(t="int8", p="v1", n="x").replace("ReduceSum", "ReduceProd"))


def test_sig_v2_removes_node_names_sig_v1_left_after_name_and_in_tensorflow_paths(shared_dir: Path) -> None:
    """Real onnxruntime, TensorFlow and tf2onnx messages name nodes without quotes too (`Name:PartitionedCall/Gelu/
    Erfc`); sig-v1 only removed quoted names. sig-v2 removes both and groups the study's messages as sig-v1 did."""
    erf = "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Erf node. Name:{n} Status: "
    names = ["PartitionedCall/Gelu/Erfc", "'PartitionedCall/Gelu/Erfc'", "StatefulPartitionedCall/model/Gelu_3/Erfc"]
    assert len({sig(erf.format(n=n), rule="sig-v2") for n in names}) == 1
    assert len({sig(erf.format(n=n), rule="sig-v1") for n in names}) == 3  # what sig-v1 left behind
    assert "Gelu" not in normalise(erf.format(n=names[0]), load_rule("sig-v2"))
    assert sig(erf.format(n=names[0]), rule="sig-v2") != sig(
        erf.format(n=names[0]).replace("Erf node", "Cos node"), rule="sig-v2"
    )
    tf = "Tensorflow op [{n}: Erfc] is not supported"
    assert (
        normalise(tf.format(n="PartitionedCall/Gelu/Erfc"), load_rule("sig-v2"))
        == "Tensorflow op [<node>: Erfc] is not supported"
    )
    assert operator_of(tf.format(n="PartitionedCall/Gelu/Erfc")) == "Erfc"
    detected = "Graph execution error: Detected at node '{n}' defined at (most recent call last): Node: '{n}' bad"
    assert sig(detected.format(n="model/dense/MatMul"), rule="sig-v2") == sig(
        detected.format(n="x/MatMul_2"), rule="sig-v2"
    )
    # the study's real messages: every distinct one, sig-v2 groups them exactly as sig-v1 (they quote their names)
    results = shared_dir / "data/paper-artifact/synthetic-models/exporter_test_results"
    messages = set()
    for path in sorted(results.rglob("*.json")):
        data = json.loads(path.read_text())
        stack = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, str) and ("Error" in item or "node" in item) and len(item) > 30:
                messages.add(item)
    assert len(messages) > 50
    v1 = {m: sig(m, rule="sig-v1") for m in messages}
    v2 = {m: sig(m, rule="sig-v2") for m in messages}
    assert len(set(v1.values())) == len(set(v2.values()))
    assert all("PartitionedCall" not in normalise(m, load_rule("sig-v2")) for m in messages)


def test_mismatches_are_signed_by_how_outputs_disagree() -> None:
    run = {"converter": "torch.onnx", "status": "mismatch", "stage": None, "error_class": None, "message": None}
    rule = load_rule()
    value = signature_of(run, rule, [{"shape_match": True, "dtype_match": True, "nonfinite_mismatch": 0}])
    shape = signature_of(run, rule, [{"shape_match": False, "dtype_match": True, "nonfinite_mismatch": 0}])
    assert (value.stage, value.error_class, shape.error_class) == ("compare", "mismatch.value", "mismatch.shape")
    assert signature_of(run, rule).error_class == "mismatch"  # no comparison numbers stored


def test_signatures_are_stored_idempotently_and_follow_verdicts(engine: Engine) -> None:
    seeded = seed_experiments(engine)
    first = compute_signatures(engine, campaign=seeded.name)
    failing = seeded.failed + sum(v > 1e-5 for vs in seeded.needed.values() for v in vs)
    assert first["runs"] == failing and first["changed"] == failing
    assert compute_signatures(engine, campaign=seeded.name)["changed"] == 0  # re-run: nothing changes
    table = fq.signatures(engine, seeded.name)
    assert int(table["runs"].sum()) == failing
    tan = table[table["operator"] == "Tan"]
    assert len(tan) == 2 and set(tan["converter"]) == {"torch.onnx", "tf2onnx"}  # one per converter
    assert all(r.startswith("interop experiment repro ") for r in table["repro"])
    counts = fq.signature_counts(engine, seeded.name).set_index(["converter", "stage"])
    assert counts.loc[("tf2onnx", "compare"), "signatures"] == 1
    # a rescore that makes a mismatch pass takes its signature away
    mismatch = int(
        fq.signature_runs(engine, fq.resolve_signature(engine, table.iloc[0]["signature"])[0]["key"])["run_id"].iloc[0]
    )
    with engine.begin() as conn:
        conn.execute(
            update(ConversionRun.__table__).where(ConversionRun.__table__.c.id == mismatch).values(status="passed")
        )
    again = compute_signatures(engine, campaign=seeded.name)
    assert again["runs"] == failing - 1 and again["changed"] == 1
    # another rule version is stored beside the first
    other = compute_signatures(engine, load_rule("sig-v1-dtypes"), seeded.name)
    assert other["runs"] == failing - 1
    assert fq.rule_versions(engine) == ["sig-v2", "sig-v1-dtypes"]  # the default rule first
    assert int(fq.signatures(engine, seeded.name)["runs"].sum()) == failing - 1


def test_failures_command_lists_signatures_as_table_json_and_csv(engine: Engine, cli, wide_console) -> None:  # type: ignore[no-untyped-def]
    seeded = seed_experiments(engine)
    table = cli("experiment", "failures", "--campaign", seeded.name)  # signs the runs first
    assert table.exit_code == 0, table.output
    assert "distinct failures per converter and stage" in table.output and "Tan" in table.output
    assert "interop experiment repro" in table.output
    listed = json.loads(cli("experiment", "failures", "--format", "json").output)
    assert {row["operator"] for row in listed} >= {"Tan"} and all(row["runs"] >= 1 for row in listed)
    csv = cli("experiment", "failures", "--format", "csv").output.splitlines()
    assert csv[0].startswith("signature,converter,stage") and len(csv) == len(listed) + 1
    bad = cli("experiment", "failures", "--rule-version", "nope")
    assert bad.exit_code == 2 and "unknown signature rule version 'nope'" in bad.output


def test_study_runs_collapse_to_few_signatures(engine: Engine, shared_dir: Path) -> None:
    results = shared_dir / "data/paper-artifact/synthetic-models/exporter_test_results"
    import_exporter_results(engine, results)
    counts = compute_signatures(engine, campaign="study-exporter-results")
    assert counts["runs"] == 3544 - 22 - 881  # every run without a passing verdict
    table = fq.signatures(engine, "study-exporter-results")
    argmax = table[(table["operator"] == "ArgMax") & (table["stage"] == "ort_session")]
    assert sorted(argmax["converter"]) == ["tf2onnx", "torch.onnx"]  # dozens of node names, one per converter
    assert len(table) < 0.1 * counts["runs"]


def test_experiments_page_shows_distinct_failures(engine: Engine, configured_db: str) -> None:
    import streamlit as st

    from tests.support.apptest import open_page, texts

    seeded = seed_experiments(engine)
    st.cache_data.clear()
    at = open_page("experiments", campaign=seeded.name)
    assert not at.exception
    assert "interop experiment signatures --campaign seeded" in texts(at)  # nothing signed yet: how to
    compute_signatures(engine, campaign=seeded.name)
    st.cache_data.clear()
    at = open_page("experiments", campaign=seeded.name)
    assert not at.exception
    listed = next(d.value for d in at.dataframe if "repro" in d.value.columns)
    assert int(listed["runs"].sum()) == int(fq.signatures(engine, seeded.name)["runs"].sum())
    assert f"**{len(listed)} distinct failures**" in texts(at)
    st.cache_data.clear()
