"""The typed contract of a conversion run, from the pipeline (in a worker) to the store (in the driver).

A `RunResult` is built once, where the run ended: by the pipeline for a verdict or a Python exception, by the
worker pool for a crash, timeout or memory kill. It pickles (the isolated worker's pipe, Dask), and the store
writes it as is: nobody rebuilds or re-judges it on the way.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from typing import Any

from db.outcomes import RunOutcome, Stage

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the dynamo exporter colours its error messages


@dataclass(frozen=True)
class Produced:
    """What a produced ONNX model says about itself (None where it does not say)."""

    opset: int | None = None
    ir_version: int | None = None
    producer_name: str | None = None
    producer_version: str | None = None

    @classmethod
    def of(cls, proto: Any) -> Produced:
        """Read from an `onnx.ModelProto`: its default-domain opset, IR version, producer name and version."""
        opset = next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        return cls(
            opset=opset,
            ir_version=int(proto.ir_version) or None,
            producer_name=proto.producer_name[:100] or None,
            producer_version=proto.producer_version[:64] or None,
        )


@dataclass
class RunResult:
    """How one conversion run ended, with everything the store keeps of it."""

    outcome: RunOutcome
    stage: Stage | None = None
    error_class: str | None = None
    message: str | None = None
    stderr_excerpt: str | None = None
    #: seconds per stage (the model's generate/load time is on the first run of its job)
    durations: dict[str, float] = field(default_factory=dict)
    #: raw comparison numbers, one dict of `run_output` columns per input × output
    outputs: list[dict[str, Any]] = field(default_factory=list)
    onnx_graph: list[Any] | None = None
    produced: Produced | None = None
    onnx_path: str | None = None
    peak_rss_mb: float | None = None
    #: the tolerance of a verdict (passed/mismatch); None for a failure
    atol: float | None = None
    rtol: float | None = None

    def __post_init__(self) -> None:
        self.outcome = RunOutcome(self.outcome)
        self.stage = Stage(self.stage) if self.stage is not None else None
        self.durations = {str(k): float(v) for k, v in self.durations.items()}  # stage names, not enum members

    @classmethod
    def judged(cls, outputs: list[dict[str, Any]], atol: float, rtol: float, **rest: Any) -> RunResult:
        """A compared run: passed when it compared at least one output and every output passes at (atol, rtol)."""
        from experiments.compare import run_passes

        outcome = RunOutcome.passed if run_passes(outputs, atol, rtol) else RunOutcome.mismatch
        return cls(outcome=outcome, outputs=outputs, atol=float(atol), rtol=float(rtol), **rest)

    @classmethod
    def failure(cls, stage: Stage, exc: BaseException, stderr: str | None = None, **rest: Any) -> RunResult:
        """A Python exception at `stage` (a MemoryError is an `oom`), with the end of its traceback."""
        message = _ANSI.sub("", f"{exc}").strip() or type(exc).__name__
        trace = "".join(traceback.format_exception(exc)[-3:])
        return cls(
            outcome=RunOutcome.oom if isinstance(exc, MemoryError) else RunOutcome.failed,
            stage=stage,
            error_class=f"{type(exc).__module__}.{type(exc).__qualname__}"[:200],
            message=message[:20_000],
            stderr_excerpt=((stderr + "\n") if stderr else "") + trace[-4000:],
            **rest,
        )

    @classmethod
    def lost(cls, outcome: RunOutcome, stage: Stage, message: str, stderr: str | None, peak_rss_mb: float) -> RunResult:
        """The worker was lost during `stage` (crash, timeout, memory kill): nothing of the run came back."""
        return cls(
            outcome=outcome,
            stage=stage,
            error_class=f"worker.{RunOutcome(outcome).value}",
            message=message,
            stderr_excerpt=stderr,
            peak_rss_mb=peak_rss_mb,
        )


@dataclass(frozen=True)
class ModelInfo:
    """What generating or loading a model tells the store about it."""

    content_hash: str | None = None
    location: str | None = None
    operators: list[str] | None = None
    graph: list[Any] | None = None
    input_specs: list[Any] | None = None
    durations: dict[str, float] = field(default_factory=dict)
