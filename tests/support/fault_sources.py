"""Test-only plug-ins that misbehave on purpose; importing this module registers them.

Sources `fault-<kind>` each build a tiny torch model; `at` chooses whether the fault hits while generating or
while exporting (`fault-none` is the well-behaved control). Converters: `fault-garbage-onnx` returns bytes
that are no ONNX model, `fault-fixed-opset` exports with TorchScript at opset 18 whatever opset it is asked
for. Workers import this module through the campaign spec's `plugins`.
"""

from __future__ import annotations

import ctypes
import io
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from experiments.converters import CONVERTERS, Converter
from experiments.core import LoadedModel, TensorSpec, hash_arrays, seeded_inputs
from experiments.sources import SOURCES, ModelSource


def _abort() -> None:
    os.abort()


def _segfault() -> None:
    ctypes.string_at(0)  # reads address 0: SIGSEGV


def _hang() -> None:
    time.sleep(3600)


def _blow_memory() -> None:
    hoard = []
    for _ in range(40):  # 40 x 200 MB, touched: far past any limit the tests set
        hoard.append(np.ones(25_000_000))
        time.sleep(0.05)


def _nothing() -> None:
    return None


FAULTS = {"abort": _abort, "segv": _segfault, "hang": _hang, "oom": _blow_memory, "none": _nothing}


class FaultSource(ModelSource):
    """`fault-<kind>`: params {"at": "generate"|"export", "seed": n}."""

    framework = "torch"
    kind = "torch_module"

    def __init__(self, fault: str) -> None:
        self.fault = fault
        self.name = f"fault-{fault}"

    def expand(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"at": at, "seed": 0} for at in options.get("at", ["export"])]

    def display_name(self, params: dict[str, Any]) -> str:
        return f"{self.name}-at-{params['at']}"

    def build(self, params: dict[str, Any], out_dir: Path) -> LoadedModel:
        import torch

        if params["at"] == "generate":
            FAULTS[self.fault]()
        fault = FAULTS[self.fault]

        class Faulty(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                if torch.jit.is_tracing() or torch.compiler.is_compiling():
                    fault()
                return x * 2

        net = Faulty()

        def run(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
            return [inputs["x"] * 2]

        return LoadedModel(
            framework="torch",
            native=net,
            inputs=[TensorSpec("x", (2, 3), "float32")],
            output_names=["y"],
            run=run,
            operators=["Mul"],
            graph=[["Mul", []]],
            content_hash=hash_arrays([self.name.encode()]),
        )


class GarbageOnnx(Converter):
    """Claims to convert, returns bytes no ONNX reader accepts."""

    name, converter, framework = "fault-garbage-onnx", "garbage", "torch"

    def exporter_for(self, kind: str) -> str:
        return "bytes"

    def version(self) -> str:
        return "1"

    def convert(self, model: LoadedModel, opset: int, kind: str) -> bytes:
        return b"this is not an ONNX model"


class FixedOpset(Converter):
    """TorchScript export at opset 18 whatever opset is asked for (as torch 2.13's dynamo exporter does at 11)."""

    name, converter, framework = "fault-fixed-opset", "torch.onnx", "torch"
    OPSET = 18

    def exporter_for(self, kind: str) -> str:
        return "fixed-opset-18"

    def version(self) -> str:
        return "1"

    def convert(self, model: LoadedModel, opset: int, kind: str) -> bytes:
        import torch

        sample = seeded_inputs(model.inputs, 0, 0)
        args = tuple(torch.from_numpy(sample[s.name]) for s in model.inputs)
        buf = io.BytesIO()
        names = [s.name for s in model.inputs]
        torch.onnx.export(model.native, args, buf, dynamo=False, opset_version=self.OPSET, input_names=names)
        return buf.getvalue()


def register() -> None:
    for fault in FAULTS:
        if f"fault-{fault}" not in SOURCES:
            SOURCES.register(f"fault-{fault}", lambda fault=fault: FaultSource(fault))
    for cls in (GarbageOnnx, FixedOpset):
        if cls.name not in CONVERTERS:
            CONVERTERS.register(cls.name, cls)


register()
