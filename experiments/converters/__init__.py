"""Converters: a source-framework model and an opset in, serialized ONNX bytes out (stage export)."""

from __future__ import annotations

from experiments.core import LoadedModel
from experiments.registry import Registry


class Converter:
    """A plug-in converter variant; `converter` + `exporter` + `version()` go into the run key."""

    name: str = ""
    converter: str = ""
    framework: str = ""

    def exporter_for(self, kind: str) -> str:
        """The exporter variant used for models of a source kind (torch_module, tf_function, keras)."""
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def convert(self, model: LoadedModel, opset: int, kind: str) -> bytes:
        raise NotImplementedError


CONVERTERS: Registry[Converter] = Registry("converter")


def _torchscript() -> Converter:
    from experiments.converters.torch_onnx import TorchOnnx

    return TorchOnnx(dynamo=False)


def _dynamo() -> Converter:
    from experiments.converters.torch_onnx import TorchOnnx

    return TorchOnnx(dynamo=True)


def _tf2onnx() -> Converter:
    from experiments.converters.tf2onnx_api import Tf2OnnxApi

    return Tf2OnnxApi()


CONVERTERS.register("torch.onnx-torchscript", _torchscript)
CONVERTERS.register("torch.onnx-dynamo", _dynamo)
CONVERTERS.register("tf2onnx", _tf2onnx)
