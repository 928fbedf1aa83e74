"""One model job inside a worker: generate or load the model, then each requested conversion run, stage by stage.

Progress goes out through `emit` as typed messages (`experiments.messages`) as it happens, so the driver knows
the stage a crashed worker was in: StageStarted, then ModelReady or ModelFailed, then one RunFinished per run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from db.outcomes import Stage
from experiments.compare import compare_output
from experiments.core import LoadedModel, onnx_file_name, seeded_inputs
from experiments.messages import MODEL, ModelFailed, ModelReady, RunFinished, StageStarted, WorkerMessage
from experiments.results import ModelInfo, Produced, RunResult

Emit = Callable[[WorkerMessage], None]


class StderrTail:
    """Reads what this process wrote to its stderr file since a mark (for the stderr excerpt of a run)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        if self.path:
            try:
                self.offset = os.path.getsize(self.path)
            except OSError:
                self.offset = 0

    def excerpt(self, limit: int = 4000) -> str | None:
        if not self.path:
            return None
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return None
        text = data.decode("utf-8", "replace").strip()
        return text[-limit:] or None


def onnx_graph(proto: Any) -> list[Any]:
    """[[op_type, [predecessor node indices]], ...] of the ONNX main graph (a ModelProto), in node order."""
    producer: dict[str, int] = {}
    graph: list[Any] = []
    for i, node in enumerate(proto.graph.node):
        graph.append([node.op_type, sorted({producer[n] for n in node.input if n in producer})])
        for out in node.output:
            producer[out] = i
    return graph


def keep_onnx(onnx_bytes: bytes, folder: str | None, spec: dict[str, Any]) -> str | None:
    """Write the produced model to `folder` (None: not kept) whatever it is, so it can be re-checked or attached
    to a bug report; a failed write costs the file, never the run."""
    if not folder:
        return None
    path = Path(folder) / onnx_file_name(spec["converter"], spec["converter_version"], int(spec["opset"]))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(onnx_bytes)
        partial.replace(path)
    except OSError:
        return None
    return str(path)


def _get_model(job: dict[str, Any], emit: Emit, tail: StderrTail, durations: dict[str, float]) -> LoadedModel:
    from experiments.sources import SOURCES

    source = SOURCES.get(job["source"])
    stage = Stage.of_model(job.get("content_hash"))
    emit(StageStarted(MODEL, stage))
    tail.mark()
    start = time.perf_counter()
    try:
        if stage == Stage.load:
            return source.load(job["params"], job.get("location"))
        return source.build(job["params"], Path(job["model_dir"]))
    finally:  # a failed generation took time too
        durations[stage] = time.perf_counter() - start


def run_job(job: dict[str, Any], emit: Emit, stderr_path: str | None = None, threads: int = 1) -> None:
    """Run every conversion of `job`; never raises for a model's own failures (they become results)."""
    from experiments.converters import CONVERTERS
    from experiments.runtime import RUNTIMES

    tail = StderrTail(stderr_path)
    model_durations: dict[str, float] = {}
    try:
        model = _get_model(job, emit, tail, model_durations)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        stage = Stage.of_model(job.get("content_hash"))
        emit(ModelFailed(RunResult.failure(stage, exc, tail.excerpt(), durations=model_durations)))
        return
    info = ModelInfo(
        content_hash=model.content_hash,
        location=model.location,
        operators=model.operators,
        graph=model.graph,
        input_specs=[s.as_json() for s in model.inputs],
        durations=model_durations,
    )
    emit(ModelReady(info))
    from experiments.sources import SOURCES

    kind = SOURCES.get(job["source"]).kind
    runtime = RUNTIMES.get(job.get("runtime", "onnxruntime-cpu"))
    for index, spec in enumerate(job["runs"]):
        converter = CONVERTERS.get(spec["converter"])
        result = _one_run(model, converter, runtime, spec, kind, job, emit, index, tail, threads)
        if index == 0:
            result.durations = {**model_durations, **result.durations}
        emit(RunFinished(index, result))


def _one_run(
    model: LoadedModel,
    converter: Any,
    runtime: Any,
    spec: dict[str, Any],
    kind: str,
    job: dict[str, Any],
    emit: Emit,
    index: int,
    tail: StderrTail,
    threads: int,
) -> RunResult:
    durations: dict[str, float] = {}
    kept: dict[str, Any] = {"durations": durations, "onnx_graph": None, "produced": None, "onnx_path": None}
    atol, rtol = float(job["atol"]), float(job["rtol"])
    stage = Stage.export
    start = time.perf_counter()

    def enter(next_stage: Stage) -> float:
        nonlocal stage
        stage = next_stage
        emit(StageStarted(index, stage))
        return time.perf_counter()

    try:
        tail.mark()
        start = enter(Stage.export)
        onnx_bytes = converter.convert(model, int(spec["opset"]), kind)
        durations[stage] = time.perf_counter() - start
        kept["onnx_path"] = keep_onnx(onnx_bytes, job.get("onnx_dir"), spec)

        # Everything read from the produced bytes belongs to checking them: garbage fails here, not at export.
        start = enter(Stage.onnx_check)
        import onnx

        proto = onnx.load_from_string(onnx_bytes)
        kept["produced"] = Produced.of(proto)
        kept["onnx_graph"] = onnx_graph(proto)
        onnx.checker.check_model(proto)
        durations[stage] = time.perf_counter() - start

        start = enter(Stage.ort_session)
        session = runtime.session(onnx_bytes, threads=threads)
        durations[stage] = time.perf_counter() - start

        start = enter(Stage.ort_run)
        feeds = [seeded_inputs(model.inputs, int(spec["input_seed"]), k) for k in range(int(spec["n_inputs"]))]
        got_all = [runtime.run(session, f) for f in feeds]
        durations[stage] = time.perf_counter() - start

        # The source framework's reference outputs are part of comparing: its failures are `compare` failures.
        start = enter(Stage.compare)
        outputs = []
        for k, got in enumerate(got_all):
            ref = model.run(feeds[k])
            if len(ref) != len(got):
                raise ValueError(f"{len(ref)} reference outputs but {len(got)} onnxruntime outputs")
            for j, (r, g) in enumerate(zip(ref, got, strict=True)):
                name = model.output_names[j] if j < len(model.output_names) else None
                outputs.append(
                    {"input_index": k, "output_index": j, "output_name": name, **compare_output(r, g, atol, rtol)}
                )
        durations[stage] = time.perf_counter() - start
        return RunResult.judged(outputs, atol, rtol, **kept)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        durations[stage] = time.perf_counter() - start  # the time the failing stage took before it failed
        return RunResult.failure(stage, exc, tail.excerpt(), **kept)
