"""Campaign specs: what to generate, convert and compare, from `campaign.toml`, CLI flags or a preset."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from db.errors import InteropError


class SpecError(InteropError):
    """A campaign spec the user must fix; the message names the file and field."""


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
DASK_PATTERN = r"^(local|(tcp|tls|ucx|inproc|ws|wss)://\S+)$"
MODULE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"


class CampaignSpec(BaseModel):
    """Everything that defines a campaign's runs; stored verbatim on the campaign row.

    The whole spec is checked here, field by field and strictly typed (no "17" for 17, no empty lists),
    before anything is written: a campaign that cannot run never gets a row."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field("campaign", pattern=NAME_PATTERN, description="letters, digits, . _ - (at most 100)")
    sources: list[str] = Field(default_factory=lambda: ["nnsmith-torch", "nnsmith-tensorflow"], min_length=1)
    converters: list[str] = Field(
        default_factory=lambda: ["torch.onnx-torchscript", "torch.onnx-dynamo", "tf2onnx"], min_length=1
    )
    opsets: list[int] = Field(default_factory=lambda: [17], min_length=1)
    node_counts: list[int] = Field(default_factory=lambda: [10], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    input_seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    inputs_per_model: int = Field(3, ge=1, le=1000, description="K seeded random inputs per run")
    atol: float = Field(1e-4, ge=0, allow_inf_nan=False)
    rtol: float = Field(1e-3, ge=0, allow_inf_nan=False)
    timeout_s: float = Field(60.0, gt=0, allow_inf_nan=False, description="per conversion run (and model generation)")
    memory_mb: int | None = Field(4096, ge=0, description="RSS limit per worker in MB; 0 or none: no limit")
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=1024)
    dask: str | None = Field(None, pattern=DASK_PATTERN, description="'local' for a LocalCluster or tcp://HOST:8786")
    plugins: list[str] = Field(default_factory=list, description="modules the workers import to register plug-ins")
    keep_onnx: bool = Field(True, description="keep each produced ONNX model beside its source model")
    source_options: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-source extra options")

    @field_validator("sources", "converters", "plugins")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        blank = [v for v in value if not v.strip()]
        if blank:
            raise ValueError("names must not be empty")
        twice = sorted({v for v in value if value.count(v) > 1})
        if twice:
            raise ValueError(f"{twice[0]!r} is listed twice")
        return value

    @field_validator("plugins")
    @classmethod
    def _modules(cls, value: list[str]) -> list[str]:
        import re

        bad = [v for v in value if not re.match(MODULE_PATTERN, v)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a module name such as mylab.converters")
        return value

    @field_validator("opsets", "node_counts", "seeds", "input_seeds")
    @classmethod
    def _no_repeats(cls, value: list[int]) -> list[int]:
        twice = sorted({v for v in value if value.count(v) > 1})
        if twice:
            raise ValueError(f"{twice[0]} is listed twice")
        return value

    @model_validator(mode="after")
    def _options_name_sources(self) -> CampaignSpec:
        stray = sorted(set(self.source_options) - set(self.sources))
        if stray:
            raise ValueError(
                f"source_options: {stray[0]!r} is not one of the campaign's sources ({', '.join(self.sources)})"
            )
        return self

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
        raise SpecError(describe_validation(exc, where)) from None


PATTERN_MESSAGES = {
    "name": "must be letters, digits, '.', '_' or '-' (at most 100, starting with a letter or digit)",
    "dask": "must be 'local' or a scheduler address such as tcp://HOST:8786",
}
UNITS = {"memory_mb": " MB (0: no limit)", "timeout_s": " seconds"}


def _message(err: Any, field: str) -> str:
    """pydantic's error in the words of a campaign spec."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "too_short":
        return "must not be empty: give at least one"
    if kind == "string_pattern_mismatch":
        return PATTERN_MESSAGES.get(field, err["msg"])
    for bound, words in (("ge", "at least"), ("gt", "more than"), ("le", "at most"), ("lt", "less than")):
        if bound in ctx:
            return f"must be {words} {ctx[bound]}{UNITS.get(field, '')}"
    return str(err["msg"])


def describe_validation(exc: ValidationError, where: str) -> str:
    """The first problem of a spec as one line naming the field (and the value that was given)."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    message = _message(err, loc[0] if loc else "")
    if err["type"] == "value_error" and message.startswith("source_options: "):
        loc, message = ["source_options"], message.removeprefix("source_options: ")
    if err["type"] == "extra_forbidden":
        known = ", ".join(sorted(CampaignSpec.model_fields))
        return f"{where}: unknown field {loc[-1]!r} (known: {known})"
    field = loc[0] if loc else "spec"
    item = f" item {int(loc[1]) + 1}" if len(loc) > 1 and loc[1].isdigit() else ""
    given = err.get("input")
    shown = "" if err["type"] in ("value_error", "missing", "too_short") else f" (got {given!r})"[:80]
    return " ".join(f"{where}: field {field!r}{item}: {message}{shown}".split())
