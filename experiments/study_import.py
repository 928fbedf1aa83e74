"""Import the study's exporter results (`exporter_test_results/{torch,tensorflow}/*.json`) as a historical campaign.

Each file holds one node count (in its name) and opset; each record one model with `result` (0 converted and
ran, 1 failed), `error`, and `mismatch` (torch) or `mad` — max absolute difference — (TensorFlow). The stage
of a failure is classified from its message: onnxruntime errors (session vs. run), converter errors, framework
errors. TensorFlow `mad` values are kept as raw numbers, so `rescore` can re-judge them; an infinite `mad` is
stored as infinity and a NaN one as no number (with its non-finite flag), so the study's own rule (NaN passes,
infinity does not) can be re-applied to the stored numbers.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from db.columns import stored_id
from db.errors import InteropError
from db.ingest import recorded_run
from db.models.experiments import Campaign, ConversionRun, ModelUnderTest, RunOutcome, RunOutput
from db.types import utcnow
from experiments.core import model_key

FILE_RE = re.compile(r"^(?P<fw>torch|tensorflow)_(?P<method>.+)_opset_(?P<opset>\d+)_(?P<nodes>\d+)\.json$")
CONVERTER = {"torch": ("torch.onnx", "torchscript"), "tensorflow": ("tf2onnx", "cli-saved-model")}
STUDY_VERSION = "study"
#: the atol the imported TensorFlow `mad` values are judged at (rtol 0); `rescore --campaign NAME` can change it
IMPORT_ATOL = 1e-5

_ORT = re.compile(r"\[ONNXRuntimeError\] : (?P<code>\d+) : (?P<name>[A-Z_]+) : (?P<text>.*)", re.S)


class StudyImportError(InteropError):
    """Bad input: the message names the file and record."""


def classify(message: str | None) -> tuple[str, str]:
    """(stage, error class) of a study failure message: onnxruntime session/run, converter or framework."""
    text = (message or "").strip()
    match = _ORT.search(text)
    if match:
        name, detail = match["name"], match["text"]
        run_time = "Non-zero status code returned while running" in detail or name == "RUNTIME_EXCEPTION"
        return ("ort_run" if run_time else "ort_session"), f"onnxruntime.{name}"
    if text in ("", "b''", 'b""'):
        return "export", "converter.silent_exit"  # the converter process died without a message
    if "Did not complete" in text:
        return "export", "converter.timeout"
    if "larger than the 2GiB limit" in text or "protobuf" in text.lower():
        return "export", "converter.protobuf_limit"
    if "ValidationError" in text or "onnx.checker" in text or "[ShapeInferenceError]" in text:
        return "onnx_check", "onnx.checker"
    if (
        re.search(r"Value for attr '\w+' of \w+ is not in the list of allowed values", text)
        or "tensorflow" in text
        or "{{function_node" in text
        or re.search(r"\[Op:\w+\]", text)
    ):
        return "load", "framework.tensorflow"
    if "torch" in text.lower() or "symbolic" in text.lower() or "Exporting the operator" in text:
        return "export", "converter.torch.onnx"
    return "export", "converter.other"


def _records(directory: Path) -> list[tuple[Path, re.Match[str], list[dict[str, Any]]]]:
    if not directory.is_dir():
        raise StudyImportError(f"{directory}: no such directory")
    files = sorted(p for fw in ("torch", "tensorflow") for p in (directory / fw).glob("*.json"))
    if not files:
        inner = sorted(p.parent for p in directory.glob("*/*") if p.name in ("torch", "tensorflow") and p.is_dir())
        hint = f"; did you mean {inner[0]}?" if inner else ""
        raise StudyImportError(f"{directory}: no torch/*.json or tensorflow/*.json files{hint}")
    out = []
    for path in files:
        match = FILE_RE.match(path.name)
        if not match or match["fw"] != path.parent.name:
            raise StudyImportError(f"{path}: name is not <framework>_<method>_opset_<N>_<nodes>.json")
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StudyImportError(f"{path}: not readable JSON ({exc})") from exc
        if not isinstance(data, list):
            raise StudyImportError(f"{path}: expected a list of model records")
        for i, rec in enumerate(data):
            missing = [k for k in ("model", "result") if not isinstance(rec, dict) or k not in rec]
            if missing:
                raise StudyImportError(f"{path}: record {i}: field {missing[0]!r} is missing")
            if rec["result"] not in (0, 1):
                raise StudyImportError(f"{path}: record {i}: field 'result' must be 0 or 1, not {rec['result']!r}")
        out.append((path, match, data))
    return out


def _outcome(fw: str, rec: dict[str, Any]) -> tuple[str, str | None, str | None, float | None]:
    """(status, stage, error class, mad) of one record."""
    if rec["result"] == 1:
        if rec.get("hang"):
            return RunOutcome.timeout, "export", "converter.timeout", None
        stage, error_class = classify(rec.get("error"))
        return RunOutcome.failed, stage, error_class, None
    if fw == "torch":
        return (RunOutcome.mismatch if rec.get("mismatch") else RunOutcome.passed), None, None, None
    mad = rec.get("mad")
    mad = float(mad) if mad is not None else math.nan
    ok = math.isfinite(mad) and mad <= IMPORT_ATOL
    return (RunOutcome.passed if ok else RunOutcome.mismatch), None, None, mad


def import_exporter_results(engine: Engine, directory: Path, name: str = "study-exporter-results") -> dict[str, int]:
    """Load every file in one transaction; re-importing adds nothing. Returns models/runs/new_runs counts."""
    parsed = _records(Path(directory))
    counts = {"models": 0, "runs": 0, "new_runs": 0}
    spec = {"import": "exporter_test_results", "judged_at": {"atol": IMPORT_ATOL, "rtol": 0.0}}
    with recorded_run(engine, "experiment-import-results", {"directory": str(directory), "campaign": name}) as log:
        with Session(engine) as s:
            campaign = s.exec(select(Campaign).where(Campaign.name == name)).first()
            if campaign is None:
                campaign = Campaign(name=name, kind="historical", spec=spec, environment={"source": str(directory)})
                s.add(campaign)
                s.flush()
            study_models = select(ModelUnderTest).where(col(ModelUnderTest.source).like("study-%"))
            models = {m.model_key: m for m in s.exec(study_models)}
            done = {
                (r.model_id, r.converter, r.exporter, r.opset)
                for r in s.exec(select(ConversionRun).where(ConversionRun.campaign_id == campaign.id))
            }
            seen: set[str] = set()
            for _path, match, data in parsed:
                fw, opset, nodes = match["fw"], int(match["opset"]), int(match["nodes"])
                converter, exporter = CONVERTER[fw]
                for rec in data:
                    source = f"study-nnsmith-{fw}"
                    params = {
                        "study_path": rec.get("path") or rec["model"],
                        "method": match["method"],
                        "max_nodes": nodes,
                    }
                    key = model_key(source, params)
                    model = models.get(key)
                    if model is None:
                        seed = rec["model"].rsplit("_", 1)[-1]
                        model = ModelUnderTest(
                            model_key=key,
                            source=source,
                            framework=fw,
                            name=rec["model"],
                            params=params,
                            seed=int(seed) if seed.isdigit() else None,
                            node_count=nodes,
                            location=rec.get("path"),
                            campaign_id=campaign.id,
                        )
                        s.add(model)
                        s.flush()
                        models[key] = model
                    seen.add(key)
                    counts["runs"] += 1
                    if (model.id, converter, exporter, opset) in done:
                        continue
                    status, stage, error_class, mad = _outcome(fw, rec)
                    judged = RunOutcome(status).judged
                    run = ConversionRun(
                        campaign_id=stored_id(campaign),
                        model_id=stored_id(model),
                        converter=converter,
                        converter_version=STUDY_VERSION,
                        exporter=exporter,
                        opset=opset,
                        node_count=model.node_count,
                        input_seed=0,
                        n_inputs=1 if judged else 0,
                        status=str(status),
                        stage=stage,
                        error_class=error_class,
                        message=rec.get("error"),
                        atol=IMPORT_ATOL if mad is not None else None,
                        rtol=0.0 if mad is not None else None,
                    )
                    s.add(run)
                    s.flush()
                    if mad is not None:
                        finite = math.isfinite(mad)
                        s.add(
                            RunOutput(
                                run_id=stored_id(run),
                                input_index=0,
                                output_index=0,
                                shape_match=True,
                                dtype_match=True,
                                max_abs_diff=None if math.isnan(mad) else mad,
                                needed_atol={"0.0": mad} if finite else None,
                                nonfinite_mismatch=0 if finite else 1,
                            )
                        )
                    done.add((stored_id(model), converter, exporter, opset))
                    counts["new_runs"] += 1
                    log.add(str(status))
            if counts["new_runs"] or campaign.finished_at is None:  # a re-import that adds nothing changes nothing
                campaign.finished_at = utcnow()
                s.add(campaign)
            s.commit()
        counts["models"] = len(seen)
        log.add("runs", counts["runs"])
    return counts
