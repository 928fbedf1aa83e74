"""The campaign driver: plan the runs of a spec, skip the finished ones, execute the rest, store every result.

Only this process writes to the database; results arrive as events from the executor and are committed in small
batches (at most `BATCH_RUNS` runs or `BATCH_SECONDS` s of results per transaction), so `kill -9` loses at most
the runs in flight and the last second of results, and a re-run resumes where it stopped.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from db.ingest import recorded_run
from db.outcomes import RunOutcome
from experiments.converters import CONVERTERS
from experiments.core import model_key
from experiments.environment import fingerprint
from experiments.isolation import WorkerOptions
from experiments.messages import Event, ModelEvent, ModelFailedEvent
from experiments.sources import SOURCES
from experiments.spec import CampaignSpec, SpecError
from experiments.store import BatchItem, CampaignStore, ModelItem, RunItem, run_key

RUNTIME = "onnxruntime-cpu"
BATCH_RUNS, BATCH_SECONDS = 64, 1.0


@dataclass
class CampaignResult:
    """What a `run_campaign` call did."""

    campaign_id: int
    planned_runs: int
    skipped_runs: int
    counts: dict[str, int] = field(default_factory=dict)
    replaced_workers: int = 0
    warnings: list[str] = field(default_factory=list)
    #: (converter, requested opset, produced opset) -> runs whose model came out at another opset than asked
    opset_changes: dict[tuple[str, int, int], int] = field(default_factory=dict)
    #: where the driver's time went: database_s (storing results), worker_start_s and workers_started (local
    #: pool: from asking for a worker to its Ready, summed), zygote_wait_s (worker-seconds slots had no job
    #: because every queued job's zygote was still importing), zygote_import_s.FRAMEWORK, executor_s (wall time)
    timings: dict[str, float] = field(default_factory=dict)


def plan(spec: CampaignSpec) -> list[dict[str, Any]]:
    """Every model of the spec with the conversion runs it needs (converters of its framework only)."""
    for name in spec.sources:
        if name not in SOURCES:
            raise SpecError(f"field 'sources': unknown source {name!r} (known: {', '.join(SOURCES.names())})")
    for name in spec.converters:
        if name not in CONVERTERS:
            raise SpecError(f"field 'converters': unknown converter {name!r} (known: {', '.join(CONVERTERS.names())})")
    planned = []
    for source_name in spec.sources:
        source = SOURCES.get(source_name)
        converters = [CONVERTERS.get(c) for c in spec.converters if CONVERTERS.get(c).framework == source.framework]
        if not converters:
            fitting = [n for n in CONVERTERS.names() if CONVERTERS.get(n).framework == source.framework]
            raise SpecError(
                f"field 'converters': none converts source {source_name!r} ({source.framework} models); "
                f"add one of: {', '.join(fitting) or '(none registered)'}"
            )
        for params in _models_of(source_name, source, spec):
            runs = [
                {
                    "converter": conv.name,
                    "converter_name": conv.converter,
                    "converter_version": conv.version(),
                    "exporter": conv.exporter_for(source.kind),
                    "opset": opset,
                    "input_seed": seed,
                    "n_inputs": spec.inputs_per_model,
                }
                for conv in converters
                for opset in spec.opsets
                for seed in spec.input_seeds
            ]
            planned.append(
                {
                    "source": source_name,
                    "framework": source.framework,
                    "params": params,
                    "resolved": source.resolved(params),
                    "name": source.display_name(params),
                    "node_count": source.node_count(params),
                    "model_key": model_key(source_name, params),
                    "runs": runs,
                }
            )
    return planned


def _models_of(name: str, source: Any, spec: CampaignSpec) -> list[dict[str, Any]]:
    """The generator parameters of a source's models: `source_options.NAME.params` lists them exactly (what
    `experiment repro` writes); otherwise the source expands its options (seeds, node counts, archs…)."""
    options = spec.options_for(name)
    if "params" not in options:
        return source.expand(options)
    exact = options["params"]
    if not isinstance(exact, list) or not exact or not all(isinstance(p, dict) for p in exact):
        raise SpecError(f"field 'source_options.{name}.params': a non-empty list of tables (one per model)")
    return [dict(p) for p in exact]


def run_parameters(spec: CampaignSpec, run: dict[str, Any]) -> dict[str, Any]:
    """Every resolved parameter of one planned run, stored on its row: what `experiment repro` re-runs."""
    converter = CONVERTERS.get(run["converter"])
    return {
        "registry_name": run["converter"],
        "converter_module": type(converter).__module__,
        "converter": run["converter_name"],
        "converter_version": run["converter_version"],
        "exporter": run["exporter"],
        "opset": int(run["opset"]),
        "input_seed": int(run["input_seed"]),
        "n_inputs": int(run["n_inputs"]),
        "atol": spec.atol,
        "rtol": spec.rtol,
        "runtime": RUNTIME,
        "plugins": list(spec.plugins),
        "timeout_s": spec.timeout_s,
        "memory_mb": spec.memory_mb,
    }


def model_dir(data_dir: Path, planned: dict[str, Any]) -> Path:
    """Where a model's files go: `DATA_DIR/models/SOURCE/KEY16` (its produced ONNX files under `onnx/`)."""
    return (data_dir / "models" / planned["source"] / planned["model_key"][:16]).resolve()


def worker_options(spec: CampaignSpec, data_dir: Path) -> WorkerOptions:
    import os

    threads = max(1, (os.cpu_count() or 1) // spec.workers)
    return WorkerOptions(
        timeout_s=spec.timeout_s,
        memory_mb=spec.memory_mb,
        threads=threads,
        plugins=tuple(spec.plugins),
        log_dir=str(data_dir / "logs"),
    )


def prepare(engine: Engine, spec: CampaignSpec) -> list[dict[str, Any]]:
    """Import the spec's plug-ins, plan its runs and check its name: every spec problem surfaces here, first."""
    for module in spec.plugins:  # plug-ins register their sources/converters here and in every worker
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SpecError(f"field 'plugins': cannot import {module!r} ({exc})") from exc
    planned = plan(spec)
    CampaignStore(engine).check(spec.name, spec.identity())
    return planned


def run_campaign(
    engine: Engine,
    spec: CampaignSpec,
    data_dir: Path,
    progress: Callable[[int, int, RunOutcome | None], None] | None = None,
    planned: list[dict[str, Any]] | None = None,
) -> CampaignResult:
    """Plan (unless `prepare` already did), resume, execute (locally or on Dask) and store a campaign."""
    from experiments.executors import make_executor

    planned = prepare(engine, spec) if planned is None else planned
    store = CampaignStore(engine)
    campaign_id = store.campaign(spec.name, spec.identity(), fingerprint())
    rows = store.models(campaign_id, planned)
    done = store.finished(campaign_id)
    jobs, skipped, total = [], 0, 0
    for p in planned:
        row = rows[p["model_key"]]
        todo = [r for r in p["runs"] if run_key(int(row.id or 0), r) not in done]
        total += len(p["runs"])
        skipped += len(p["runs"]) - len(todo)
        if todo:
            jobs.append(
                {
                    "source": p["source"],
                    "framework": p["framework"],
                    "params": p["params"],
                    "model_id": row.id,
                    "model_key": p["model_key"],
                    "content_hash": row.content_hash,
                    "location": row.location,
                    "model_dir": str(model_dir(data_dir, p)),
                    "onnx_dir": str(model_dir(data_dir, p) / "onnx") if spec.keep_onnx else None,
                    "runtime": RUNTIME,
                    "atol": spec.atol,
                    "rtol": spec.rtol,
                    "runs": todo,
                }
            )
    result = CampaignResult(campaign_id, total, skipped)
    hashes: dict[int, str | None] = {int(r.id or 0): r.content_hash for r in rows.values()}
    finished = [skipped]

    batch: list[BatchItem] = []
    flushed = [time.monotonic()]
    result.timings["database_s"] = 0.0

    def flush() -> None:
        if not batch:
            return
        start = time.monotonic()
        outcomes = store.record_batch(campaign_id, batch)
        result.timings["database_s"] += time.monotonic() - start
        for item, status in zip(batch, outcomes, strict=True):
            if not isinstance(item, RunItem):
                continue
            outcome, run_spec = item.result, item.spec
            if status is not None:
                result.counts[status.value] = result.counts.get(status.value, 0) + 1
                produced = outcome.produced.opset if outcome.produced else None
                if produced is not None and produced != int(run_spec["opset"]):
                    pair = (run_spec["converter"], int(run_spec["opset"]), int(produced))
                    result.opset_changes[pair] = result.opset_changes.get(pair, 0) + 1
            finished[0] += 1
            if progress:
                progress(finished[0], total, status or outcome.outcome)
        batch.clear()
        flushed[0] = time.monotonic()

    def on_event(event: Event) -> None:
        job = event.job
        model_id = int(job["model_id"])
        if isinstance(event, ModelEvent):
            new_hash, old_hash = event.info.content_hash, hashes.get(model_id)
            if old_hash and new_hash and new_hash != old_hash:
                result.warnings.append(
                    f"model {job['model_key'][:12]} ({job['source']}) reloaded with content hash "
                    f"{new_hash[:12]}, stored {old_hash[:12]}: it is not reproducible"
                )
            batch.append(ModelItem(model_id, event.info))
            hashes[model_id] = new_hash or hashes.get(model_id)
        else:
            specs = job["runs"] if isinstance(event, ModelFailedEvent) else [event.run]
            for run_spec in specs:
                parameters = run_parameters(spec, run_spec)
                batch.append(RunItem(model_id, run_spec, event.result, hashes.get(model_id), parameters))
        if len(batch) >= BATCH_RUNS or time.monotonic() - flushed[0] >= BATCH_SECONDS:
            flush()

    if progress:
        progress(skipped, total, None)
    executor = make_executor(spec, worker_options(spec, data_dir))
    with recorded_run(engine, "experiment-campaign", {"campaign": spec.name, **spec.identity()}) as log:
        log.add("planned_runs", total)
        log.add("skipped_runs", skipped)
        start = time.monotonic()
        try:
            result.replaced_workers = executor.run(jobs, on_event)
        finally:
            flush()  # what finished before a failure (or Ctrl-C) is kept
        result.timings["executor_s"] = time.monotonic() - start
        stats = getattr(executor, "stats", None)
        if stats is not None:
            result.timings["worker_start_s"] = stats.worker_start_s
            result.timings["workers_started"] = float(stats.workers_started)
            result.timings["zygote_wait_s"] = stats.zygote_wait_s
            for framework, seconds in stats.zygote_import_s.items():
                result.timings[f"zygote_import_s.{framework}"] = seconds
        for status, n in result.counts.items():
            log.add(status, n)
        log.add("replaced_workers", result.replaced_workers)
    store.finish(campaign_id)
    return result
