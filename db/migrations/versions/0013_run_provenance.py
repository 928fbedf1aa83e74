"""run provenance: the opset, IR version and producer of the ONNX model a run really produced, the converter's
registry name, the run's resolved parameters, and the model's resolved build parameters

Revision ID: 0013_run_provenance
Revises: 0012_adjudication_history
Create Date: 2026-11-29 20:30:00.000000

Existing runs: the produced model's fields are read from the kept ONNX file where there is one
(`<model location>/onnx/<registry name>-<converter version>-opset<N>.onnx`) and stay NULL — explicitly
unknown — where there is none (runs stored before files were kept, historical imports, failed exports). The
registry name is filled in for built-in converters when the run's campaign spec lists that name; the resolved
parameters of older runs and models were never recorded and stay NULL.
"""

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op

import db.types

revision: str = "0013_run_provenance"
down_revision: str | Sequence[str] | None = "0012_adjudication_history"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_BREAKDOWN = ["converter", "exporter", "node_count", "opset", "status", "campaign_id"]
NEW_BREAKDOWN = ["converter", "exporter", "node_count", "produced_opset", "opset", "status", "campaign_id"]
#: (converter, exporter) -> registry name of the built-in converters at this revision
BUILT_IN = {
    ("torch.onnx", "torchscript"): "torch.onnx-torchscript",
    ("torch.onnx", "dynamo"): "torch.onnx-dynamo",
    ("tf2onnx", "from_keras"): "tf2onnx",
    ("tf2onnx", "from_function"): "tf2onnx",
}


def upgrade() -> None:
    with op.batch_alter_table("conversion_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("registry_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("produced_opset", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("onnx_ir_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("onnx_producer", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("onnx_producer_version", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.add_column(sa.Column("onnx_path", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))
        batch_op.add_column(sa.Column("parameters", db.types.JSONType, nullable=True))
        batch_op.drop_index("ix_conversion_run_breakdown")
        batch_op.create_index("ix_conversion_run_breakdown", NEW_BREAKDOWN, unique=False)
    with op.batch_alter_table("model", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resolved_params", db.types.JSONType, nullable=True))
    bind = op.get_bind()
    _registry_names(bind)
    _produced_models(bind)


def _registry_names(bind: Any) -> None:
    """Built-in converters' registry names, where the run's own campaign spec lists them."""
    campaigns = bind.execute(sa.text("SELECT id, spec FROM campaign WHERE kind = 'live'")).all()
    for campaign_id, spec in campaigns:
        listed = set((_json(spec) or {}).get("converters") or [])
        for (converter, exporter), name in BUILT_IN.items():
            if name in listed:
                bind.execute(
                    sa.text(
                        "UPDATE conversion_run SET registry_name = :name WHERE campaign_id = :c "
                        "AND converter = :conv AND exporter = :exp AND registry_name IS NULL"
                    ),
                    {"name": name, "c": campaign_id, "conv": converter, "exp": exporter},
                )


def _file_name(registry_name: str, version: str, opset: int) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", f"{registry_name}-{version}-opset{opset}") + ".onnx"


def _produced_models(bind: Any) -> None:
    """Opset, IR version and producer read from each run's kept ONNX file (NULL where there is none)."""
    models = bind.execute(sa.text("SELECT id, location FROM model WHERE location IS NOT NULL")).all()
    for model_id, location in models:
        folder = Path(location) / "onnx"
        if not folder.is_dir():  # nothing kept for this model: its runs stay unknown
            continue
        runs = bind.execute(
            sa.text(
                "SELECT id, registry_name, converter_version, opset FROM conversion_run "
                "WHERE model_id = :m AND registry_name IS NOT NULL"
            ),
            {"m": model_id},
        ).all()
        for run_id, name, version, opset in runs:
            path = folder / _file_name(name, version, int(opset))
            found = _read(path)
            if found is None:
                continue
            bind.execute(
                sa.text(
                    "UPDATE conversion_run SET produced_opset = :opset, onnx_ir_version = :ir, "
                    "onnx_producer = :name, onnx_producer_version = :version, onnx_path = :path WHERE id = :id"
                ),
                {**found, "path": str(path)[:500], "id": run_id},
            )


def _read(path: Path) -> dict[str, Any] | None:
    """The provenance fields of an ONNX file, or None when it is missing or not a readable model."""
    if not path.is_file():
        return None
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # a damaged file says nothing about what was produced
        return None
    opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        return None
    return {
        "opset": opset,
        "ir": int(model.ir_version) or None,
        "name": (model.producer_name or None) and model.producer_name[:100],
        "version": (model.producer_version or None) and model.producer_version[:64],
    }


def _json(value: Any) -> Any:
    if isinstance(value, str):
        import json

        return json.loads(value)
    return value


def downgrade() -> None:
    with op.batch_alter_table("model", schema=None) as batch_op:
        batch_op.drop_column("resolved_params")
    with op.batch_alter_table("conversion_run", schema=None) as batch_op:
        batch_op.drop_index("ix_conversion_run_breakdown")
        batch_op.create_index("ix_conversion_run_breakdown", OLD_BREAKDOWN, unique=False)
        batch_op.drop_column("parameters")
        batch_op.drop_column("onnx_path")
        batch_op.drop_column("onnx_producer_version")
        batch_op.drop_column("onnx_producer")
        batch_op.drop_column("onnx_ir_version")
        batch_op.drop_column("produced_opset")
        batch_op.drop_column("registry_name")
