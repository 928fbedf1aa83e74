"""Driver-side persistence of a campaign: campaign, model and run rows. Workers never write to the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from db.columns import many_columns, stored_id
from db.models.experiments import (
    Campaign,
    ConversionRun,
    ModelOperator,
    ModelUnderTest,
    RunOutcome,
    RunOutput,
)
from db.types import utcnow
from experiments.compare import run_passes
from experiments.spec import SpecError

RunKey = tuple[int, str, str, str, int, int]


def operator_set(operators: list[str]) -> list[str]:
    """The distinct operator names of a model's `operators` list, as stored in `model_operator`."""
    return sorted({str(op)[:200] for op in operators if op is not None})


def run_key(model_id: int, spec: dict[str, Any]) -> RunKey:
    """A run's key within its campaign (the stored unique key adds the campaign id)."""
    return (
        model_id,
        spec["converter_name"],
        spec["converter_version"],
        spec["exporter"],
        int(spec["opset"]),
        int(spec["input_seed"]),
    )


class CampaignStore:
    """Idempotent writes keyed by natural keys: campaign name, model key, run key."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def check(self, name: str, spec: dict[str, Any]) -> None:
        """Refuse a spec that differs from the one stored under `name`: resuming it would mix two campaigns."""
        with Session(self.engine) as s:
            stored = s.exec(select(Campaign.spec).where(Campaign.name == name)).first()
        if stored is not None and stored != spec:
            raise SpecError(f"campaign {name!r} exists with a different spec; choose another name")

    def campaign(self, name: str, spec: dict[str, Any], env: dict[str, Any], kind: str = "live") -> int:
        """The campaign row for `name`, created on first use; a different spec under the same name is refused."""
        self.check(name, spec)
        with Session(self.engine) as s:
            row = s.exec(select(Campaign).where(Campaign.name == name)).first()
            if row is not None:
                row.finished_at = None
            else:
                pk = env.get("packages", {})
                row = Campaign(
                    name=name,
                    kind=kind,
                    spec=spec,
                    environment=env,
                    python_version=env.get("python"),
                    torch_version=pk.get("torch"),
                    tensorflow_version=pk.get("tensorflow"),
                    tf2onnx_version=pk.get("tf2onnx"),
                    onnx_version=pk.get("onnx"),
                    onnxruntime_version=pk.get("onnxruntime"),
                    nnsmith_version=pk.get("nnsmith"),
                    cpu=(env.get("cpu") or "")[:200] or None,
                )
            s.add(row)
            s.commit()
            return int(row.id or 0)

    def finish(self, campaign_id: int) -> None:
        with Session(self.engine) as s:
            row = s.get(Campaign, campaign_id)
            if row is not None:
                row.finished_at = utcnow()
                s.add(row)
                s.commit()

    def models(self, campaign_id: int, planned: list[dict[str, Any]]) -> dict[str, ModelUnderTest]:
        """Model rows for every planned model (inserted once, in one transaction), by model key."""
        keys = [p["model_key"] for p in planned]
        with Session(self.engine) as s:
            rows = {
                m.model_key: m for m in s.exec(select(ModelUnderTest).where(col(ModelUnderTest.model_key).in_(keys)))
            }
            for p in planned:
                if p["model_key"] not in rows:
                    row = ModelUnderTest(
                        model_key=p["model_key"],
                        source=p["source"],
                        framework=p["framework"],
                        name=p["name"],
                        params=p["params"],
                        seed=p["params"].get("seed"),
                        node_count=p["params"].get("max_nodes"),
                        resolved_params=p.get("resolved"),
                        campaign_id=campaign_id,
                    )
                    s.add(row)
                    rows[p["model_key"]] = row
            s.commit()
            for row in rows.values():
                s.refresh(row)
                s.expunge(row)
        return rows

    def finished(self, campaign_id: int) -> set[RunKey]:
        """Keys of the runs this campaign stored; another campaign's runs of the same models do not count."""
        with Session(self.engine) as s:
            rows = s.exec(
                select(
                    *many_columns(
                        col(ConversionRun.model_id),
                        col(ConversionRun.converter),
                        col(ConversionRun.converter_version),
                        col(ConversionRun.exporter),
                        col(ConversionRun.opset),
                        col(ConversionRun.input_seed),
                    )
                ).where(col(ConversionRun.campaign_id) == campaign_id)
            ).all()
        return {(int(r[0]), r[1], r[2], r[3], int(r[4]), int(r[5])) for r in rows}

    def record_model(self, model_id: int, info: dict[str, Any]) -> None:
        with Session(self.engine) as s:
            row = s.get(ModelUnderTest, model_id)
            if row is None:
                return
            for field in ("content_hash", "location", "operators", "graph", "input_specs"):
                if info.get(field) is not None:
                    setattr(row, field, info[field])
            s.add(row)
            if info.get("operators") is not None:  # the same list as rows, for per-operator analyses
                for old in s.exec(select(ModelOperator).where(ModelOperator.model_id == model_id)):
                    s.delete(old)
                s.flush()
                s.add_all(ModelOperator(model_id=model_id, operator=op) for op in operator_set(info["operators"]))
            s.commit()

    def record_run(
        self,
        campaign_id: int,
        model_id: int,
        spec: dict[str, Any],
        result: dict[str, Any],
        atol: float,
        rtol: float,
        model_hash: str | None,
        parameters: dict[str, Any] | None = None,
    ) -> str | None:
        """Insert one run and its outputs in one transaction; its status, or None if this campaign already has it.

        What the produced model says about itself (opset, IR version, producer) is stored as read by the worker;
        a run that produced nothing readable keeps them None.
        """
        status = result["status"]
        if status == "compared":
            status = RunOutcome.passed if run_passes(result["outputs"], atol, rtol) else RunOutcome.mismatch
        judged = status in (RunOutcome.passed, RunOutcome.mismatch)
        produced = result.get("produced") or {}
        run = ConversionRun(
            campaign_id=campaign_id,
            model_id=model_id,
            model_hash=model_hash,
            converter=spec["converter_name"],
            converter_version=spec["converter_version"],
            exporter=spec["exporter"],
            registry_name=spec.get("converter"),
            opset=int(spec["opset"]),
            produced_opset=produced.get("opset"),
            onnx_ir_version=produced.get("ir_version"),
            onnx_producer=produced.get("producer_name"),
            onnx_producer_version=produced.get("producer_version"),
            onnx_path=(result.get("onnx_path") or None) and str(result["onnx_path"])[:500],
            parameters=parameters,
            input_seed=int(spec["input_seed"]),
            n_inputs=int(spec["n_inputs"]),
            status=str(status),
            stage=result.get("stage"),
            error_class=(result.get("error_class") or None),
            message=result.get("message"),
            stderr_excerpt=result.get("stderr_excerpt"),
            durations={k: round(float(v), 6) for k, v in (result.get("durations") or {}).items()},
            peak_rss_mb=result.get("peak_rss_mb"),
            onnx_graph=result.get("onnx_graph"),
            atol=atol if judged else None,
            rtol=rtol if judged else None,
        )
        if run.error_class:
            run.error_class = run.error_class[:200]
        with Session(self.engine) as s:
            run.node_count = s.exec(select(ModelUnderTest.node_count).where(ModelUnderTest.id == model_id)).first()
            try:
                s.add(run)
                s.flush()
                for out in result.get("outputs") or []:
                    s.add(RunOutput(run_id=stored_id(run), **out))
                s.commit()
            except IntegrityError:
                s.rollback()
                return None
        return str(status)
