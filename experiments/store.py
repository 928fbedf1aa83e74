"""Driver-side persistence of a campaign: campaign, model and run rows. Workers never write to the database."""

from __future__ import annotations

from dataclasses import dataclass
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
from experiments.results import ModelInfo, RunResult
from experiments.spec import SpecError

RunKey = tuple[int, str, str, str, int, int]


@dataclass(frozen=True)
class ModelItem:
    """A model's generate/load report, waiting in a batch."""

    model_id: int
    info: ModelInfo


@dataclass(frozen=True)
class RunItem:
    """A finished run waiting in a batch: its planned spec, result, model hash and resolved parameters."""

    model_id: int
    spec: dict[str, Any]
    result: RunResult
    model_hash: str | None
    parameters: dict[str, Any] | None = None


BatchItem = ModelItem | RunItem


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
                        node_count=p.get("node_count"),
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

    def record_model(self, model_id: int, info: ModelInfo) -> None:
        """What generating or loading the model told about it (fields it did not tell are kept)."""
        with Session(self.engine) as s:
            self._model_into(s, model_id, info)
            s.commit()

    @staticmethod
    def _model_into(s: Session, model_id: int, info: ModelInfo) -> None:
        row = s.get(ModelUnderTest, model_id)
        if row is None:
            return
        for name in ("content_hash", "location", "operators", "graph", "input_specs"):
            if getattr(info, name) is not None:
                setattr(row, name, getattr(info, name))
        s.add(row)
        if info.operators is not None:  # the same list as rows, for per-operator analyses
            for old in s.exec(select(ModelOperator).where(ModelOperator.model_id == model_id)):
                s.delete(old)
            s.flush()
            s.add_all(ModelOperator(model_id=model_id, operator=op) for op in operator_set(info.operators))

    def record_batch(self, campaign_id: int, items: list[BatchItem]) -> list[RunOutcome | None]:
        """Models and runs, in order, in one transaction (a run this campaign already has is skipped: None);
        one outcome per item (None for models). Falls back to one transaction per item if another writer
        stored one of the runs meanwhile."""
        runs = [i for i in items if isinstance(i, RunItem)]
        model_ids = {i.model_id for i in runs}
        try:
            with Session(self.engine) as s:
                nodes = dict(
                    s.exec(
                        select(col(ModelUnderTest.id), col(ModelUnderTest.node_count)).where(
                            col(ModelUnderTest.id).in_(model_ids)
                        )
                    ).all()
                )
                have = self._keys(s, campaign_id, model_ids)
                out: list[RunOutcome | None] = []
                for item in items:
                    if isinstance(item, ModelItem):
                        self._model_into(s, item.model_id, item.info)
                        out.append(None)
                        continue
                    key = run_key(item.model_id, item.spec)
                    if key in have:
                        out.append(None)
                        continue
                    have.add(key)
                    run = self._run_row(campaign_id, item)
                    run.node_count = nodes.get(item.model_id)
                    s.add(run)
                    s.flush()
                    s.add_all(RunOutput(run_id=stored_id(run), **o) for o in item.result.outputs)
                    out.append(item.result.outcome)
                s.commit()
                return out
        except IntegrityError:
            out = []
            for item in items:
                if isinstance(item, ModelItem):
                    self.record_model(item.model_id, item.info)
                    out.append(None)
                else:
                    out.append(
                        self.record_run(
                            campaign_id, item.model_id, item.spec, item.result, item.model_hash, item.parameters
                        )
                    )
            return out

    @staticmethod
    def _keys(s: Session, campaign_id: int, model_ids: set[int]) -> set[RunKey]:
        if not model_ids:
            return set()
        rows = s.exec(
            select(
                *many_columns(
                    ConversionRun.model_id,
                    ConversionRun.converter,
                    ConversionRun.converter_version,
                    ConversionRun.exporter,
                    ConversionRun.opset,
                    ConversionRun.input_seed,
                )
            ).where(col(ConversionRun.campaign_id) == campaign_id, col(ConversionRun.model_id).in_(model_ids))
        ).all()
        return {(int(r[0]), r[1], r[2], r[3], int(r[4]), int(r[5])) for r in rows}

    def record_run(
        self,
        campaign_id: int,
        model_id: int,
        spec: dict[str, Any],
        result: RunResult,
        model_hash: str | None,
        parameters: dict[str, Any] | None = None,
    ) -> RunOutcome | None:
        """Insert one run (a planned `spec` and how it ended) and its outputs in one transaction; its outcome, or
        None if this campaign already has it. The result is stored as built: verdict and tolerance included."""
        run = self._run_row(campaign_id, RunItem(model_id, spec, result, model_hash, parameters))
        with Session(self.engine) as s:
            run.node_count = s.exec(select(ModelUnderTest.node_count).where(ModelUnderTest.id == model_id)).first()
            try:
                s.add(run)
                s.flush()
                for out in result.outputs:
                    s.add(RunOutput(run_id=stored_id(run), **out))
                s.commit()
            except IntegrityError:
                s.rollback()
                return None
        return result.outcome

    @staticmethod
    def _run_row(campaign_id: int, item: RunItem) -> ConversionRun:
        """The `conversion_run` row of one run, as built (verdict and tolerance included)."""
        spec, result = item.spec, item.result
        produced = result.produced
        return ConversionRun(
            campaign_id=campaign_id,
            model_id=item.model_id,
            model_hash=item.model_hash,
            converter=spec["converter_name"],
            converter_version=spec["converter_version"],
            exporter=spec["exporter"],
            registry_name=spec["converter"],
            opset=int(spec["opset"]),
            produced_opset=produced.opset if produced else None,
            onnx_ir_version=produced.ir_version if produced else None,
            onnx_producer=produced.producer_name if produced else None,
            onnx_producer_version=produced.producer_version if produced else None,
            onnx_path=result.onnx_path[:500] if result.onnx_path else None,
            parameters=item.parameters,
            input_seed=int(spec["input_seed"]),
            n_inputs=int(spec["n_inputs"]),
            status=result.outcome.value,
            stage=result.stage.value if result.stage else None,
            error_class=result.error_class[:200] if result.error_class else None,
            message=result.message,
            stderr_excerpt=result.stderr_excerpt,
            durations={k: round(float(v), 6) for k, v in result.durations.items()},
            peak_rss_mb=result.peak_rss_mb,
            onnx_graph=result.onnx_graph,
            atol=result.atol if result.outcome.judged else None,
            rtol=result.rtol if result.outcome.judged else None,
        )
