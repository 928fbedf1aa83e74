"""Conversion campaigns: the models put through converters, each conversion run, and its raw comparison numbers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from db.models.base import json_field, utc_field
from db.outcomes import RunOutcome, Stage

__all__ = ["Campaign", "ConversionRun", "ModelOperator", "ModelUnderTest", "RunOutcome", "RunOutput", "Stage"]


class Campaign(SQLModel, table=True):
    """One named campaign: its spec, and the software/hardware it ran on (or a historical import)."""

    __tablename__ = "campaign"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    kind: str = Field(default="live", max_length=16, description="live (run here) or historical (imported)")
    spec: dict[str, Any] = json_field(nullable=False, default={})
    python_version: str | None = Field(default=None, max_length=32)
    torch_version: str | None = Field(default=None, max_length=32)
    tensorflow_version: str | None = Field(default=None, max_length=32)
    tf2onnx_version: str | None = Field(default=None, max_length=32)
    onnx_version: str | None = Field(default=None, max_length=32)
    onnxruntime_version: str | None = Field(default=None, max_length=32)
    nnsmith_version: str | None = Field(default=None, max_length=32)
    cpu: str | None = Field(default=None, max_length=200)
    environment: dict[str, Any] = json_field(nullable=False, default={})
    created_at: datetime = utc_field(nullable=False, now=True)
    finished_at: datetime | None = utc_field()


class ModelUnderTest(SQLModel, table=True):
    """A model fed to converters, identified by its source and generator parameters (`model_key`)."""

    __tablename__ = "model"

    id: int | None = Field(default=None, primary_key=True)
    model_key: str = Field(max_length=64, unique=True, description="sha256 of source + canonical parameters")
    source: str = Field(max_length=64, index=True)
    framework: str = Field(max_length=32, index=True)
    name: str = Field(max_length=200)
    params: dict[str, Any] = json_field(nullable=False, default={})
    seed: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    node_count: int | None = Field(default=None, index=True, description="requested number of operators")
    operators: list[str] | None = json_field(description="source-framework operator types, in graph order")
    graph: list[Any] | None = json_field(description="[[operator, [predecessor indices]], ...]")
    content_hash: str | None = Field(default=None, max_length=64, index=True)
    location: str | None = Field(default=None, max_length=500, description="directory holding the model files")
    input_specs: list[Any] | None = json_field()
    resolved_params: dict[str, Any] | None = json_field(
        description="how the source built it: its plug-in module and every parameter with defaults filled in"
    )
    campaign_id: int | None = Field(default=None, foreign_key="campaign.id", index=True)
    created_at: datetime = utc_field(nullable=False, now=True)


class ModelOperator(SQLModel, table=True):
    """One operator type a model contains (its `operators` list as rows): per-operator analyses join on it."""

    __tablename__ = "model_operator"
    __table_args__ = (Index("ix_model_operator_operator", "operator", "model_id"),)

    model_id: int = Field(foreign_key="model.id", primary_key=True)
    operator: str = Field(max_length=200, primary_key=True)


class ConversionRun(SQLModel, table=True):
    """One model through one converter variant at one opset, checked on K seeded inputs in onnxruntime."""

    __tablename__ = "conversion_run"
    __table_args__ = (
        # The run key, per campaign (two campaigns planning the same run each store their own); named
        # explicitly because the conventional name exceeds PostgreSQL's 63 characters.
        UniqueConstraint(
            "campaign_id",
            "model_id",
            "converter",
            "converter_version",
            "exporter",
            "opset",
            "input_seed",
            name="uq_conversion_run_key",
        ),
        # Covering indexes for the Experiments page's aggregates: index-only scans, already in GROUP BY order.
        Index("ix_conversion_run_campaign_status", "campaign_id", "status"),
        Index("ix_conversion_run_outcome", "converter", "status", "stage", "error_class"),
        Index("ix_conversion_run_variant", "model_id", "converter", "exporter", "opset", "status"),
        # The outcome breakdown (converter × exporter × node count × produced and requested opset × outcome) in
        # GROUP BY order, no join.
        Index(
            "ix_conversion_run_breakdown",
            "converter",
            "exporter",
            "node_count",
            "produced_opset",
            "opset",
            "status",
            "campaign_id",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    model_id: int = Field(foreign_key="model.id", index=True)
    model_hash: str | None = Field(default=None, max_length=64, description="the model's content hash at run time")
    converter: str = Field(max_length=32, index=True)
    converter_version: str = Field(max_length=32)
    exporter: str = Field(max_length=32)
    registry_name: str | None = Field(
        default=None, max_length=64, description="the converter plug-in as a campaign spec names it (torch.onnx-dynamo)"
    )
    opset: int = Field(index=True, description="the opset requested from the converter")
    produced_opset: int | None = Field(
        default=None, description="the default-domain opset of the produced ONNX model (None: none produced, unknown)"
    )
    onnx_ir_version: int | None = Field(default=None, description="the produced model's IR version")
    onnx_producer: str | None = Field(default=None, max_length=100, description="the produced model's producer_name")
    onnx_producer_version: str | None = Field(default=None, max_length=64)
    onnx_path: str | None = Field(default=None, max_length=500, description="the produced ONNX file (kept for checks)")
    node_count: int | None = Field(default=None, description="the model's node count, copied: breakdowns need no join")
    input_seed: int = Field(sa_column=Column(BigInteger, nullable=False))
    n_inputs: int = Field(default=0, description="K: random inputs compared")
    status: str = Field(max_length=16, index=True, description="a RunOutcome")
    stage: str | None = Field(default=None, max_length=16, index=True, description="the Stage that failed")
    error_class: str | None = Field(default=None, max_length=200)
    message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    stderr_excerpt: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    durations: dict[str, Any] = json_field(nullable=False, default={}, description="seconds per stage")
    peak_rss_mb: float | None = None
    onnx_graph: list[Any] | None = json_field(description="[[op_type, [predecessor indices]], ...] of the ONNX")
    atol: float | None = Field(default=None, description="tolerance of the current verdict")
    rtol: float | None = None
    parameters: dict[str, Any] | None = json_field(
        description="every resolved parameter of the run (plug-ins, converter, limits, tolerance): what repro re-runs"
    )
    finished_at: datetime = utc_field(nullable=False, now=True)


class RunOutput(SQLModel, table=True):
    """Raw comparison numbers of one output for one of the K inputs: enough to re-judge at any tolerance."""

    __tablename__ = "run_output"
    __table_args__ = (UniqueConstraint("run_id", "input_index", "output_index"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="conversion_run.id", index=True)
    input_index: int
    output_index: int
    output_name: str | None = Field(default=None, max_length=200)
    ref_shape: list[int] | None = json_field()
    onnx_shape: list[int] | None = json_field()
    ref_dtype: str | None = Field(default=None, max_length=32)
    onnx_dtype: str | None = Field(default=None, max_length=32)
    shape_match: bool
    dtype_match: bool
    n_elements: int = 0
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    n_outside: int | None = Field(default=None, description="elements outside the campaign tolerance")
    fraction_outside: float | None = None
    needed_atol: dict[str, float] | None = json_field(
        description="{rtol: smallest atol that passes}, for a grid of rtol values"
    )
    ref_nan: int = 0
    ref_inf: int = 0
    onnx_nan: int = 0
    onnx_inf: int = 0
    nonfinite_mismatch: int = Field(default=0, description="positions where exactly one side is NaN/Inf or they differ")
