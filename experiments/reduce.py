"""Minimal repro of a mismatching run: the first node where onnxruntime departs from the ONNX reference
evaluator (the spec), a reduced model around it that still mismatches, and a standalone script showing it.

Every intermediate value is exposed as a graph output and computed by both; in topological order the first node
whose outputs differ beyond the run's atol/rtol diverges. Its subgraph is extracted with its inputs fed from the
intermediate values, then nodes are removed one at a time (their outputs become inputs) while it still mismatches.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from db.errors import InteropError
from experiments.compare import compare_output
from experiments.core import LoadedModel


class ReduceError(InteropError):
    """The run cannot be reduced (not a mismatch, no model, nothing diverges…); the message says why."""


@dataclass
class Reduction:
    """What reducing one model found and wrote."""

    status: str  # reduced | no_divergence
    nodes_before: int
    atol: float
    rtol: float
    seconds: float = 0.0
    node_name: str | None = None
    operator: str | None = None
    node_index: int | None = None
    nodes_after: int | None = None
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)
    max_abs_diff: float | None = None
    #: what the first diverging node was found against: source (the framework's intermediate values) or reference
    basis: str = "reference"
    #: converter (ONNX graph computes otherwise than the source, onnxruntime agrees with the spec), runtime
    #: (onnxruntime departs from the spec, which agrees with the source), both, or None (nothing to blame)
    cause: str | None = None
    #: ONNX values matched to a source tensor, and of them compared (computed by a node)
    matched_values: int | None = None

    def row(self) -> dict[str, Any]:
        """The stored columns (db.models.failures.RunReduction)."""
        return {
            "status": self.status,
            "node_name": (self.node_name or None) and self.node_name[:500],
            "operator": self.operator,
            "node_index": self.node_index,
            "nodes_before": self.nodes_before,
            "nodes_after": self.nodes_after,
            "seconds": self.seconds,
            "atol": self.atol,
            "rtol": self.rtol,
            "out_dir": str(self.out_dir)[:500] if self.out_dir else None,
            "basis": self.basis,
            "cause": self.cause,
            "matched_values": self.matched_values,
        }


# -- evaluating a model both ways ---------------------------------------------------------------------------


def _ort(model: Any, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    declared = [i.name for i in session.get_inputs()]
    return dict(zip(names, session.run(None, {n: feeds[n] for n in declared}), strict=True))


def _reference(model: Any, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(model)
    names = [o.name for o in model.graph.output]
    declared = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    return dict(zip(names, evaluator.run(None, {n: feeds[n] for n in declared}), strict=True))


def expose_all(model: Any) -> Any:
    """A copy of `model` whose graph outputs are every value with an inferred type (original outputs first)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    exposed = onnx.ModelProto()
    exposed.CopyFrom(inferred)
    known = {o.name for o in exposed.graph.output}
    typed = {v.name: v for v in inferred.graph.value_info if v.type.HasField("tensor_type")}
    for node in exposed.graph.node:
        for name in node.output:
            if name and name not in known and name in typed:
                exposed.graph.output.append(typed[name])
                known.add(name)
    return exposed


def differs(ref: Any, got: Any, atol: float, rtol: float) -> tuple[bool, float | None]:
    """Whether one value differs beyond the tolerance (shape, dtype, non-finite or numbers), and its max |diff|."""
    if not isinstance(ref, np.ndarray) or not isinstance(got, np.ndarray):
        return False, None
    row = compare_output(ref, got, atol, rtol)
    bad = not row["shape_match"] or not row["dtype_match"] or bool(row["n_outside"]) or bool(row["nonfinite_mismatch"])
    return bad, row["max_abs_diff"]


def mismatches(model: Any, feeds: list[dict[str, np.ndarray]], atol: float, rtol: float) -> bool:
    """Whether onnxruntime and the reference evaluator disagree on any output of `model` for any input."""
    for feed in feeds:
        try:
            got, ref = _ort(model, feed), _reference(model, feed)
        except Exception:  # a candidate that no longer loads or runs does not show the mismatch
            return False
        if any(differs(ref[n], got[n], atol, rtol)[0] for n in ref if n in got):
            return True
    return False


def first_divergence(
    model: Any, feeds: list[dict[str, np.ndarray]], atol: float, rtol: float
) -> tuple[int | None, float | None, dict[str, Any], dict[str, Any], int]:
    """(index of the first diverging node, its max |diff|, ORT's and the reference's values, which input) over
    the inputs in order; (None, …) when every node agrees on every input."""
    exposed = expose_all(model)
    got: dict[str, Any] = {}
    ref: dict[str, Any] = {}
    for k, feed in enumerate(feeds):
        got, ref = _ort(exposed, feed), _reference(exposed, feed)
        for index, node in enumerate(model.graph.node):
            for name in node.output:
                if name in got and name in ref:
                    bad, diff = differs(ref[name], got[name], atol, rtol)
                    if bad:
                        return index, diff, {**feed, **got}, {**feed, **ref}, k
    return None, None, got, ref, 0


# -- cutting the graph ------------------------------------------------------------------------------------


def _value_infos(model: Any) -> dict[str, Any]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    graph = inferred.graph
    return {v.name: v for v in [*graph.input, *graph.value_info, *graph.output]}


def cut(model: Any, inputs: list[str], outputs: list[str]) -> Any:
    """The nodes needed for `outputs` when `inputs` are given (graph inputs, typed from shape inference)."""
    import onnx

    infos = _value_infos(model)
    initializers = {t.name: t for t in model.graph.initializer}
    needed, kept = set(outputs), []
    for node in reversed(model.graph.node):
        if any(o in needed for o in node.output if o):
            kept.append(node)
            needed.update(i for i in node.input if i and i not in inputs)
    kept.reverse()
    graph = onnx.helper.make_graph(
        kept,
        f"{model.graph.name}-reduced",
        [infos[n] for n in inputs],
        [infos[n] for n in outputs],
        [initializers[n] for n in sorted(needed) if n in initializers and n not in inputs],
    )
    reduced = onnx.helper.make_model(graph, opset_imports=list(model.opset_import))
    reduced.ir_version = model.ir_version
    return reduced


def extract_around(model: Any, index: int) -> tuple[Any, list[str]]:
    """The diverging node alone (with the Constant nodes it reads), its computed inputs as graph inputs."""
    from onnx.utils import Extractor

    node = model.graph.node[index]
    initializers = {t.name for t in model.graph.initializer}
    constants = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    inputs = list(dict.fromkeys(i for i in node.input if i and i not in initializers and i not in constants))
    outputs = [o for o in node.output if o]
    try:
        return Extractor(model).extract_model(inputs, outputs), inputs
    except Exception:  # values shape inference could not type: cut by hand (same nodes)
        return cut(model, inputs, outputs), inputs


Still = Callable[[Any, dict[str, Any]], bool]


def delta_debug(
    model: Any,
    inputs: list[str],
    keep: str,
    values: dict[str, Any],
    atol: float,
    rtol: float,
    still: Still | None = None,
) -> tuple[Any, list[str]]:
    """Remove nodes other than the one producing `keep` while the model still mismatches: a removed node's
    outputs become graph inputs fed with their intermediate values (1-minimal: no single removal is left)."""
    still = still or _against_reference(atol, rtol)
    outputs = [o.name for o in model.graph.output]
    changed = True
    while changed:
        changed = False
        for node in list(model.graph.node):
            if keep in node.output:
                continue
            new_inputs = list(dict.fromkeys([*inputs, *(o for o in node.output if o and o in values)]))
            try:
                candidate = cut(model, new_inputs, outputs)
            except Exception:
                continue
            used = {i for n in candidate.graph.node for i in n.input}
            candidate_inputs = [i for i in new_inputs if i in used or i in outputs]
            candidate = cut(model, candidate_inputs, outputs)
            if len(candidate.graph.node) < len(model.graph.node) and still(candidate, values):
                model, inputs, changed = candidate, candidate_inputs, True
                break
    return model, inputs


def _feed(model: Any, values: dict[str, Any]) -> dict[str, np.ndarray]:
    initializers = {t.name for t in model.graph.initializer}
    return {i.name: np.asarray(values[i.name]) for i in model.graph.input if i.name not in initializers}


def _against_reference(atol: float, rtol: float) -> Still:
    """A candidate still shows the mismatch when onnxruntime and the reference evaluator disagree on it."""
    return lambda candidate, values: mismatches(candidate, [_feed(candidate, values)], atol, rtol)


def _against_source(expected: dict[str, Any], atol: float, rtol: float) -> Still:
    """A candidate still shows the mismatch when onnxruntime departs from the source framework's values of its
    outputs (which do not change when upstream nodes are cut away)."""

    def still(candidate: Any, values: dict[str, Any]) -> bool:
        try:
            got = _ort(candidate, _feed(candidate, values))
        except Exception:
            return False
        return any(differs(expected[n], got[n], atol, rtol)[0] for n in got if n in expected)

    return still


# -- the whole reduction ---------------------------------------------------------------------------------


def reduce_model(
    model: Any,
    feeds: list[dict[str, np.ndarray]],
    atol: float,
    rtol: float,
    out_dir: Path,
    loaded: LoadedModel | None = None,
) -> Reduction:
    """Find the first diverging node of `model` on `feeds`, reduce it and write the repro files to `out_dir`.

    With the source model (`loaded`) whose intermediate values can be computed, the node is the first whose
    onnxruntime value departs from the source framework's, and the cause is told by the reference evaluator;
    otherwise (or when no matched value departs) the first node where onnxruntime departs from the spec."""
    start = time.perf_counter()
    graph = _source_graph(loaded)
    if graph is not None and loaded is not None:
        result = _reduce_against_source(model, feeds, atol, rtol, out_dir, loaded, graph)
        if result is not None:
            result.seconds = time.perf_counter() - start
            if result.status == "reduced":
                write_summary(result)
            return result
    result = Reduction("no_divergence", len(model.graph.node), atol, rtol)
    index, diff, got, ref, _k = first_divergence(model, feeds, atol, rtol)
    if index is None:
        result.seconds = time.perf_counter() - start
        return result
    result.cause = "runtime"
    _reduce_at(model, index, diff, [got, ref], _against_reference(atol, rtol), result, out_dir, ref)
    result.seconds = time.perf_counter() - start
    write_summary(result)
    return result


def _reduce_at(
    model: Any,
    index: int,
    diff: float | None,
    value_sets: list[dict[str, Any]],
    still: Still,
    result: Reduction,
    out_dir: Path,
    expected: dict[str, Any] | None,
) -> None:
    """Reduce around node `index` while `still` holds (its inputs fed from each value set in turn), write it."""
    node = model.graph.node[index]
    result.node_index, result.node_name, result.operator, result.max_abs_diff = index, node.name, node.op_type, diff
    keep = next(o for o in node.output if o)
    reduced: Any = None
    values = value_sets[0]
    for values in value_sets:
        extracted, inputs = extract_around(model, index)
        if still(extracted, values):
            reduced, inputs = delta_debug(extracted, inputs, keep, values, result.atol, result.rtol, still)
            break
    if reduced is None:  # the node diverges only with its upstream: everything up to it, delta-debugged
        values = value_sets[0]
        inputs = [i.name for i in model.graph.input if i.name in values]
        prefix = cut(model, inputs, [o for o in node.output if o])
        reduced, _ = delta_debug(prefix, inputs, keep, values, result.atol, result.rtol, still)
    result.status, result.nodes_after = "reduced", len(reduced.graph.node)
    result.out_dir = out_dir
    source = expected if result.basis == "source" else None
    result.files = write_repro(reduced, _feed(reduced, values), result.atol, result.rtol, out_dir, result, source)


def _source_graph(loaded: LoadedModel | None) -> Any:
    """The source graph of `loaded`, or None when there is none or it cannot be built (the spec is used then)."""
    if loaded is None:
        return None
    from experiments.source_values import source_graph

    try:
        return source_graph(loaded)
    except Exception:  # a model torch.export cannot trace: compare against the spec instead
        return None


def _source_feed(loaded: LoadedModel, model: Any, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The run's input named as the source model's inputs (by name, else by position)."""
    names = [s.name for s in loaded.inputs]
    if all(n in feed for n in names):
        return {n: feed[n] for n in names}
    return dict(zip(names, feed.values(), strict=False))


def _reduce_against_source(
    model: Any,
    feeds: list[dict[str, np.ndarray]],
    atol: float,
    rtol: float,
    out_dir: Path,
    loaded: LoadedModel,
    graph: Any,
) -> Reduction | None:
    """The first node whose onnxruntime value departs from the source framework's, its cause and reduction;
    None when no matched value departs and onnxruntime departs from the spec somewhere (the caller reduces that)."""
    from experiments.source_values import match_values, source_in_onnx_layout

    result = Reduction("no_divergence", len(model.graph.node), atol, rtol, basis="source")
    exposed = expose_all(model)
    mapping: dict[str, str] | None = None
    outputs_differ = fused_differ = False
    for feed in feeds:
        got = _ort(exposed, feed)
        try:
            ref = _reference(exposed, feed)
        except Exception:  # the reference evaluator lacks an operator: the cause cannot be told
            ref = {}
        try:
            source = graph.evaluate(_source_feed(loaded, model, feed))
        except Exception:
            return None
        if mapping is None:
            mapping = match_values(
                model,
                graph,
                source,
                ref or got,
                lambda a, b: a is not None and b is not None and not differs(b, a, atol, rtol)[0],
            )
            produced = {o for n in model.graph.node for o in n.output}
            result.matched_values = len([n for n in mapping if n in produced and n in got])
        by_onnx = source_in_onnx_layout(graph, mapping, source, got)
        for index, node in enumerate(model.graph.node):
            for name in node.output:
                if name not in by_onnx or name not in got:
                    continue
                bad, diff = differs(by_onnx[name], got[name], atol, rtol)
                if not bad:
                    continue
                spec_vs_ort = differs(ref[name], got[name], atol, rtol)[0] if name in ref else None
                spec_vs_src = differs(by_onnx[name], ref[name], atol, rtol)[0] if name in ref else None
                if spec_vs_ort is None:
                    result.cause = None
                elif not spec_vs_ort:
                    result.cause = "converter"
                else:
                    result.cause = "both" if spec_vs_src else "runtime"
                got_values, ref_values = {**feed, **got}, {**feed, **ref}
                if result.cause in ("runtime", "both"):
                    result.basis = "source"
                    _reduce_at(
                        model,
                        index,
                        diff,
                        [got_values, ref_values],
                        _against_reference(atol, rtol),
                        result,
                        out_dir,
                        None,
                    )
                    result.basis = "source"
                else:
                    expected = {n: by_onnx[n] for n in by_onnx}
                    values = {**got_values, **by_onnx}
                    _reduce_at(
                        model, index, diff, [values], _against_source(expected, atol, rtol), result, out_dir, expected
                    )
                return result
        declared = [o.name for o in model.graph.output]
        reference_outputs = loaded.run(_source_feed(loaded, model, feed))
        plain = _ort(model, feed)  # the model as the run executed it: no intermediate value exposed
        for name, want in zip(declared, reference_outputs, strict=False):
            if name in got and differs(np.asarray(want), got[name], atol, rtol)[0]:
                outputs_differ = True
            if name in plain and differs(np.asarray(want), plain[name], atol, rtol)[0]:
                fused_differ = True
    # no matched value departs from the source
    if first_divergence(model, feeds, atol, rtol)[0] is not None:
        return None  # onnxruntime departs from the spec where no source value was matched: reduce against the spec
    if outputs_differ:
        result.cause = "converter"  # in values no source tensor was matched to, onnxruntime agreeing with the spec
    elif fused_differ:
        # the outputs depart from the source only while no intermediate value is an output: onnxruntime's graph
        # optimisations (fused kernels) compute otherwise than the nodes one by one
        result.cause = "runtime"
    return result


REPRO_SCRIPT = '''"""Standalone repro: onnxruntime and the ONNX reference evaluator disagree on
{operator} node {node!r}.

Needs only onnx, onnxruntime and numpy. Exit code 1 while the mismatch is there, 0 once it is fixed.
"""

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx.reference import ReferenceEvaluator

HERE = Path(__file__).resolve().parent
ATOL, RTOL = {atol!r}, {rtol!r}
model = onnx.load(str(HERE / "reduced.onnx"))
feeds = dict(np.load(HERE / "inputs.npz"))
session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
actual = session.run(None, feeds)
expected = ReferenceEvaluator(model).run(None, feeds)
bad = 0
for out, want, got in zip(model.graph.output, expected, actual):
    want, got = np.asarray(want), np.asarray(got)
    same = want.shape == got.shape and np.allclose(got, want, atol=ATOL, rtol=RTOL, equal_nan=True)
    print(f"{{out.name}}: onnxruntime={{got.ravel()[:8]}} reference={{want.ravel()[:8]}} -> "
          f"{{'same' if same else 'MISMATCH'}}")
    bad += not same
print(f"onnx {{onnx.__version__}}, onnxruntime {{ort.__version__}}: "
      f"{{'mismatch' if bad else 'no mismatch'}} at atol={{ATOL}} rtol={{RTOL}}")
sys.exit(1 if bad else 0)
'''


SOURCE_REPRO_SCRIPT = '''"""Standalone repro: onnxruntime departs from the source framework's values (expected.npz) on
{operator} node {node!r}, while it agrees with the ONNX spec there: the converted graph computes otherwise.

Needs only onnx, onnxruntime and numpy. Exit code 1 while the mismatch is there, 0 once it is fixed.
"""

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
ATOL, RTOL = {atol!r}, {rtol!r}
model = onnx.load(str(HERE / "reduced.onnx"))
feeds = dict(np.load(HERE / "inputs.npz"))
expected = dict(np.load(HERE / "expected.npz"))
session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
actual = session.run(None, feeds)
bad = 0
for out, got in zip(model.graph.output, actual):
    if out.name not in expected:
        continue
    want, got = np.asarray(expected[out.name]), np.asarray(got)
    same = want.shape == got.shape and np.allclose(got, want, atol=ATOL, rtol=RTOL, equal_nan=True)
    print(f"{{out.name}}: onnxruntime={{got.ravel()[:8]}} source framework={{want.ravel()[:8]}} -> "
          f"{{'same' if same else 'MISMATCH'}}")
    bad += not same
print(f"onnx {{onnx.__version__}}, onnxruntime {{ort.__version__}}: "
      f"{{'mismatch' if bad else 'no mismatch'}} at atol={{ATOL}} rtol={{RTOL}}")
sys.exit(1 if bad else 0)
'''


def write_repro(
    model: Any,
    feed: dict[str, np.ndarray],
    atol: float,
    rtol: float,
    out_dir: Path,
    result: Reduction,
    source: dict[str, Any] | None = None,
) -> list[Path]:
    """reduced.onnx, inputs.npz, expected.npz (the source framework's values when `source` is given, else the
    reference evaluator's), actual.npz (onnxruntime), repro.py."""
    import onnx

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {name: out_dir / name for name in ("reduced.onnx", "inputs.npz", "expected.npz", "actual.npz", "repro.py")}
    onnx.save(model, str(files["reduced.onnx"]))
    arrays: dict[str, dict[str, Any]] = {
        "inputs.npz": dict(feed),
        "expected.npz": (
            {o.name: np.asarray(source[o.name]) for o in model.graph.output if o.name in source}
            if source is not None
            else {k: np.asarray(v) for k, v in _reference(model, feed).items()}
        ),
        "actual.npz": {k: np.asarray(v) for k, v in _ort(model, feed).items()},
    }
    for name, values in arrays.items():
        np.savez(files[name], **values)
    template = SOURCE_REPRO_SCRIPT if source is not None else REPRO_SCRIPT
    script = template.format(operator=result.operator, node=result.node_name, atol=atol, rtol=rtol)
    files["repro.py"].write_text(script, encoding="utf-8")
    return list(files.values())


def write_summary(result: Reduction) -> None:
    if result.out_dir is None:
        return
    summary = {k: v for k, v in result.row().items() if k != "out_dir"} | {"max_abs_diff": result.max_abs_diff}
    (result.out_dir / "reduction.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")


# -- a stored run -----------------------------------------------------------------------------------------


def run_inputs(
    model: Any, input_specs: list[Any] | None, input_seed: int, n_inputs: int
) -> list[dict[str, np.ndarray]]:
    """The run's seeded inputs, named as the ONNX model's inputs (matched by name, else by position)."""
    from experiments.core import TensorSpec, seeded_inputs

    specs = [TensorSpec(str(s[0]), tuple(int(d) for d in s[1]), str(s[2])) for s in input_specs or []]
    if not specs:
        raise ReduceError("the run's model has no stored input specs to rebuild its inputs from")
    initializers = {t.name for t in model.graph.initializer}
    declared = [i.name for i in model.graph.input if i.name not in initializers]
    feeds = []
    for k in range(max(1, n_inputs)):
        values = seeded_inputs(specs, input_seed, k)
        if all(n in values for n in declared):
            feeds.append({n: values[n] for n in declared})
        else:
            feeds.append(dict(zip(declared, values.values(), strict=False)))
    return feeds


def _onnx_of(engine: Engine, run_id: int, run: dict[str, Any], out_dir: Path) -> Path:
    """The run's kept ONNX file, else the one `experiment repro` rebuilds."""
    kept = run.get("onnx_path")
    if kept and Path(kept).is_file():
        return Path(kept)
    from experiments.repro import reproduce

    done = reproduce(engine, run_id, out_dir / "rebuild")
    path = done.now.get("onnx_path")
    if not path or not Path(path).is_file():
        raise ReduceError(f"run {run_id}'s ONNX model was not kept and rebuilding it produced none")
    return Path(path)


def _like_a_worker(framework: str, threads: int = 1) -> None:
    """Compute the source's values with the thread count campaign workers use: a reduction's summation order is
    then the run's, so ulp-level mismatches at strict tolerances reproduce."""
    from experiments.worker import preload

    with contextlib.suppress(RuntimeError):  # TensorFlow's threading is fixed once it has run: keep this process's
        preload([framework], threads)


def source_model(model: dict[str, Any], plugins: list[str], folder: Path) -> LoadedModel | None:
    """The run's model in its source framework (its stored files, else rebuilt into `folder`), or None when
    it cannot be had here: then the reduction compares against the ONNX reference evaluator alone."""
    import importlib

    from experiments.sources import SOURCES

    try:
        for module in plugins:
            importlib.import_module(module)
        source = SOURCES.get(str(model.get("source")))
        _like_a_worker(source.framework)
        params = dict(model.get("params") or {})
        location = model.get("location")
        if location and Path(location).is_dir():
            try:
                return source.load(params, location)
            except Exception:  # files gone or unreadable: rebuild from the parameters
                pass
        return source.build(params, folder)
    except Exception:
        return None


def reduce_run(engine: Engine, run_id: int, out_dir: Path) -> Reduction:
    """Reduce a stored `mismatch` run at its own tolerance and store the result with the run."""
    import onnx

    from db.queries.experiments import run_detail
    from experiments.repro import recipe

    detail = run_detail(engine, run_id)
    if detail is None:
        raise ReduceError(f"no conversion run with id {run_id}")
    run = detail["run"]
    if run.get("status") != "mismatch":
        raise ReduceError(f"run {run_id} is {run.get('status')}, not a mismatch: there is nothing to reduce")
    rec = recipe(detail)  # the run's tolerance and inputs, exactly as repro re-runs it
    path = _onnx_of(engine, run_id, run, out_dir)
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise ReduceError(f"{path}: not a readable ONNX model ({exc})") from exc
    feeds = run_inputs(model, detail["model"].get("input_specs"), int(run["input_seed"]), rec.spec.inputs_per_model)
    loaded = source_model(detail["model"], rec.spec.plugins, out_dir / "source")
    result = reduce_model(model, feeds, rec.spec.atol, rec.spec.rtol, out_dir, loaded)
    store_reduction(engine, run_id, result)
    return result


def store_reduction(engine: Engine, run_id: int, result: Reduction) -> None:
    """Insert or replace the run's reduction (re-running reduce is idempotent)."""
    from sqlmodel import Session

    from db.models.failures import RunReduction

    with Session(engine) as session:
        row = session.get(RunReduction, run_id)
        if row is None:
            row = RunReduction(run_id=run_id, **result.row())
        else:
            for key, value in result.row().items():
                setattr(row, key, value)
            from db.models.base import utcnow

            row.reduced_at = utcnow()
        session.add(row)
        session.commit()
