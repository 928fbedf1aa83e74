"""Read-side queries over conversion campaigns, as DataFrames for the CLI, the app and reports."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from db.models.experiments import Campaign, ConversionRun, ModelUnderTest


def campaign_summary(engine: Engine, campaign: str | None = None) -> pd.DataFrame:
    """Runs per campaign × converter × exporter × status (with the failing stage for failures)."""
    stmt = (
        select(Campaign.name.label("campaign"), ConversionRun.converter, ConversionRun.exporter,
               ConversionRun.status, func.count().label("runs"))
        .join(Campaign, Campaign.id == ConversionRun.campaign_id)
        .group_by(Campaign.name, ConversionRun.converter, ConversionRun.exporter, ConversionRun.status)
        .order_by(Campaign.name, ConversionRun.converter, ConversionRun.exporter, ConversionRun.status)
    )
    if campaign is not None:
        stmt = stmt.where(Campaign.name == campaign)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(stmt).mappings().all(), columns=["campaign", "converter", "exporter",
                                                                          "status", "runs"])


def runs_frame(engine: Engine, campaign: str | None = None) -> pd.DataFrame:
    """One row per conversion run with its model's source, node count and operators."""
    stmt = (
        select(ConversionRun.id.label("run_id"), Campaign.name.label("campaign"), ModelUnderTest.id.label("model_id"),
               ModelUnderTest.source, ModelUnderTest.framework, ModelUnderTest.name.label("model"),
               ModelUnderTest.node_count, ModelUnderTest.operators, ConversionRun.converter,
               ConversionRun.converter_version, ConversionRun.exporter, ConversionRun.opset,
               ConversionRun.input_seed, ConversionRun.status, ConversionRun.stage, ConversionRun.error_class,
               ConversionRun.message, ConversionRun.onnx_graph, ConversionRun.durations, ConversionRun.peak_rss_mb)
        .join(Campaign, Campaign.id == ConversionRun.campaign_id)
        .join(ModelUnderTest, ModelUnderTest.id == ConversionRun.model_id)
        .order_by(ConversionRun.id)
    )
    if campaign is not None:
        stmt = stmt.where(Campaign.name == campaign)
    with engine.connect() as conn:
        rows: list[Any] = list(conn.execute(stmt).mappings().all())
    return pd.DataFrame(rows, columns=list(stmt.selected_columns.keys()))
