"""tf2onnx through its Python API, in-process: `from_keras` for Keras models, `from_function` for tf.functions."""

from __future__ import annotations

from importlib import metadata

from experiments.converters import Converter
from experiments.core import LoadedModel


class Tf2OnnxApi(Converter):
    name = "tf2onnx"
    converter = "tf2onnx"
    framework = "tensorflow"

    def exporter_for(self, kind: str) -> str:
        return "from_keras" if kind == "keras" else "from_function"

    def version(self) -> str:
        return metadata.version("tf2onnx")

    def convert(self, model: LoadedModel, opset: int, kind: str) -> bytes:
        import tf2onnx

        signature = model.extra["signature"]
        if kind == "keras":
            proto, _ = tf2onnx.convert.from_keras(model.native, input_signature=signature, opset=opset)
        else:
            proto, _ = tf2onnx.convert.from_function(model.extra["function"], input_signature=signature, opset=opset)
        return proto.SerializeToString()
