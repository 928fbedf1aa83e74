"""`torch.onnx.export` as two variants: the TorchScript exporter (`dynamo=False`) and the default dynamo one."""

from __future__ import annotations

import tempfile
import warnings
from importlib import metadata
from pathlib import Path

from experiments.converters import Converter
from experiments.core import LoadedModel, seeded_inputs


class TorchOnnx(Converter):
    converter = "torch.onnx"
    framework = "torch"

    def __init__(self, dynamo: bool) -> None:
        self.dynamo = dynamo
        self.name = "torch.onnx-dynamo" if dynamo else "torch.onnx-torchscript"

    def exporter_for(self, kind: str) -> str:
        return "dynamo" if self.dynamo else "torchscript"

    def version(self) -> str:
        return metadata.version("torch")

    def convert(self, model: LoadedModel, opset: int, kind: str) -> bytes:
        import torch

        sample = seeded_inputs(model.inputs, 0, 0)
        args = tuple(torch.from_numpy(sample[s.name]) for s in model.inputs)
        names = [s.name for s in model.inputs]
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            if self.dynamo:
                program = torch.onnx.export(
                    model.native,
                    args,
                    dynamo=True,
                    opset_version=opset,
                    input_names=names,
                    output_names=model.output_names,
                    verbose=False,
                )
                if program is None:
                    raise RuntimeError("torch.onnx.export(dynamo=True) returned no ONNX program")
                return program.model_proto.SerializeToString()
            with tempfile.TemporaryDirectory(prefix="torch-onnx-") as folder:
                path = Path(folder) / "model.onnx"
                torch.onnx.export(
                    model.native,
                    args,
                    path,
                    dynamo=False,
                    opset_version=opset,
                    input_names=names,
                    output_names=model.output_names,
                    do_constant_folding=False,
                )
                return path.read_bytes()
