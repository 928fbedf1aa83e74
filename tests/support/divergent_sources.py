"""Test-only sources and a converter whose models mismatch for a known reason; importing this module registers them.

`divergent-nanmax` builds x → 2x+1 → sqrt (NaN for negatives) → amax over a row → × tanh(x) → + 3. PyTorch's amax
propagates NaN, as the ONNX spec's ReduceMax does (the reference evaluator), while onnxruntime's CPU ReduceMax
skips NaN: the run is a `mismatch` and its first diverging node is the ReduceMax (onnxruntime's doing).

`divergent-tanh` builds x → 2x → tanh → + 1 → × x → relu, and the converter `torch.onnx-perturbed` exports it
with TorchScript, then turns the one Tanh node into a Sigmoid: onnxruntime agrees with the spec on every node,
and the first node departing from PyTorch's values is that one (the converter's doing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from experiments.converters import CONVERTERS, Converter
from experiments.core import LoadedModel, TensorSpec, hash_arrays
from experiments.sources import SOURCES, ModelSource


class NanMaxSource(ModelSource):
    """`divergent-nanmax`: params {"seed": n} (the model has no weights; the seed only names it)."""

    name, framework, kind = "divergent-nanmax", "torch", "torch_module"

    def expand(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"seed": 0}]

    def display_name(self, params: dict[str, Any]) -> str:
        return self.name

    def build(self, params: dict[str, Any], out_dir: Path) -> LoadedModel:
        import torch

        class NanMax(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                c = torch.sqrt(x * 2.0 + 1.0)
                return c.amax(dim=1, keepdim=True) * torch.tanh(x) + 3.0

        net = NanMax().eval()

        def run(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
            with torch.no_grad():
                return [net(torch.from_numpy(inputs["x"])).numpy()]

        return LoadedModel(
            framework="torch",
            native=net,
            inputs=[TensorSpec("x", (4, 16), "float32")],
            output_names=["y"],
            run=run,
            operators=["Mul", "Add", "Sqrt", "ReduceMax", "Tanh", "Mul", "Add"],
            graph=[],
            content_hash=hash_arrays([self.name.encode()]),
        )


class TanhSource(ModelSource):
    """`divergent-tanh`: params {"seed": n}; relu((tanh(2x) + 1) × x), no weights."""

    name, framework, kind = "divergent-tanh", "torch", "torch_module"

    def expand(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"seed": 0}]

    def display_name(self, params: dict[str, Any]) -> str:
        return self.name

    def build(self, params: dict[str, Any], out_dir: Path) -> LoadedModel:
        import torch

        class Gated(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return torch.relu((torch.tanh(x * 2.0) + 1.0) * x)

        net = Gated().eval()

        def run(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
            with torch.no_grad():
                return [net(torch.from_numpy(inputs["x"])).numpy()]

        return LoadedModel(
            framework="torch",
            native=net,
            inputs=[TensorSpec("x", (4, 16), "float32")],
            output_names=["y"],
            run=run,
            operators=["Mul", "Tanh", "Add", "Mul", "Relu"],
            graph=[],
            content_hash=hash_arrays([self.name.encode()]),
        )


class PerturbedTorchScript(Converter):
    """`torch.onnx-perturbed`: the TorchScript exporter, then the first Tanh node made a Sigmoid (a planted
    converter bug: the ONNX graph computes something else than the source model, consistently for every runtime)."""

    name, converter, framework = "torch.onnx-perturbed", "torch.onnx-perturbed", "torch"

    def exporter_for(self, kind: str) -> str:
        return "torchscript-perturbed"

    def version(self) -> str:
        return CONVERTERS.get("torch.onnx-torchscript").version()

    def convert(self, model: LoadedModel, opset: int, kind: str) -> bytes:
        import onnx

        exported = CONVERTERS.get("torch.onnx-torchscript").convert(model, opset, kind)
        proto = onnx.load_from_string(exported)
        node = next(n for n in proto.graph.node if n.op_type == "Tanh")
        node.op_type = "Sigmoid"
        return proto.SerializeToString()


if "divergent-nanmax" not in SOURCES:
    SOURCES.register("divergent-nanmax", NanMaxSource)
if "divergent-tanh" not in SOURCES:
    SOURCES.register("divergent-tanh", TanhSource)
if "torch.onnx-perturbed" not in CONVERTERS:
    CONVERTERS.register("torch.onnx-perturbed", PerturbedTorchScript)
