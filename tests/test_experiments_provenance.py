"""Runs record what really happened: the produced model's opset/IR/producer read from the file, the converter's
registry name and every resolved parameter; `experiment repro` re-runs exactly one run (both databases)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import onnx
import pytest
from sqlmodel import Session, select

import tests.support.fault_sources  # noqa: F401  (registers the fault-* plug-ins in this process)
from db.models.experiments import ConversionRun, ModelUnderTest
from db.queries.experiments import opset_changes, outcome_rates
from experiments.campaign import model_dir, run_campaign
from experiments.repro import ReproError, recipe
from experiments.spec import load_spec

FAULTS = "tests.support.fault_sources"


def _spec(**overrides: Any):  # type: ignore[no-untyped-def]
    base = {
        "name": "prov",
        "sources": ["fault-none"],
        "converters": ["torch.onnx-torchscript"],
        "seeds": [0],
        "inputs_per_model": 2,
        "workers": 1,
        "timeout_s": 120,
        "memory_mb": 4000,
        "plugins": [FAULTS],
    }
    return load_spec(overrides={**base, **overrides})


def _rows(engine) -> dict[tuple[str, str, int], tuple[ConversionRun, ModelUnderTest]]:  # type: ignore[no-untyped-def]
    """(model name, registry name, requested opset) -> (run, model)."""
    with Session(engine) as s:
        rows = s.exec(select(ConversionRun, ModelUnderTest).join(ModelUnderTest)).all()
    return {(m.name, r.registry_name, r.opset): (r, m) for r, m in rows}


@pytest.mark.slow
def test_runs_record_what_the_produced_model_says_and_keep_it(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = _spec(
        sources=["fault-none", "fault-segv"],
        converters=["torch.onnx-torchscript", "fault-fixed-opset", "fault-garbage-onnx"],
        opsets=[14],
    )
    result = run_campaign(engine, spec, tmp_path)
    assert result.opset_changes == {("fault-fixed-opset", 14, 18): 1}
    rows = _rows(engine)
    assert len(rows) == 6

    run, model = rows[("fault-none-at-export", "torch.onnx-torchscript", 14)]
    assert run.status == "passed" and (run.produced_opset, run.onnx_producer) == (14, "pytorch")
    assert run.onnx_ir_version and run.onnx_producer_version == run.converter_version.split("+")[0]
    kept = onnx.load(run.onnx_path)  # the file is the model the run checked
    assert {o.domain: o.version for o in kept.opset_import}[""] == 14
    assert (
        Path(run.onnx_path).parent
        == model_dir(tmp_path, {"source": "fault-none", "model_key": model.model_key}) / "onnx"
    )
    assert run.parameters == {
        "registry_name": "torch.onnx-torchscript",
        "converter_module": "experiments.converters.torch_onnx",
        "converter": "torch.onnx",
        "converter_version": run.converter_version,
        "exporter": "torchscript",
        "opset": 14,
        "input_seed": 0,
        "n_inputs": 2,
        "atol": spec.atol,
        "rtol": spec.rtol,
        "runtime": "onnxruntime-cpu",
        "plugins": [FAULTS],
        "timeout_s": 120.0,
        "memory_mb": 4000,
    }
    assert model.resolved_params == {
        "source": "fault-none",
        "module": FAULTS,
        "framework": "torch",
        "kind": "torch_module",
        "params": {"at": "export", "seed": 0},
        "settings": {},
    }

    moved, _ = rows[("fault-none-at-export", "fault-fixed-opset", 14)]
    assert (moved.status, moved.opset, moved.produced_opset) == ("passed", 14, 18)
    assert moved.converter == "torch.onnx" and moved.exporter == "fixed-opset-18"  # the registry name is kept apart

    garbage, _ = rows[("fault-none-at-export", "fault-garbage-onnx", 14)]
    assert (garbage.status, garbage.stage, garbage.produced_opset) == ("failed", "onnx_check", None)
    assert "DecodeError" in (garbage.error_class or "") and Path(garbage.onnx_path or "").read_bytes().startswith(
        b"this"
    )

    for name in ("torch.onnx-torchscript", "fault-fixed-opset"):  # both trace the model, which segfaults
        crash, _ = rows[("fault-segv-at-export", name, 14)]
        assert (crash.status, crash.stage) == ("crash", "export") and "SIGSEGV" in (crash.message or "")
        assert crash.peak_rss_mb and crash.peak_rss_mb > 50  # the last sample before it died, not 0.0
        assert crash.produced_opset is None and crash.onnx_path is None

    rates = outcome_rates(engine, "prov")
    fixed = rates[rates["exporter"] == "fixed-opset-18"].set_index("produced_opset")
    assert fixed.loc[18, "requested_opsets"] == "14" and fixed.loc[18, "passed"] == 1
    assert opset_changes(engine, "prov")[["converter", "requested_opset", "produced_opset"]].values.tolist() == [
        ["fault-fixed-opset", 14, 18]
    ]


@pytest.mark.slow
def test_dynamo_asked_for_a_low_opset_records_the_opset_it_really_produced(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """torch 2.13's dynamo exporter has no implementations below opset 18: asked for 11 it produces 18."""
    spec = _spec(
        sources=["fault-none", "transformers-torch"],
        converters=["torch.onnx-dynamo", "torch.onnx-torchscript"],
        opsets=[11, 17],
        inputs_per_model=1,
        timeout_s=300,
        memory_mb=6000,
        source_options={"transformers-torch": {"archs": ["gpt2"]}},
    )
    run_campaign(engine, spec, tmp_path)
    rows = _rows(engine)
    low, _ = rows[("fault-none-at-export", "torch.onnx-dynamo", 11)]
    assert (low.status, low.opset, low.produced_opset) == ("passed", 11, 18)
    gpt2_low, _ = rows[("gpt2-s0", "torch.onnx-dynamo", 11)]
    assert (gpt2_low.opset, gpt2_low.produced_opset) == (11, 18) and gpt2_low.onnx_ir_version
    script, _ = rows[("fault-none-at-export", "torch.onnx-torchscript", 11)]
    assert (script.status, script.produced_opset) == ("passed", 11)  # TorchScript gives what it is asked
    # gpt2 at 17: converted down to 17, yet an opset-18 Split attribute is left: the checker rejects it
    gpt2_17, _ = rows[("gpt2-s0", "torch.onnx-dynamo", 17)]
    assert (gpt2_17.status, gpt2_17.stage, gpt2_17.produced_opset) == ("failed", "onnx_check", 17)
    assert "Split" in (gpt2_17.message or "")

    rates = outcome_rates(engine, "prov", by=("converter", "exporter", "produced_opset"))
    dynamo = rates[rates["exporter"] == "dynamo"].set_index("produced_opset")
    assert dynamo.loc[18, "requested_opsets"] == "11" and dynamo.loc[18, "runs"] == 2
    assert 11 not in dynamo.index  # no dynamo run is analysed at the opset it was merely asked for


# -- repro -------------------------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """INTEROP_DATA_DIR for the CLI: model and ONNX files of the commands run here go under tmp_path."""
    monkeypatch.setenv("INTEROP_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _repro(cli, run_id: int, out: Path) -> tuple[Any, dict[str, Any], dict[str, Any]]:  # type: ignore[no-untyped-def]
    result = cli("experiment", "repro", str(run_id), "--out", str(out))
    assert f"equivalent command: interop experiment run {out / 'campaign.toml'}" in result.output, result.output
    spec = tomllib.loads((out / "campaign.toml").read_text())["campaign"]
    return result, spec, json.loads((out / "result.json").read_text())


def _only_run(engine) -> ConversionRun:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        runs = list(s.exec(select(ConversionRun)).all())
    assert len(runs) == 1
    return runs[0]


@pytest.mark.slow
def test_repro_of_an_nnsmith_run_reruns_it_and_its_command_stores_the_same_run(
    cli, engine, tmp_path: Path, data_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    spec = _spec(name="nn", sources=["nnsmith-torch"], node_counts=[5], plugins=[], opsets=[17])
    run_campaign(engine, spec, data_dir)
    original = _only_run(engine)
    result, toml, details = _repro(cli, int(original.id or 0), tmp_path / "r")
    assert result.exit_code == 0 and f"same outcome ({original.status})" in result.output
    with Session(engine) as s:
        model = s.get(ModelUnderTest, original.model_id)
    assert toml["sources"] == ["nnsmith-torch"] and toml["converters"] == ["torch.onnx-torchscript"]
    assert toml["source_options"] == {"nnsmith-torch": {"params": [model.params]}}  # type: ignore[union-attr]
    assert (toml["opsets"], toml["input_seeds"], toml["inputs_per_model"]) == ([17], [0], 2)
    assert details["now"]["model_hash"] == original.model_hash  # the very model, loaded from its files
    assert details["now"]["produced_opset"] == original.produced_opset == 17
    assert Path(details["now"]["onnx_path"]).parent == tmp_path / "r"

    again = cli("experiment", "run", str(tmp_path / "r" / "campaign.toml"))
    assert again.exit_code == 0, again.output
    with Session(engine) as s:
        runs = list(s.exec(select(ConversionRun).order_by(ConversionRun.id)).all())
    assert len(runs) == 2
    key = ("model_id", "registry_name", "converter_version", "exporter", "opset", "input_seed", "n_inputs", "status")
    assert [getattr(runs[1], k) for k in key] == [getattr(original, k) for k in key]


@pytest.mark.slow
def test_repro_of_a_real_architecture_run_rebuilds_that_one_architecture_at_its_size(
    cli, engine, tmp_path: Path, data_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    spec = _spec(
        name="real",
        sources=["keras-applications"],
        converters=["tf2onnx"],
        opsets=[17],
        inputs_per_model=1,
        plugins=[],
        timeout_s=300,
        memory_mb=6000,
        source_options={"keras-applications": {"archs": ["MobileNetV3Small"], "input_size": 64}},
    )
    run_campaign(engine, spec, data_dir)
    original = _only_run(engine)
    shown = cli("experiment", "repro", str(original.id), "--show")
    assert shown.exit_code == 0
    params = tomllib.loads(shown.output)["campaign"]["source_options"]["keras-applications"]["params"]
    assert [(p["arch"], p["input_size"], p["seed"]) for p in params] == [("MobileNetV3Small", 64, 0)]
    result, _toml, details = _repro(cli, int(original.id or 0), tmp_path / "r")
    assert result.exit_code == 0, result.output
    assert details["now"]["status"] == original.status and details["now"]["model_hash"] == original.model_hash
    assert details["now"]["produced_opset"] == original.produced_opset == 17


@pytest.mark.slow
def test_repro_of_a_plugin_run_names_its_plugins_and_registered_converter(
    cli, engine, tmp_path: Path, data_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    run_campaign(engine, _spec(name="plug", converters=["fault-fixed-opset"], opsets=[12]), data_dir)
    original = _only_run(engine)
    result, toml, details = _repro(cli, int(original.id or 0), tmp_path / "r")
    assert result.exit_code == 0, result.output
    assert toml["plugins"] == [FAULTS] and toml["converters"] == ["fault-fixed-opset"]
    assert toml["source_options"] == {"fault-none": {"params": [{"at": "export", "seed": 0}]}}
    assert details["now"]["produced_opset"] == 18 and details["now"]["status"] == "passed"

    # A run stored before registry names and parameters were: a plug-in converter cannot be guessed.
    with Session(engine) as s:
        row = s.get(ConversionRun, original.id)
        row.registry_name, row.parameters = None, None  # type: ignore[union-attr]
        s.add(row)
        s.commit()
    refused = cli("experiment", "repro", str(original.id))
    assert refused.exit_code == 2 and "no built-in converter" in refused.output
    missing = cli("experiment", "repro", "999999")
    assert missing.exit_code == 2 and "no conversion run with id 999999" in missing.output


def test_recipe_of_an_old_built_in_run_says_what_it_cannot_know() -> None:
    detail = {
        "run": {
            "id": 7,
            "converter": "torch.onnx",
            "exporter": "dynamo",
            "converter_version": "2.13.0+cpu",
            "opset": 11,
            "input_seed": 3,
            "n_inputs": 2,
            "status": "passed",
            "atol": 1e-5,
            "rtol": 0.0,
        },
        "model": {"source": "keras-applications", "name": "m", "params": {"arch": "ResNet50", "input_size": 64}},
        "campaign": {"kind": "live", "name": "old", "spec": {"atol": 1e-5, "rtol": 0.0}},
    }
    rec = recipe(detail)
    assert rec.spec.converters == ["torch.onnx-dynamo"] and rec.spec.opsets == [11] and rec.spec.input_seeds == [3]
    assert rec.spec.source_options == {"keras-applications": {"params": [{"arch": "ResNet50", "input_size": 64}]}}
    assert (rec.spec.atol, rec.spec.rtol, rec.spec.plugins) == (1e-5, 0.0, [])
    assert any("before runs recorded their parameters" in n for n in rec.notes)
    with pytest.raises(ReproError, match="historical import"):
        recipe({**detail, "campaign": {"kind": "historical", "name": "study"}})
