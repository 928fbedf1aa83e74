"""The source framework's intermediate values of a model, and which ONNX value each one is.

A source graph is the model as its framework computes it, step by step: an NNSmith model's own instructions (run
op by op in torch or TensorFlow), else a torch module's `torch.export` graph (each ATen node's value recorded by an
FX interpreter). ONNX values are matched to source values by name where the exporter keeps them (graph inputs and
outputs, the dynamo exporter's FX names), then structurally: a source step's outputs are the ONNX values computed
from exactly the ONNX values its arguments were matched to, with its shape and dtype. Ties go to the operator of the
same name, then to a value that agrees, then to the one nearest the matched values (then the closest value).
Constants, initializers and values that match nothing are left out of the comparison.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from experiments.core import LoadedModel

Values = dict[str, np.ndarray]


@dataclass
class SourceStep:
    """One operation of the source graph: its operator name, argument and result variable names."""

    op: str
    args: list[str]
    outs: list[str]


@dataclass
class SourceGraph:
    """A model as its framework computes it; `evaluate` gives every variable's value for one input."""

    kind: str  # nnsmith-torch | nnsmith-tensorflow | torch-fx
    steps: list[SourceStep]
    inputs: list[str]  # source variables of the model's inputs, in the order of LoadedModel.inputs
    outputs: list[str]  # source variables of the model's outputs, in the order of LoadedModel.output_names
    evaluate: Callable[[dict[str, np.ndarray]], Values]
    constants: set[str] = field(default_factory=set)


def _numpy(value: Any) -> np.ndarray | None:
    if hasattr(value, "detach"):
        return np.asarray(value.detach().cpu().numpy())
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy())
    if isinstance(value, np.ndarray):
        return value
    return None


def _nnsmith_torch(loaded: LoadedModel) -> SourceGraph:
    import torch

    net = loaded.native
    steps = [SourceStep(type(op).__name__, list(args), list(outs)) for _fn, args, outs, op in net.instructions]
    names = [s.name for s in loaded.inputs]

    def evaluate(feed: dict[str, np.ndarray]) -> Values:
        tensors: dict[str, Any] = dict(net._parameters.items())
        for key, name in zip(net.input_map.keys(), names, strict=True):
            tensors[key] = torch.from_numpy(np.asarray(feed[name]))
        with torch.no_grad():
            for fn, args, outs, _op in net.instructions:
                result = fn(*[tensors[a] for a in args])
                results = result if isinstance(result, list | tuple) else [result]
                tensors.update(zip(outs, results, strict=False))
        return {k: v for k, v in ((k, _numpy(t)) for k, t in tensors.items()) if v is not None}

    params = set(net._parameters)
    constants = params | {o for s in steps if not s.args for o in s.outs}
    return SourceGraph(
        "nnsmith-torch", steps, list(net.input_map.keys()), list(net.output_map.keys()), evaluate, constants
    )


def _nnsmith_tensorflow(loaded: LoadedModel) -> SourceGraph:
    import tensorflow as tf
    from nnsmith.abstract.op import Input

    net = loaded.native
    ops = [inst.iexpr.op for inst in net.ir.insts if not isinstance(inst.iexpr.op, Input)]
    steps = [
        SourceStep(type(op).__name__, list(ins.inp_keys), list(ins.out_keys))
        for op, ins in zip(ops, net.instructions, strict=True)
    ]
    keys = list(net.ir.input_var())

    def evaluate(feed: dict[str, np.ndarray]) -> Values:
        tensors: dict[str, Any] = {k: tf.convert_to_tensor(np.asarray(feed[k])) for k in keys}
        for ins in net.instructions:
            result = ins.fwd_fn(*[tensors[k] for k in ins.inp_keys])
            results = result if isinstance(result, list | tuple) else [result]
            tensors.update(zip(ins.out_keys, results, strict=False))
        return {k: v for k, v in ((k, _numpy(t)) for k, t in tensors.items()) if v is not None}

    constants = {o for s in steps if not s.args for o in s.outs}
    return SourceGraph("nnsmith-tensorflow", steps, keys, sorted(net.ir.leaf_var()), evaluate, constants)


def _fx_name(target: Any) -> str:
    """`aten.mul.Tensor` -> `mul`; other callables by their name."""
    text = str(getattr(target, "__name__", target))
    parts = text.split(".")
    return parts[1] if len(parts) >= 2 and parts[0] == "aten" else parts[0]


def _torch_fx(loaded: LoadedModel) -> SourceGraph:
    import torch
    from torch.fx import Interpreter

    from experiments.core import seeded_inputs

    sample = seeded_inputs(loaded.inputs, 0, 0)
    args = tuple(torch.from_numpy(sample[s.name]) for s in loaded.inputs)
    module = torch.export.export(loaded.native, args).module()
    nodes = list(module.graph.nodes)
    placeholders = [n.name for n in nodes if n.op == "placeholder"]
    steps: list[SourceStep] = []
    for node in nodes:
        if node.op == "call_function":
            inputs = [a.name for a in node.all_input_nodes]
            steps.append(SourceStep(_fx_name(node.target), inputs, [node.name]))
        elif node.op == "get_attr":
            steps.append(SourceStep("constant", [], [node.name]))
    output = next(n for n in nodes if n.op == "output")
    flat = output.args[0] if isinstance(output.args[0], list | tuple) else [output.args[0]]
    outputs = [getattr(o, "name", "") for o in flat]

    class Recorder(Interpreter):
        def __init__(self) -> None:
            super().__init__(module)
            self.seen: Values = {}

        def run_node(self, n: Any) -> Any:
            result = super().run_node(n)
            value = _numpy(result) if isinstance(result, torch.Tensor) else None
            if value is not None:
                self.seen[n.name] = value
            return result

    def evaluate(feed: dict[str, np.ndarray]) -> Values:
        recorder = Recorder()
        with torch.no_grad():
            recorder.run(*[torch.from_numpy(np.asarray(feed[s.name])) for s in loaded.inputs])
        return recorder.seen

    constants = {o for s in steps if not s.args for o in s.outs}
    return SourceGraph("torch-fx", steps, placeholders, outputs, evaluate, constants)


def source_graph(loaded: LoadedModel) -> SourceGraph | None:
    """The source graph of a loaded model: NNSmith's instructions, else torch.export's; None for other kinds."""
    native = loaded.native
    if hasattr(native, "instructions") and hasattr(native, "ir"):
        return _nnsmith_torch(loaded) if loaded.framework == "torch" else _nnsmith_tensorflow(loaded)
    if loaded.framework == "torch":
        import torch

        if isinstance(native, torch.nn.Module):
            return _torch_fx(loaded)
    return None


# -- matching ONNX values to source variables -------------------------------------------------------------------

#: source operator names (lowercase, digits dropped) that ONNX spells otherwise
_ALIASES = {
    "amax": {"reducemax"},
    "amin": {"reducemin"},
    "conv": {"conv", "convtranspose"},
    "convolution": {"conv", "convtranspose"},
    "linear": {"gemm", "matmul", "add"},
    "addmm": {"gemm"},
    "cat": {"concat"},
    "maximum": {"max"},
    "minimum": {"min"},
    "truediv": {"div"},
    "realdiv": {"div"},
    "mm": {"matmul"},
    "bmm": {"matmul"},
    "pow": {"pow"},
    "to": {"cast"},
    "cast": {"cast"},
    "expanddims": {"unsqueeze"},
}


def _base(name: str) -> str:
    return re.sub(r"[\d_]+$", "", re.sub(r"[^a-z0-9_]", "", name.lower())).replace("_", "")


def op_matches(source_op: str, onnx_op: str) -> bool:
    """Whether a source operator and an ONNX op type are plausibly the same operation."""
    src, dst = _base(source_op), onnx_op.lower()
    return (
        src == dst or dst in _ALIASES.get(src, set()) or (len(src) > 3 and (dst.startswith(src) or src.startswith(dst)))
    )


def _strip(name: str) -> str:
    return name[:-2] if name.endswith(":0") else name


def _close(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None or a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    with np.errstate(all="ignore"):
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    diff = np.where(np.isnan(diff), 0.0 if np.array_equal(np.isnan(a), np.isnan(b)) else np.inf, diff)
    return float(np.max(diff))


def _agrees(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Equal within a float32 tolerance: a candidate that agrees needs no numeric ranking against the others."""
    if a is None or b is None or a.shape != b.shape:
        return False
    scale = float(np.nanmax(np.abs(b.astype(np.float64)))) if b.size and not np.isnan(b).all() else 0.0
    return _close(a, b) <= 1e-5 + 1e-3 * scale


def _onnx_depth(
    name: str, producer: dict[str, Any], mapping: dict[str, str], free: set[str], memo: dict[str, int]
) -> int:
    """How many unmatched ONNX nodes lie on the longest path from the matched values to `name`, itself included."""
    if name in memo:
        return memo[name]
    memo[name] = 0
    node = producer.get(name)
    if node is None:
        return 0
    inner = [
        _onnx_depth(i, producer, mapping, free, memo) for i in node.input if i and i not in free and i not in mapping
    ]
    memo[name] = 1 + max(inner, default=0)
    return memo[name]


def _onnx_frontier(
    name: str, producer: dict[str, Any], mapping: dict[str, str], free: set[str], memo: dict[str, frozenset[str]]
) -> frozenset[str]:
    """The source variables of the nearest matched ONNX values `name` is computed from (constants left out)."""
    if name in memo:
        return memo[name]
    memo[name] = frozenset()
    node = producer.get(name)
    found: set[str] = set()
    if node is not None:
        for i in node.input:
            if not i or i in free:
                continue
            found |= {mapping[i]} if i in mapping else _onnx_frontier(i, producer, mapping, free, memo)
    memo[name] = frozenset(found)
    return memo[name]


def match_values(model: Any, graph: SourceGraph, source: Values, onnx_values: Values) -> dict[str, str]:
    """ONNX value name -> source variable, for one model (names first, then the graph's structure)."""
    onnx_graph = model.graph
    initializers = {t.name for t in onnx_graph.initializer}
    constant_outputs = {o for n in onnx_graph.node if n.op_type == "Constant" for o in n.output}
    free = initializers | constant_outputs
    producer: dict[str, Any] = {o: n for n in onnx_graph.node for o in n.output if o}
    order = {o: i for i, n in enumerate(onnx_graph.node) for o in n.output if o}

    def same_type(name: str, var: str) -> bool:
        a, b = onnx_values.get(name), source.get(var)
        return a is not None and b is not None and a.shape == b.shape and a.dtype == b.dtype

    mapping: dict[str, str] = {}
    declared = [i.name for i in onnx_graph.input if i.name not in initializers]
    for k, name in enumerate(declared):
        var = _strip(name) if _strip(name) in source else (graph.inputs[k] if k < len(graph.inputs) else None)
        if var is not None and var in source:
            mapping[name] = var
    for k, out in enumerate(onnx_graph.output):
        var = _strip(out.name) if _strip(out.name) in source else (graph.outputs[k] if k < len(graph.outputs) else None)
        if var is not None and same_type(out.name, var):
            mapping[out.name] = var
    for name in producer:
        var = _strip(name)
        if name not in mapping and var in source and var not in graph.constants and same_type(name, var):
            mapping[name] = var

    src_frontier: dict[str, frozenset[str]] = {}
    made_by = {o: s for s in graph.steps for o in s.outs}

    def source_frontier(args: list[str], matched: set[str]) -> frozenset[str]:
        found: set[str] = set()
        for a in args:
            if a in graph.constants or a not in source:
                continue
            if a in matched:
                found.add(a)
            elif a in src_frontier:
                found |= src_frontier[a]
            elif a in made_by:
                found |= source_frontier(made_by[a].args, matched)
        return frozenset(found)

    for step in graph.steps:
        matched_vars = set(mapping.values())
        wanted = source_frontier(step.args, matched_vars)
        memo: dict[str, frozenset[str]] = {}

        def frontier(name: str, memo: dict[str, frozenset[str]] = memo) -> frozenset[str]:
            return _onnx_frontier(name, producer, mapping, free, memo)

        for var in step.outs:
            if var in matched_vars or var in graph.constants or var not in source:
                src_frontier[var] = wanted
                continue
            taken = set(mapping)
            candidates = [n for n in producer if n not in taken and n not in free and same_type(n, var)]
            candidates = [n for n in candidates if frontier(n) == wanted]
            if not candidates:
                src_frontier[var] = wanted
                continue
            named = [n for n in candidates if op_matches(step.op, producer[n].op_type)] or candidates
            depth: dict[str, int] = {}

            def rank(n: str, var: str = var, depth: dict[str, int] = depth) -> tuple[bool, int, float, int]:
                # A value that agrees beats one that doesn't (Linear's Add over its MatMul); among those that agree,
                # or when none does (a diverging node), the one nearest the matched values: a chain of ops whose
                # values coincide (LeakyRelu of LeakyRelu on positives) is matched in order, not last to first.
                got, want = onnx_values.get(n), source.get(var)
                near = _onnx_depth(n, producer, mapping, free, depth)
                return (not _agrees(got, want), near, _close(got, want), -order[n])

            mapping[min(named, key=rank)] = var
    return mapping
