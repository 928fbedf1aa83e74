"""The source framework's intermediate values of a model, and which ONNX value each one is.

A source graph is the model as its framework computes it, step by step: an NNSmith model's own instructions (run
op by op in torch or TensorFlow), a functional Keras model's operations (every one's output from one Keras model),
else a torch module's `torch.export` graph (each ATen node's value recorded by an FX interpreter). ONNX values are
matched to source values by name where the exporter keeps them (graph inputs and outputs, the dynamo exporter's FX
names), then structurally: a source step's outputs are the ONNX values computed from exactly the ONNX values its
arguments were matched to, with its shape (a channels-last image may be held channels-first) and dtype. Among those,
a value that agrees wins, then the operator of the same name, then the one nearest the matched values. A step with
no agreeing value is left out when a later step's value or an argument's value stands for it (a BatchNorm folded
into a Conv); otherwise its nearest value is its counterpart, and the place where the two depart. Constants,
initializers and values that match nothing are left out of the comparison.
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

    kind: str  # nnsmith-torch | nnsmith-tensorflow | torch-fx | keras
    steps: list[SourceStep]
    inputs: list[str]  # source variables of the model's inputs, in the order of LoadedModel.inputs
    outputs: list[str]  # source variables of the model's outputs, in the order of LoadedModel.output_names
    evaluate: Callable[[dict[str, np.ndarray]], Values]
    constants: set[str] = field(default_factory=set)
    channels_last: bool = False  # its images are NHWC: an ONNX value may hold one as NCHW (tf2onnx's layout)


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


def _keras_functional(loaded: LoadedModel) -> SourceGraph | None:
    """A functional Keras model operation by operation (each one's output a variable); None if one is shared."""
    import keras

    model = loaded.native
    operations = list(getattr(model, "operations", model.layers))  # layers and ops such as `x + 3` (Keras 3)
    layers = [op for op in operations if len(getattr(op, "_inbound_nodes", [])) == 1]
    if len(layers) != len(operations) or not model.inputs:
        return None

    def var(tensor: Any) -> str:
        history = tensor._keras_history
        outputs = history.operation._inbound_nodes[history.node_index].output_tensors
        return history.operation.name if len(outputs) == 1 else f"{history.operation.name}:{history.tensor_index}"

    inputs = [var(t) for t in model.inputs]
    steps: list[SourceStep] = []
    produced: dict[str, Any] = {}
    for layer in layers:
        node = layer._inbound_nodes[0]
        if not node.input_tensors:  # an InputLayer
            continue
        outs = [var(t) for t in node.output_tensors]
        steps.append(SourceStep(type(layer).__name__, [var(t) for t in node.input_tensors], outs))
        produced.update(zip(outs, node.output_tensors, strict=True))
    every = keras.Model(model.inputs, produced)
    names = [s.name for s in loaded.inputs]

    def evaluate(feed: dict[str, np.ndarray]) -> Values:
        given = [np.asarray(feed[n]) for n in names]
        values = every(given, training=False)
        found = {k: v for k, v in ((k, _numpy(t)) for k, t in values.items()) if v is not None}
        return {**dict(zip(inputs, given, strict=True)), **found}

    channels_last = keras.config.image_data_format() == "channels_last"
    outputs = [var(t) for t in model.outputs]
    return SourceGraph("keras", steps, inputs, outputs, evaluate, set(), channels_last)


def source_graph(loaded: LoadedModel) -> SourceGraph | None:
    """The source graph of a loaded model: NNSmith's instructions, a functional Keras model's layers, else
    torch.export's; None for other kinds."""
    native = loaded.native
    if hasattr(native, "instructions") and hasattr(native, "ir"):
        return _nnsmith_torch(loaded) if loaded.framework == "torch" else _nnsmith_tensorflow(loaded)
    if loaded.framework == "torch":
        import torch

        if isinstance(native, torch.nn.Module):
            return _torch_fx(loaded)
    if loaded.framework == "tensorflow" and hasattr(native, "layers") and hasattr(native, "inputs"):
        return _keras_functional(loaded)
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


def aligned(graph: SourceGraph, source_value: np.ndarray | None, onnx_value: np.ndarray | None) -> np.ndarray | None:
    """The source value as the ONNX value lays it out (same shape and dtype), or None when it cannot be that value:
    a channels-last image may be held channels-first (NHWC as NCHW, tf2onnx's convolution layout)."""
    if source_value is None or onnx_value is None or source_value.dtype != onnx_value.dtype:
        return None
    layouts = [source_value]
    if graph.channels_last and source_value.ndim >= 3:
        layouts.append(np.moveaxis(source_value, -1, 1))
    fits = [v for v in layouts if v.shape == onnx_value.shape]
    return min(fits, key=lambda v: _close(v, onnx_value)) if fits else None  # both fit a square one: the closer


def source_in_onnx_layout(graph: SourceGraph, mapping: dict[str, str], source: Values, onnx_values: Values) -> Values:
    """ONNX value name -> its matched source value, laid out as the ONNX value (to be compared element by element)."""
    found: Values = {}
    for name, var in mapping.items():
        value = aligned(graph, source.get(var), onnx_values.get(name))
        if value is not None:
            found[name] = value
    return found


def _agrees(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Equal relative to the value's magnitude (1e-3, looser for float16): deep in a network with random weights
    values shrink to 1e-4, where any absolute tolerance makes every candidate agree with every variable."""
    if a is None or b is None or a.shape != b.shape:
        return False
    scale = float(np.nanmax(np.abs(b.astype(np.float64)))) if b.size and not np.isnan(b).all() else 0.0
    rtol = max(1e-3, 8 * float(np.finfo(b.dtype).eps)) if np.issubdtype(b.dtype, np.floating) else 0.0
    return _close(a, b) <= rtol * scale


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


Agree = Callable[[np.ndarray | None, np.ndarray | None], bool]


def match_values(
    model: Any, graph: SourceGraph, source: Values, onnx_values: Values, agree: Agree | None = None
) -> dict[str, str]:
    """ONNX value name -> source variable, for one model (names first, then the graph's structure); `agree`
    (ONNX value, source value in its layout) is the caller's tolerance, asked besides a relative one."""

    def agrees(a: np.ndarray | None, b: np.ndarray | None) -> bool:
        return _agrees(a, b) and (agree is None or agree(a, b))

    onnx_graph = model.graph
    initializers = {t.name for t in onnx_graph.initializer}
    constant_outputs = {o for n in onnx_graph.node if n.op_type == "Constant" for o in n.output}
    free = initializers | constant_outputs
    producer: dict[str, Any] = {o: n for n in onnx_graph.node for o in n.output if o}
    order = {o: i for i, n in enumerate(onnx_graph.node) for o in n.output if o}

    def as_onnx(name: str, var: str) -> np.ndarray | None:
        return aligned(graph, source.get(var), onnx_values.get(name))

    def same_type(name: str, var: str) -> bool:
        return as_onnx(name, var) is not None

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

    consumers: dict[str, list[SourceStep]] = {}
    for step in graph.steps:
        for a in step.args:
            consumers.setdefault(a, []).append(step)

    readers: dict[str, list[str]] = {}
    for node in onnx_graph.node:
        for i in node.input:
            readers.setdefault(i, []).extend(o for o in node.output if o)

    def fused_away(name: str, var: str, reach: int = 2) -> bool:
        """Whether the ONNX value, or one computed from it within `reach` nodes, holds one of the next `reach`
        results computed from `var`: the converter folded `var`'s step into others (a BatchNorm's scale into the
        Conv, its shift into an Add after it), which is no divergence."""
        later = [o for step in consumers.get(var, []) for o in step.outs]
        after = [name]
        for _ in range(reach):
            after += [o for n in after for o in readers.get(n, [])]
        after = list(dict.fromkeys(after))
        for _ in range(reach):
            if any(agrees(onnx_values.get(n), as_onnx(n, o)) for n in after for o in later):
                return True
            later = [o for v in later for step in consumers.get(v, []) for o in step.outs]
        return False

    def absorbed(var: str, frontier: frozenset[str]) -> bool:
        """Whether an ONNX value already matched to one of the step's arguments holds `var` too (a BatchNorm that
        is nearly the identity folded into the Conv before it): nothing later stands for it."""
        onnx_of = {v: n for n, v in mapping.items()}
        return any(agrees(onnx_values.get(onnx_of[w]), as_onnx(onnx_of[w], var)) for w in frontier if w in onnx_of)

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
            laid = {n: as_onnx(n, var) for n in producer if n not in taken and n not in free}  # var as each holds it
            candidates = [n for n, value in laid.items() if value is not None and frontier(n) == wanted]
            if not candidates:
                src_frontier[var] = wanted
                continue
            depth: dict[str, int] = {}

            def rank(
                n: str, laid: dict[str, np.ndarray | None] = laid, op: str = step.op, depth: dict[str, int] = depth
            ) -> tuple[bool, bool, int, float, int]:
                # A value that agrees beats one that doesn't (Linear's Add over its MatMul, a Conv2D with a sigmoid
                # activation's Sigmoid over its Conv), then the operator of the same name, then the one nearest the
                # matched values: a chain of ops whose values coincide (LeakyRelu of LeakyRelu on positives) is
                # matched in order, and a diverging node where it stands rather than a later value that is closer.
                got, want = onnx_values.get(n), laid[n]
                near = _onnx_depth(n, producer, mapping, free, depth)
                named = op_matches(op, producer[n].op_type)
                return (not agrees(got, want), not named, near, _close(got, want), -order[n])

            best = min(candidates, key=rank)
            if not agrees(onnx_values.get(best), laid[best]) and (fused_away(best, var) or absorbed(var, wanted)):
                src_frontier[var] = wanted  # its value is folded into a later one, or an earlier one already holds it
                continue
            mapping[best] = var
    return mapping
