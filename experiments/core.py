"""What flows between plug-ins: a loaded model, its input specs, and the per-stage failure of a run."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and numpy dtype of one model input."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    def as_json(self) -> list[Any]:
        return [self.name, list(self.shape), self.dtype]


@dataclass
class LoadedModel:
    """A model in its source framework, ready for converters: `run` gives the reference outputs."""

    framework: str
    native: Any
    inputs: list[TensorSpec]
    output_names: list[str]
    run: Callable[[dict[str, np.ndarray]], list[np.ndarray]]
    operators: list[str] = field(default_factory=list)
    graph: list[Any] = field(default_factory=list)
    content_hash: str | None = None
    location: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def model_key(source: str, params: dict[str, Any]) -> str:
    """Stable identity of a model: its source and canonical generator parameters."""
    text = json.dumps({"source": source, "params": params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def hash_arrays(parts: Sequence[bytes | np.ndarray]) -> str:
    """sha256 over structure bytes and weight arrays (dtype, shape and data), in order."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            digest.update(f"{arr.dtype.str}{arr.shape}".encode())
            digest.update(arr.tobytes())
        else:
            digest.update(part)
    return digest.hexdigest()


def seeded_inputs(specs: Sequence[TensorSpec], input_seed: int, index: int) -> dict[str, np.ndarray]:
    """The `index`-th random input of seed `input_seed`: identical for the framework and onnxruntime."""
    rng = np.random.default_rng([int(input_seed) & 0xFFFFFFFF, index])
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        dtype = np.dtype(spec.dtype)
        arr: np.ndarray
        if dtype == np.bool_:
            arr = rng.random(spec.shape) < 0.5
        elif np.issubdtype(dtype, np.integer):
            arr = rng.integers(0, 8, size=spec.shape)
        elif np.issubdtype(dtype, np.complexfloating):
            arr = rng.standard_normal(spec.shape) + 1j * rng.standard_normal(spec.shape)
        else:
            arr = rng.standard_normal(spec.shape)
        out[spec.name] = np.asarray(arr).astype(dtype)
    return out


def onnx_file_name(registry_name: str, converter_version: str, opset: int) -> str:
    """File name a run's produced ONNX model is kept under, in its model's `onnx/` folder (one per converter
    plug-in, version and requested opset: the input seed does not change the export)."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", f"{registry_name}-{converter_version}-opset{int(opset)}") + ".onnx"
