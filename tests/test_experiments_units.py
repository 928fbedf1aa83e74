"""Fast checks of campaign building blocks: comparison numbers, exact re-judging, specs, registries, import rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.compare import RTOL_GRID, compare_output, output_passes, run_passes
from experiments.core import TensorSpec, model_key, seeded_inputs
from experiments.nnsmith_compat import invalidate_broken_probe_cache
from experiments.registry import Registry
from experiments.spec import SpecError, load_spec
from experiments.study_import import classify


def test_identical_outputs_have_zero_difference_and_pass() -> None:
    a = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    row = compare_output(a, a.copy(), atol=0.0, rtol=0.0)
    assert row["shape_match"] and row["dtype_match"]
    assert row["max_abs_diff"] == 0.0 and row["n_outside"] == 0
    assert output_passes(row, 0.0, 0.0)


def test_stored_numbers_rejudge_exactly_like_an_elementwise_check() -> None:
    rng = np.random.default_rng(7)
    ref = rng.standard_normal(200).astype(np.float32)
    got = (ref + rng.standard_normal(200) * 1e-4).astype(np.float32)
    row = compare_output(ref, got, atol=1e-4, rtol=1e-3)
    diff, mag = np.abs(ref.astype(np.float64) - got), np.abs(ref.astype(np.float64))
    for rtol in RTOL_GRID:
        for atol in (0.0, 1e-7, 1e-5, 1e-4, 3e-4, 1e-3):
            assert output_passes(row, atol, rtol) == bool(np.all(diff <= atol + rtol * mag)), (atol, rtol)
    assert row["n_outside"] == int((diff > 1e-4 + 1e-3 * mag).sum())
    with pytest.raises(ValueError, match="rtol"):
        output_passes(row, 1e-4, 0.123)


def test_shape_dtype_and_nonfinite_disagreements_fail_the_verdict() -> None:
    a = np.ones((2, 3), np.float32)
    assert not compare_output(a, np.ones((3, 2), np.float32), 1, 1)["shape_match"]
    assert not output_passes(compare_output(a, a.astype(np.float64), 1, 1), 1, 0)
    b = a.copy()
    b[0, 0] = np.nan
    row = compare_output(a, b, 1e-3, 0)
    assert row["onnx_nan"] == 1 and row["nonfinite_mismatch"] == 1 and not output_passes(row, 1.0, 0.0)
    both = compare_output(b, b.copy(), 0, 0)
    assert both["nonfinite_mismatch"] == 0 and output_passes(both, 0.0, 0.0)
    assert not run_passes([], 1.0, 0.0)


def test_seeded_inputs_are_reproducible_and_typed() -> None:
    specs = [TensorSpec("x", (2, 3), "float16"), TensorSpec("i", (4,), "int64"), TensorSpec("b", (), "bool")]
    one, two = seeded_inputs(specs, 3, 1), seeded_inputs(specs, 3, 1)
    assert all(np.array_equal(one[k], two[k]) for k in one)
    assert one["x"].dtype == np.float16 and one["i"].dtype == np.int64 and one["b"].dtype == np.bool_
    assert not np.array_equal(seeded_inputs(specs, 3, 2)["x"], one["x"])


def test_model_key_is_canonical() -> None:
    assert model_key("s", {"a": 1, "b": 2}) == model_key("s", {"b": 2, "a": 1}) != model_key("t", {"a": 1, "b": 2})


def test_spec_errors_name_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "campaign.toml"
    bad.write_text("[campaign]\nopsets = [3]\n")
    with pytest.raises(SpecError, match=r"campaign.toml: field 'opsets'"):
        load_spec(bad)
    bad.write_text("inputs_per_model = 0\n")
    with pytest.raises(SpecError, match="inputs_per_model"):
        load_spec(bad)
    with pytest.raises(SpecError, match="unknown preset"):
        load_spec(preset="huge")
    spec = load_spec(preset="quick", overrides={"workers": 1, "atol": None})
    assert spec.name == "quick" and spec.workers == 1 and spec.atol == 1e-4
    with pytest.raises(SpecError, match=r"field 'node_counts'.*at least 1"):
        load_spec(overrides={"node_counts": [5, -5]})
    with pytest.raises(SpecError, match=r"field 'seeds'.*negative"):
        load_spec(overrides={"seeds": [-1]})


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("sources = []\n", "field 'sources': must not be empty"),
        ("converters = []\n", "field 'converters': must not be empty"),
        ("opsets = []\n", "field 'opsets': must not be empty"),
        ("seeds = []\n", "field 'seeds': must not be empty"),
        ("memory_mb = -5\n", "field 'memory_mb': must be at least 0 MB (0: no limit) (got -5)"),
        ("timeout_s = 0\n", "field 'timeout_s': must be more than 0"),
        ("workers = 0\n", "field 'workers': must be at least 1"),
        ('opsets = ["17"]\n', "field 'opsets' item 1: Input should be a valid integer (got '17')"),
        ("opsets = [17, 17]\n", "field 'opsets': 17 is listed twice"),
        ('sources = ["nnsmith-torch", "nnsmith-torch"]\n', "'nnsmith-torch' is listed twice"),
        ('name = "my campaign"\n', "field 'name': must be letters, digits"),
        ('dask = "localhost"\n', "field 'dask': must be 'local' or a scheduler address"),
        ("atol = nan\n", "field 'atol'"),
        ('plugins = ["my plugins"]\n', "not a module name"),
        (
            '[campaign]\nsources = ["nnsmith-torch"]\n[campaign.source_options.keras-applications]\ninput_size = 64\n',
            "field 'source_options': 'keras-applications' is not one of the campaign's sources (nnsmith-torch)",
        ),
        ("colour = 1\n", "unknown field 'colour' (known: atol,"),
    ],
)
def test_the_whole_spec_is_checked_with_one_line_naming_the_field(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "campaign.toml"
    path.write_text(toml)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value), str(info.value)


def test_a_source_without_a_converter_of_its_framework_is_refused() -> None:
    from experiments.campaign import plan

    spec = load_spec(overrides={"sources": ["nnsmith-torch"], "converters": ["tf2onnx"]})
    with pytest.raises(SpecError, match=r"none converts source 'nnsmith-torch' \(torch models\).*torchscript"):
        plan(spec)


def test_registry_refuses_duplicates_and_names_known_plugins() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register("a", lambda: 1)
    with pytest.raises(ValueError):
        reg.register("a", lambda: 2)
    with pytest.raises(KeyError, match="known: a"):
        reg.get("b")
    assert reg.get("a") == 1


def test_broken_probe_caches_are_deleted_and_good_ones_kept(tmp_path: Path) -> None:
    (tmp_path / "TorchModelCPU_exportable.yaml").write_text("topset: {}\n")
    (tmp_path / "garbage.yaml").write_text("topset: [unclosed\n")
    good = tmp_path / "TFModelCPU_exportable.yaml"
    good.write_text("topset:\n  core.ReLU:\n    in_dtypes: [[float32]]\n    out_dtypes: [[float32]]\n")
    removed = invalidate_broken_probe_cache(tmp_path)
    assert sorted(p.name for p in removed) == ["TorchModelCPU_exportable.yaml", "garbage.yaml"]
    assert good.exists()


@pytest.mark.parametrize(
    ("message", "stage", "error_class"),
    [
        (
            "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for Tan(7) node",
            "ort_session",
            "onnxruntime.NOT_IMPLEMENTED",
        ),
        (
            "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Resize node.",
            "ort_run",
            "onnxruntime.FAIL",
        ),
        (
            "[ONNXRuntimeError] : 10 : INVALID_GRAPH : This is an invalid model.",
            "ort_session",
            "onnxruntime.INVALID_GRAPH",
        ),
        (
            "Value for attr 'T' of bool is not in the list of allowed values: half, float",
            "load",
            "framework.tensorflow",
        ),
        (
            "The serialized model is larger than the 2GiB limit imposed by the protobuf library.",
            "export",
            "converter.protobuf_limit",
        ),
        ("b''", "export", "converter.silent_exit"),
    ],
)
def test_study_failure_messages_are_classified_by_stage(message: str, stage: str, error_class: str) -> None:
    assert classify(message) == (stage, error_class)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.123, "0.12 s"), (1.23, "1.2 s"), (42.4, "42 s"), (184, "3 min 4 s"), (120, "2 min"), (7500, "2 h 5 min")],
)
def test_durations_read_at_a_glance(seconds: float, shown: str) -> None:
    from explorer.formatting import format_duration

    assert format_duration(seconds) == shown


def test_missing_values_read_as_a_dash() -> None:
    import pandas as pd

    from explorer.formatting import dashed, format_duration

    assert format_duration(None) == format_duration(float("nan")) == "—"
    frame = dashed(pd.DataFrame({"n": [5.0, None], "name": ["a", None], "ok": [1, 2]}))
    assert frame.to_dict("list") == {"n": ["5", "—"], "name": ["a", "—"], "ok": [1, 2]}
