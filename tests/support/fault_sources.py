"""Test-only model sources that misbehave on purpose; importing this module registers them.

Each builds a tiny torch model; `at` chooses whether the fault hits while generating or while exporting.
Workers import this module through the campaign spec's `plugins`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from experiments.core import LoadedModel, TensorSpec, hash_arrays
from experiments.sources import SOURCES, ModelSource


def _abort() -> None:
    os.abort()


def _hang() -> None:
    time.sleep(3600)


def _blow_memory() -> None:
    hoard = []
    for _ in range(40):  # 40 x 200 MB, touched: far past any limit the tests set
        hoard.append(np.ones(25_000_000))
        time.sleep(0.05)


FAULTS = {"abort": _abort, "hang": _hang, "oom": _blow_memory}


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


def register() -> None:
    for fault in FAULTS:
        if f"fault-{fault}" not in SOURCES:
            SOURCES.register(f"fault-{fault}", lambda fault=fault: FaultSource(fault))


register()
