"""NNSmith random models (torch and TensorFlow) through its Python API, reproducible from (seed, node count).

Weights are the seeded initial ones: nnsmith's `refine_weights` is a time-bounded search, so it is skipped to
keep a model a pure function of its parameters.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np

from experiments.core import LoadedModel, TensorSpec, hash_arrays
from experiments.sources import ModelSource

_OPSETS: dict[str, list[Any]] = {}
TIMEOUT_MS = 10_000  # nnsmith's solver budget per model when the parameters name none


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)


def _fresh_solver_context() -> None:
    """Generate each model in a new z3 context: the shapes z3 picks depend on what the context solved before, so
    the same seed gave a different model in a worker that had generated others than in a fresh process."""
    import z3

    z3.z3._main_ctx = None


def _structure(ir: Any) -> bytes:
    """Canonical text of a GraphIR (instructions with attributes and arguments); pickles are not stable."""
    return "\n".join(
        f"{inst.retvals()}={inst.iexpr}:{ir.vars[inst.retvals()[0]] if inst.retvals() else ''}" for inst in ir.insts
    ).encode()


def _graph(ir: Any) -> tuple[list[str], list[Any]]:
    """Operator names in order and [[op, [predecessor indices]]] of the compute instructions of a GraphIR."""
    from nnsmith.abstract.op import Constant, Input, Placeholder

    producer: dict[str, int] = {}
    graph: list[Any] = []
    for inst in ir.insts:
        op = inst.iexpr.op
        if isinstance(op, Input | Placeholder | Constant):
            continue
        preds = sorted({producer[a] for a in inst.iexpr.args if a in producer})
        for rv in inst.retvals():
            producer[rv] = len(graph)
        graph.append([type(op).__name__, preds])
    return [g[0] for g in graph], graph


class _NNSmithSource(ModelSource):
    """Shared generation logic; subclasses materialise the GraphIR in their framework."""

    model_type = ""

    def expand(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        method = options.get("method", "symbolic-cinit")
        return [
            {
                "generator": "nnsmith",
                "generator_version": self.package_version("nnsmith"),
                "method": method,
                "max_nodes": int(n),
                "seed": int(s),
            }
            for n in options.get("node_counts", [10])
            for s in options.get("seeds", [0])
        ]

    def display_name(self, params: dict[str, Any]) -> str:
        return f"{self.name}-n{params['max_nodes']}-s{params['seed']}"

    def node_count(self, params: dict[str, Any]) -> int | None:
        return int(params["max_nodes"])

    def build_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "model_type": self.model_type,
            "method": params.get("method", "symbolic-cinit"),
            "max_nodes": int(params["max_nodes"]),
            "seed": int(params["seed"]),
            "timeout_ms": int(params.get("timeout_ms", TIMEOUT_MS)),
            "operator_set": "nnsmith.narrow_spec.auto_opset (probed once per framework, cached)",
            "weights": "seeded initial weights (refine_weights skipped)",
        }

    def _model_cls(self) -> Any:
        from experiments import nnsmith_compat

        nnsmith_compat.apply((self.framework,))
        from nnsmith.materialize import Model

        cls = Model.init(self.model_type)
        cls.add_seed_setter()
        return cls

    def _opset(self, cls: Any) -> list[Any]:
        """Operators that materialise in this framework, from nnsmith's cached probe (probes once)."""
        if self.model_type not in _OPSETS:
            from nnsmith.narrow_spec import auto_opset

            _OPSETS[self.model_type] = auto_opset(cls, None)
        return _OPSETS[self.model_type]

    def _generate_ir(self, params: dict[str, Any]) -> Any:
        from nnsmith.graph_gen import model_gen

        cls = self._model_cls()
        _fresh_solver_context()
        gen = model_gen(
            opset=self._opset(cls),
            method=params.get("method", "symbolic-cinit"),
            seed=int(params["seed"]),
            max_nodes=int(params["max_nodes"]),
            timeout_ms=int(params.get("timeout_ms", TIMEOUT_MS)),
        )
        return gen.make_concrete()


class NNSmithTorch(_NNSmithSource):
    name, framework, kind, model_type = "nnsmith-torch", "torch", "torch_module", "torch"

    def build(self, params: dict[str, Any], out_dir: Path) -> LoadedModel:
        import torch

        ir = self._generate_ir(params)
        _seed_everything(int(params["seed"]))
        torch.manual_seed(int(params["seed"]))
        model = self._model_cls().from_gir(ir)
        out_dir.mkdir(parents=True, exist_ok=True)
        model.dump(str(out_dir / "model.pth"))
        return self._loaded(model, out_dir)

    def load(self, params: dict[str, Any], location: str | None) -> LoadedModel:
        if not location or not (Path(location) / "model.pth").exists():
            raise FileNotFoundError(f"no model.pth under {location}")
        model = self._model_cls().load(str(Path(location) / "model.pth"))
        return self._loaded(model, Path(location))

    def _loaded(self, model: Any, out_dir: Path) -> LoadedModel:
        import torch

        net = model.torch_model
        net.eval()
        names = list(net.input_like.keys())
        specs = [
            TensorSpec(k, tuple(int(d) for d in t.shape), np.dtype(t.dtype.numpy()).name)
            for k, t in net.input_like.items()
        ]

        def run(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
            with torch.no_grad():
                outs = net(*[torch.from_numpy(np.asarray(inputs[n])) for n in names])
            return [o.detach().cpu().numpy() for o in outs]

        operators, graph = _graph(net.ir)
        structure = _structure(net.ir)
        weights = [v.detach().cpu().numpy() for v in net.state_dict().values()]
        return LoadedModel(
            framework="torch",
            native=net,
            inputs=specs,
            output_names=list(net.output_like.keys()),
            run=run,
            operators=operators,
            graph=graph,
            content_hash=hash_arrays([structure, *weights]),
            location=str(out_dir),
        )


def _tf_weights(net: Any) -> list[Any]:
    """All weights of a TFNet: tf.Variables it tracks plus its Keras-3 layers' (which tf.Module does not list)."""
    weights = list(net.variables)
    for layer in getattr(net, "keras_layers", []):
        weights.extend(layer.weights)
    return weights


class NNSmithTensorFlow(_NNSmithSource):
    name, framework, kind, model_type = "nnsmith-tensorflow", "tensorflow", "tf_function", "tensorflow"

    def build(self, params: dict[str, Any], out_dir: Path) -> LoadedModel:
        ir = self._generate_ir(params)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "gir.pkl").write_bytes(pickle.dumps(ir))
        loaded = self._materialise(ir, params)
        np.savez(out_dir / "weights.npz", *[np.asarray(v.numpy()) for v in _tf_weights(loaded.native)])
        loaded.location = str(out_dir)
        return loaded

    def load(self, params: dict[str, Any], location: str | None) -> LoadedModel:
        if not location or not (Path(location) / "gir.pkl").exists():
            raise FileNotFoundError(f"no gir.pkl under {location}")
        ir = pickle.loads((Path(location) / "gir.pkl").read_bytes())
        loaded = self._materialise(ir, params)
        with np.load(Path(location) / "weights.npz") as saved:
            weights = _tf_weights(loaded.native)
            if len(weights) != len(saved.files):
                raise ValueError(f"{location}: {len(saved.files)} saved weights for {len(weights)} variables")
            for i, var in enumerate(weights):
                var.assign(saved[f"arr_{i}"])
        loaded.content_hash = self._hash(ir, params, loaded.native)
        loaded.location = location
        return loaded

    def _hash(self, ir: Any, params: dict[str, Any], net: Any) -> str:
        # Constants are drawn from the TF seed at construction, so the seed is part of the content.
        return hash_arrays(
            [_structure(ir), str(params["seed"]).encode(), *[np.asarray(v.numpy()) for v in _tf_weights(net)]]
        )

    def _materialise(self, ir: Any, params: dict[str, Any]) -> LoadedModel:
        import tensorflow as tf

        seed = int(params["seed"])
        _seed_everything(seed)
        tf.random.set_seed(seed)
        # Keras draws initial weights from its global SeedGenerator, which otherwise carries on from the models
        # this process built before: the same seed gave other weights in a worker than in a fresh process.
        import keras

        keras.utils.set_random_seed(seed)
        model = self._model_cls().from_gir(ir)
        net = model.net
        in_names = list(ir.input_var())
        specs = [
            TensorSpec(k, tuple(int(d) for d in ir.vars[k].shape), np.dtype(ir.vars[k].dtype.numpy()).name)
            for k in in_names
        ]
        signature = [tf.TensorSpec(s.shape, tf.as_dtype(s.dtype), name=s.name) for s in specs]
        # One eager call builds the Keras layers so their weights exist (and can be saved or assigned).
        net(*[tf.zeros(s.shape, s.dtype) for s in signature])

        def run(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
            out = net(*[tf.convert_to_tensor(inputs[n]) for n in in_names])
            return [np.asarray(out[k].numpy()) for k in sorted(out)]

        operators, graph = _graph(ir)
        return LoadedModel(
            framework="tensorflow",
            native=net,
            inputs=specs,
            output_names=sorted(ir.leaf_var()),
            run=run,
            operators=operators,
            graph=graph,
            content_hash=self._hash(ir, params, net),
            extra={"function": net.__call__, "signature": signature},
        )
