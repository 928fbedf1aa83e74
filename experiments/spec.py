"""Campaign specs: what to generate, convert and compare, from `campaign.toml`, CLI flags or a preset."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class SpecError(ValueError):
    """A campaign spec the user must fix; the message names the file and field."""


class CampaignSpec(BaseModel):
    """Everything that defines a campaign's runs; stored verbatim on the campaign row."""

    model_config = ConfigDict(extra="forbid")

    name: str = "campaign"
    sources: list[str] = Field(default_factory=lambda: ["nnsmith-torch", "nnsmith-tensorflow"])
    converters: list[str] = Field(default_factory=lambda: ["torch.onnx-torchscript", "torch.onnx-dynamo", "tf2onnx"])
    opsets: list[int] = Field(default_factory=lambda: [17])
    node_counts: list[int] = Field(default_factory=lambda: [10])
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    input_seeds: list[int] = Field(default_factory=lambda: [0])
    inputs_per_model: int = Field(3, ge=1, description="K seeded random inputs per run")
    atol: float = Field(1e-4, ge=0)
    rtol: float = Field(1e-3, ge=0)
    timeout_s: float = Field(60.0, gt=0, description="per conversion run (and per model generation)")
    memory_mb: int | None = Field(4096, description="RSS limit per worker; none to disable")
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    dask: str | None = Field(None, description="'local' for a LocalCluster or tcp://HOST:8786")
    plugins: list[str] = Field(default_factory=list, description="modules the workers import to register plug-ins")
    keep_onnx: bool = Field(True, description="keep each produced ONNX model beside its source model")
    source_options: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-source extra options")

    @field_validator("opsets")
    @classmethod
    def _opsets(cls, value: list[int]) -> list[int]:
        bad = [v for v in value if not 7 <= v <= 23]
        if bad:
            raise ValueError(f"opset {bad[0]} is outside 7..23")
        return value

    @field_validator("node_counts")
    @classmethod
    def _node_counts(cls, value: list[int]) -> list[int]:
        bad = [v for v in value if v < 1]
        if bad:
            raise ValueError(f"node count {bad[0]} must be at least 1")
        return value

    @field_validator("seeds", "input_seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        bad = [v for v in value if v < 0]
        if bad:
            raise ValueError(f"seed {bad[0]} must not be negative")
        return value

    def identity(self) -> dict[str, Any]:
        """The fields that define which runs exist (execution knobs like workers may change on resume)."""
        return self.model_dump(exclude={"workers", "dask", "timeout_s", "memory_mb", "plugins", "keep_onnx"})

    def options_for(self, source: str) -> dict[str, Any]:
        return {"node_counts": self.node_counts, "seeds": self.seeds, **self.source_options.get(source, {})}


PRESETS: dict[str, dict[str, Any]] = {
    # ~2 minutes on 2 cores from a fresh install (includes nnsmith's one-off TensorFlow operator probe).
    "quick": {
        "name": "quick",
        "sources": ["nnsmith-torch", "nnsmith-tensorflow"],
        "converters": ["torch.onnx-torchscript", "torch.onnx-dynamo", "tf2onnx"],
        "opsets": [17],
        "node_counts": [5, 10, 20],
        "seeds": [0, 1, 2, 3, 4, 5],
        "inputs_per_model": 2,
        "timeout_s": 60,
    },
    # Real architectures built offline: keras.applications (weights=None) and transformers from configs.
    "real": {
        "name": "real",
        "sources": ["keras-applications", "transformers-torch"],
        "converters": ["torch.onnx-torchscript", "torch.onnx-dynamo", "tf2onnx"],
        "opsets": [17],
        "seeds": [0],
        "inputs_per_model": 2,
        "timeout_s": 300,
        "memory_mb": 8192,
    },
}


def load_spec(
    path: Path | None = None, preset: str | None = None, overrides: dict[str, Any] | None = None
) -> CampaignSpec:
    """A spec from a preset and/or a TOML file (top level or a [campaign] table), then CLI overrides."""
    data: dict[str, Any] = {}
    where = "command line"
    if preset:
        if preset not in PRESETS:
            raise SpecError(f"unknown preset {preset!r} (known: {', '.join(sorted(PRESETS))})")
        data.update(PRESETS[preset])
    if path is not None:
        where = str(path)
        try:
            with path.open("rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise SpecError(f"{path}: no such file") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{path}: not valid TOML ({exc})") from exc
        data.update(raw.get("campaign", raw))
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return CampaignSpec(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "spec"
        raise SpecError(f"{where}: field {field!r}: {err['msg']}") from exc
