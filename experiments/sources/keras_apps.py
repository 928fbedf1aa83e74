"""Real TensorFlow architectures available offline: `keras.applications` built with `weights=None` from a seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from experiments.core import LoadedModel, TensorSpec, hash_arrays
from experiments.sources import ModelSource

DEFAULT_ARCHS = ["MobileNetV3Small", "MobileNetV2", "EfficientNetB0", "DenseNet121", "ResNet50"]


def _layer_graph(model: Any) -> tuple[list[str], list[Any]]:
    """Layer class names in model order and [[layer, [predecessor indices]]] from the functional graph."""
    layers = list(model.layers)
    index = {id(layer): i for i, layer in enumerate(layers)}
    graph: list[Any] = []
    for layer in layers:
        preds: set[int] = set()
        for node in getattr(layer, "_inbound_nodes", []):
            for parent in getattr(node, "parent_nodes", []):
                op = getattr(parent, "operation", None)
                if id(op) in index:
                    preds.add(index[id(op)])
        graph.append([type(layer).__name__, sorted(preds)])
    return [g[0] for g in graph], graph


class KerasApplications(ModelSource):
    name, framework, kind = "keras-applications", "tensorflow", "keras"

    def expand(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        size = int(options.get("input_size", 96))
        version = self.package_version("keras")
        return [
            {"arch": arch, "input_size": size, "seed": int(s), "generator_version": version}
            for arch in options.get("archs", DEFAULT_ARCHS)
            for s in options.get("seeds", [0])
        ]

    def display_name(self, params: dict[str, Any]) -> str:
        return f"{params['arch']}-{params['input_size']}px-s{params['seed']}"

    def build_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        size = int(params["input_size"])
        return {
            "constructor": f"keras.applications.{params['arch']}",
            "weights": None,
            "input_shape": [1, size, size, 3],
            "input_dtype": "float32",
            "seed": int(params["seed"]),
        }

    def build(self, params: dict[str, Any], out_dir: Path) -> LoadedModel:
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(int(params["seed"]))
        size = int(params["input_size"])
        model = getattr(keras.applications, params["arch"])(weights=None, input_shape=(size, size, 3))
        spec = TensorSpec("input", (1, size, size, 3), "float32")

        def run(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
            out = model(tf.convert_to_tensor(inputs["input"]), training=False)
            return [np.asarray(o) for o in (out if isinstance(out, list | tuple) else [out])]

        operators, graph = _layer_graph(model)
        return LoadedModel(
            framework="tensorflow",
            native=model,
            inputs=[spec],
            output_names=[t.name for t in model.outputs],
            run=run,
            operators=operators,
            graph=graph,
            content_hash=hash_arrays([params["arch"].encode(), *model.get_weights()]),
            extra={"signature": [tf.TensorSpec(spec.shape, tf.float32, name="input")]},
        )
