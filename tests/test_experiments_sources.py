"""Model sources through real isolated workers (no database): reload fidelity and real architectures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from experiments.campaign import plan
from experiments.isolation import WorkerOptions, WorkerPool
from experiments.messages import Event, ModelEvent, RunEvent
from experiments.spec import load_spec


def _jobs(tmp_path: Path, **overrides: Any) -> list[dict[str, Any]]:
    spec = load_spec(overrides={"inputs_per_model": 1, **overrides})
    return [
        {
            "source": p["source"],
            "framework": p["framework"],
            "params": p["params"],
            "model_id": i,
            "model_dir": str(tmp_path / p["model_key"][:16]),
            "atol": spec.atol,
            "rtol": spec.rtol,
            "runs": p["runs"],
            "content_hash": None,
            "location": None,
        }
        for i, p in enumerate(plan(spec))
    ]


def _run(jobs: list[dict[str, Any]], tmp_path: Path) -> list[Event]:
    events: list[Event] = []
    with WorkerPool(2, WorkerOptions(timeout_s=300, memory_mb=6000, log_dir=str(tmp_path / "logs"))) as pool:
        pool.run(jobs, events.append)
    return events


@pytest.mark.slow
def test_nnsmith_models_reload_from_their_files_with_the_same_hash_and_results(tmp_path: Path) -> None:
    jobs = _jobs(
        tmp_path,
        sources=["nnsmith-torch", "nnsmith-tensorflow"],
        seeds=[3],
        node_counts=[8],
        converters=["torch.onnx-torchscript", "tf2onnx"],
    )
    first = _run(jobs, tmp_path)
    infos = {e.job["model_id"]: e.info for e in first if isinstance(e, ModelEvent)}
    assert len(infos) == 2 and all(i.durations.get("generate") for i in infos.values())
    reload_jobs = [
        {**j, "content_hash": infos[j["model_id"]].content_hash, "location": infos[j["model_id"]].location}
        for j in jobs
    ]
    second = _run(reload_jobs, tmp_path)
    again = {e.job["model_id"]: e.info for e in second if isinstance(e, ModelEvent)}
    for key, info in infos.items():
        assert again[key].content_hash == info.content_hash and "load" in again[key].durations

    def outputs(events: list[Event]) -> dict[Any, Any]:
        return {
            e.job["model_id"]: [(o["max_abs_diff"], o["ref_shape"]) for o in e.result.outputs]
            for e in events
            if isinstance(e, RunEvent)
        }

    assert outputs(first) == outputs(second)


@pytest.mark.slow
def test_real_architectures_build_offline_and_convert(tmp_path: Path) -> None:
    jobs = _jobs(
        tmp_path,
        sources=["transformers-torch", "keras-applications"],
        converters=["torch.onnx-torchscript", "tf2onnx"],
        source_options={
            "transformers-torch": {"archs": ["bert"]},
            "keras-applications": {"archs": ["MobileNetV3Small"], "input_size": 64},
        },
    )
    events = _run(jobs, tmp_path)
    runs = {(e.job["params"]["arch"], e.run["exporter"]): e.result for e in events if isinstance(e, RunEvent)}
    assert set(runs) == {("bert", "torchscript"), ("MobileNetV3Small", "from_keras")}
    for result in runs.values():
        assert result.outcome.judged and result.stage is None, result.message
        assert all(o["shape_match"] and o["max_abs_diff"] < 1e-3 for o in result.outputs)


SAME_SEED = """
import sys, tempfile
from pathlib import Path
from experiments.sources import SOURCES
from experiments.worker import preload

src = SOURCES.get(sys.argv[1])
preload([src.framework], 1)  # as a worker is set up (nnsmith's patches included)
out = Path(tempfile.mkdtemp())
params = lambda seed: {"generator": "nnsmith", "method": "symbolic-cinit", "max_nodes": 10, "seed": seed}
first = src.build(params(7), out / "first").content_hash
for seed in (1, 2, 3):
    src.build(params(seed), out / f"other-{seed}")
print(first, src.build(params(7), out / "again").content_hash)
"""


@pytest.mark.slow
@pytest.mark.parametrize("source", ["nnsmith-torch", "nnsmith-tensorflow"])
def test_a_seed_builds_the_same_model_whatever_the_process_built_before(source: str) -> None:
    """A worker generates many models; z3 (shapes) and Keras (weights) must not carry one into the next. A fresh
    interpreter, so that the first build really is the process's first."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", SAME_SEED, source], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    first, again = done.stdout.split()[-2:]
    assert again == first
