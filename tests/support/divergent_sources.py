"""Test-only source whose converted model mismatches for a known reason; importing this module registers it.

`divergent-nanmax` builds x → 2x+1 → sqrt (NaN for negatives) → amax over a row → × tanh(x) → + 3. PyTorch's amax
propagates NaN, as the ONNX spec's ReduceMax does (the reference evaluator), while onnxruntime's CPU ReduceMax
skips NaN: the run is a `mismatch` and its first diverging node is the ReduceMax.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

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


if "divergent-nanmax" not in SOURCES:
    SOURCES.register("divergent-nanmax", NanMaxSource)
