"""Re-run one stored conversion run exactly: the same model (its stored files, else rebuilt from its exact
parameters), the same converter plug-in, opset, input seed, K, tolerance, plug-in modules and limits.

The run's recipe becomes a one-run campaign spec (`source_options.SOURCE.params` names the model exactly), so
`interop experiment run SPEC` is the equivalent command; `repro` itself executes that one run in an isolated
worker without writing to the database and compares the outcome with the stored one.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from db.errors import InteropError
from experiments.spec import CampaignSpec, SpecError

#: the built-in converters' registry names, for runs stored before the registry name was (0013_run_provenance)
_BUILT_IN = {
    ("torch.onnx", "torchscript"): "torch.onnx-torchscript",
    ("torch.onnx", "dynamo"): "torch.onnx-dynamo",
    ("tf2onnx", "from_keras"): "tf2onnx",
    ("tf2onnx", "from_function"): "tf2onnx",
}
#: what a reproduction is compared on
COMPARED_FIELDS = ("status", "stage", "error_class", "produced_opset", "model_hash")


class ReproError(InteropError):
    """The run cannot be reproduced here (the message says why)."""


@dataclass
class Recipe:
    """A stored run as a one-run campaign spec, plus what the stored row says happened."""

    run_id: int
    spec: CampaignSpec
    stored: dict[str, Any]
    model: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def toml(self) -> str:
        """The spec as campaign.toml text (only the fields that matter, every one explicit)."""
        import tomli_w

        data = self.spec.model_dump(include=SPEC_FIELDS, exclude_none=True)
        header = (
            f"# Reproduces conversion run {self.run_id} ({self.model.get('name')}, "
            f"{self.stored.get('registry_name')} at opset {self.stored.get('opset')}).\n"
            f"# Run it with: interop experiment run THIS_FILE   (or: interop experiment repro {self.run_id})\n"
        )
        return header + tomli_w.dumps({"campaign": data})


SPEC_FIELDS = {
    "name",
    "sources",
    "converters",
    "opsets",
    "input_seeds",
    "inputs_per_model",
    "atol",
    "rtol",
    "timeout_s",
    "memory_mb",
    "workers",
    "plugins",
    "keep_onnx",
    "source_options",
}


def recipe(detail: dict[str, Any]) -> Recipe:
    """The one-run spec of a stored run, from `db.queries.experiments.run_detail` (no plug-in imported)."""
    run, model, campaign = detail["run"], detail["model"], detail["campaign"]
    run_id = int(run["id"])
    if campaign.get("kind") == "historical":
        raise ReproError(
            f"run {run_id} is from the historical import {campaign.get('name')!r}: there are no model files here "
            "to re-run (the study's results were imported, not produced by this platform)"
        )
    if not model or not model.get("source"):
        raise ReproError(f"run {run_id} has no model row to rebuild")
    params: dict[str, Any] = dict(run.get("parameters") or {})
    notes: list[str] = []
    registry = run.get("registry_name") or params.get("registry_name")
    if not registry:
        registry = _BUILT_IN.get((run["converter"], run["exporter"]))
        if registry is None:
            raise ReproError(
                f"run {run_id} was stored without its converter's registry name and "
                f"{run['converter']}/{run['exporter']} is no built-in converter"
            )
    if not params:
        notes.append(
            "this run was stored before runs recorded their parameters: plug-in modules, time and memory limits "
            "are not known (the defaults are used)"
        )
    stored_spec = campaign.get("spec") or {}
    limits = {k: params[k] for k in ("timeout_s", "memory_mb") if k in params}
    spec = CampaignSpec(
        name=f"repro-run-{run_id}",
        sources=[model["source"]],
        converters=[registry],
        opsets=[int(run["opset"])],
        input_seeds=[int(run["input_seed"])],
        inputs_per_model=max(1, int(run.get("n_inputs") or params.get("n_inputs") or 1)),
        atol=float(params.get("atol", stored_spec.get("atol", run.get("atol") or 1e-4))),
        rtol=float(params.get("rtol", stored_spec.get("rtol", run.get("rtol") or 1e-3))),
        workers=1,
        plugins=list(params.get("plugins") or []),
        source_options={model["source"]: {"params": [dict(model.get("params") or {})]}},
        **limits,
    )
    stored = {
        "status": run.get("status"),
        "stage": run.get("stage"),
        "error_class": run.get("error_class"),
        "produced_opset": run.get("produced_opset"),
        "model_hash": run.get("model_hash"),
        "registry_name": registry,
        "opset": run.get("opset"),
        "converter_version": run.get("converter_version"),
        "message": run.get("message"),
    }
    return Recipe(run_id, spec, stored, dict(model), notes)


def load_recipe(engine: Engine, run_id: int) -> Recipe:
    from db.queries.experiments import run_detail

    detail = run_detail(engine, run_id)
    if detail is None:
        raise ReproError(f"no conversion run with id {run_id}")
    return recipe(detail)


@dataclass
class Reproduction:
    """What re-running gave, beside what was stored."""

    recipe: Recipe
    now: dict[str, Any]
    spec_path: Path
    result_path: Path
    notes: list[str] = field(default_factory=list)

    def differences(self) -> list[tuple[str, Any, Any]]:
        return [
            (name, self.recipe.stored.get(name), self.now.get(name))
            for name in COMPARED_FIELDS
            if self.recipe.stored.get(name) != self.now.get(name)
        ]

    @property
    def same_outcome(self) -> bool:
        return not [d for d in self.differences() if d[0] in ("status", "stage", "error_class")]


def reproduce(engine: Engine, run_id: int, out_dir: Path) -> Reproduction:
    """Write OUT/campaign.toml, re-run the run in one isolated worker (nothing is written to the database),
    keep its ONNX file, worker log and OUT/result.json, and return it beside the stored outcome."""
    from experiments.campaign import RUNTIME, plan, worker_options
    from experiments.executors import LocalExecutor
    from experiments.messages import Event, ModelEvent

    rec = load_recipe(engine, run_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec_path = out_dir / "campaign.toml"
    spec_path.write_text(rec.toml(), encoding="utf-8")
    for module in rec.spec.plugins:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ReproError(f"the run's plug-in {module!r} cannot be imported here ({exc})") from exc
    try:
        planned = plan(rec.spec)
    except (KeyError, SpecError) as exc:
        raise ReproError(f"run {run_id} cannot be planned here: {exc}") from exc
    notes = list(rec.notes)
    if len(planned) != 1 or len(planned[0]["runs"]) != 1:
        raise ReproError(f"run {run_id}'s recipe plans {sum(len(p['runs']) for p in planned)} runs, not one")
    model, run = planned[0], planned[0]["runs"][0]
    if model["model_key"] != rec.model.get("model_key"):
        raise ReproError(f"run {run_id}'s model parameters give another model key here: the source has changed")
    if run["converter_version"] != rec.stored["converter_version"]:
        notes.append(
            f"{run['converter_name']} is {run['converter_version']} here, the run used "
            f"{rec.stored['converter_version']}: the outcome may differ for that reason alone"
        )
    location = rec.model.get("location")
    reuse = bool(location and rec.model.get("content_hash") and Path(location).is_dir())
    if location and not reuse:
        notes.append(f"the model's files are gone ({location}): it is rebuilt from its parameters")
    job = {
        "source": model["source"],
        "framework": model["framework"],
        "params": model["params"],
        "model_id": rec.model.get("id"),
        "model_key": model["model_key"],
        "content_hash": rec.model.get("content_hash") if reuse else None,
        "location": location if reuse else None,
        "model_dir": str((out_dir / "model").resolve()),
        "onnx_dir": str(out_dir.resolve()),
        "runtime": RUNTIME,
        "atol": rec.spec.atol,
        "rtol": rec.spec.rtol,
        "runs": [run],
    }
    events: list[Event] = []
    LocalExecutor(1, worker_options(rec.spec, out_dir)).run([job], events.append)
    now: dict[str, Any] = {"model_hash": None}  # only what the worker reports
    for event in events:
        if isinstance(event, ModelEvent):
            now["model_hash"] = event.info.content_hash
            continue
        result = event.result  # judged by the pipeline at the recipe's tolerance, as the stored run was
        produced = result.produced
        now.update(
            status=result.outcome.value,
            stage=result.stage.value if result.stage else None,
            error_class=result.error_class,
            message=result.message,
            produced_opset=produced.opset if produced else None,
            onnx_ir_version=produced.ir_version if produced else None,
            onnx_producer=produced.producer_name if produced else None,
            onnx_producer_version=produced.producer_version if produced else None,
            onnx_path=result.onnx_path,
            peak_rss_mb=result.peak_rss_mb,
            durations=result.durations,
            outputs=result.outputs,
        )
    result_path = out_dir / "result.json"
    result_path.write_text(
        json.dumps({"run_id": run_id, "stored": rec.stored, "now": now, "notes": notes}, indent=2, default=str),
        encoding="utf-8",
    )
    return Reproduction(rec, now, spec_path, result_path, notes)
