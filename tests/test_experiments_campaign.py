"""Campaigns end to end on both databases: real nnsmith models, real converters, real onnxruntime, real workers."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import func, select
from sqlmodel import Session

import tests.support.fault_sources  # noqa: F401  (registers the fault-* sources in this process)
from db.engine import make_engine
from db.models.experiments import Campaign, ConversionRun, ModelUnderTest, RunOutput
from db.models.ingest import IngestRun
from experiments.campaign import plan, run_campaign
from experiments.messages import Event, RunEvent
from experiments.rescore import rescore
from experiments.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
FAULTS = "tests.support.fault_sources"


def _spec(**overrides: Any):  # type: ignore[no-untyped-def]
    base = {
        "name": "t",
        "sources": ["nnsmith-torch"],
        "converters": ["torch.onnx-torchscript"],
        "node_counts": [5],
        "seeds": [0],
        "inputs_per_model": 2,
        "workers": 2,
        "timeout_s": 60,
        "memory_mb": 3000,
    }
    return load_spec(overrides={**base, **overrides})


def _runs(engine) -> list[ConversionRun]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return list(s.exec(select(ConversionRun).order_by(ConversionRun.id)).scalars())


def _keys(runs: list[ConversionRun]) -> list[tuple[Any, ...]]:
    return [(r.model_id, r.converter, r.converter_version, r.exporter, r.opset, r.input_seed) for r in runs]


@pytest.mark.slow
def test_small_campaign_stores_models_runs_and_raw_outputs_then_resumes_as_a_no_op(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = _spec(
        sources=["nnsmith-torch", "nnsmith-tensorflow"],
        seeds=[0, 1],
        converters=["torch.onnx-torchscript", "torch.onnx-dynamo", "tf2onnx"],
        source_options={"nnsmith-tensorflow": {"seeds": [0]}},
    )
    result = run_campaign(engine, spec, tmp_path)
    assert result.planned_runs == 2 * 2 + 1 and result.skipped_runs == 0
    runs = _runs(engine)
    assert len(runs) == 5 and len(set(_keys(runs))) == 5
    with Session(engine) as s:
        models = list(s.exec(select(ModelUnderTest)).scalars())
        outputs = list(s.exec(select(RunOutput)).scalars())
        ingest = list(s.exec(select(IngestRun).where(IngestRun.kind == "experiment-campaign")).scalars())
    assert {m.framework for m in models} == {"torch", "tensorflow"}
    for m in models:
        assert m.content_hash and m.operators and m.location and Path(m.location).is_dir()
        assert m.node_count == 5 and m.seed in (0, 1)
    for run in runs:
        assert run.status in ("passed", "mismatch", "failed"), (run.status, run.message)
        if run.status in ("passed", "mismatch"):
            mine = [o for o in outputs if o.run_id == run.id]
            assert {o.input_index for o in mine} == {0, 1}  # K = 2 inputs, each output compared
            assert run.onnx_graph and run.durations["export"] > 0 and run.atol == spec.atol
        else:
            assert run.stage and run.error_class and run.message
    assert ingest and ingest[0].status == "ok" and ingest[0].counts["planned_runs"] == 5

    again = run_campaign(engine, spec, tmp_path)
    assert again.skipped_runs == 5 and again.counts == {}
    assert _keys(_runs(engine)) == _keys(runs)

    # Re-judge at zero tolerance from the stored numbers and check against the raw columns directly.
    counts = rescore(engine, atol=0.0, rtol=0.0)
    with Session(engine) as s:
        for run in s.exec(select(ConversionRun).where(ConversionRun.status.in_(["passed", "mismatch"]))).scalars():
            rows = list(s.exec(select(RunOutput).where(RunOutput.run_id == run.id)).scalars())
            exact = all(
                o.shape_match and o.dtype_match and o.nonfinite_mismatch == 0 and (o.max_abs_diff or 0) == 0
                for o in rows
            )
            assert run.status == ("passed" if exact else "mismatch") and run.atol == 0.0
    assert counts["judged"] == counts["passed"] + counts["mismatch"] > 0


def test_campaigns_with_overlapping_plans_each_store_their_own_runs_and_resume_only_their_own(
    engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    first = _spec(name="first", workers=1, inputs_per_model=1)
    second = first.model_copy(update={"name": "second", "seeds": [0, 1]})  # model seed 0 is in both plans
    assert sum(run_campaign(engine, first, tmp_path).counts.values()) == 1
    result = run_campaign(engine, second, tmp_path)
    assert (result.planned_runs, result.skipped_runs, sum(result.counts.values())) == (2, 0, 2)
    runs = _runs(engine)
    per_campaign = Counter(r.campaign_id for r in runs)
    assert sorted(per_campaign.values()) == [1, 2]
    shared = [k for k, n in Counter(_keys(runs)).items() if n > 1]
    assert len(shared) == 1  # the same model, converter, opset and seed: stored once for each campaign

    for spec in (first, second):  # re-running either stores nothing new
        again = run_campaign(engine, spec, tmp_path)
        assert again.skipped_runs == again.planned_runs and again.counts == {}
    assert [r.id for r in _runs(engine)] == [r.id for r in runs]


@pytest.mark.slow
def test_segfault_hang_and_memory_blowup_are_recorded_and_the_campaign_finishes(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = _spec(
        sources=["fault-abort", "fault-hang", "fault-oom", "nnsmith-torch"],
        plugins=[FAULTS],
        timeout_s=6,
        memory_mb=1500,
        source_options={"fault-abort": {"at": ["generate", "export"]}},
    )
    result = run_campaign(engine, spec, tmp_path)
    assert result.replaced_workers == 4
    with Session(engine) as s:
        rows = s.exec(
            select(ModelUnderTest.name, ConversionRun.status, ConversionRun.stage, ConversionRun.message).join(
                ModelUnderTest, ModelUnderTest.id == ConversionRun.model_id
            )
        ).all()
    by_model = {name: (status, stage, msg) for name, status, stage, msg in rows}
    assert by_model["fault-abort-at-generate"][:2] == ("crash", "generate")
    assert "SIGABRT" in by_model["fault-abort-at-generate"][2]
    assert by_model["fault-abort-at-export"][:2] == ("crash", "export")
    assert by_model["fault-hang-at-export"][:2] == ("timeout", "export")
    assert by_model["fault-oom-at-export"][:2] == ("oom", "export")
    assert by_model["nnsmith-torch-n5-s0"][0] in ("passed", "mismatch")


@pytest.mark.slow
def test_kill_minus_9_of_the_driver_then_rerun_completes_without_duplicates(
    engine, db_url: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    args = [
        "--name",
        "resume",
        "--sources",
        "nnsmith-torch",
        "--converters",
        "torch.onnx-torchscript,torch.onnx-dynamo",
        "--node-counts",
        "5",
        "--seeds",
        "0,1,2,3,4,5",
        "--inputs",
        "1",
        "--workers",
        "1",
    ]
    env = {**os.environ, "INTEROP_DATABASE_URL": db_url, "INTEROP_DATA_DIR": str(tmp_path)}
    driver = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "experiment", "run", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    stored = 0
    while time.monotonic() < deadline and driver.poll() is None:
        with Session(engine) as s:
            stored = s.exec(select(func.count()).select_from(ConversionRun)).scalar_one()
        if stored >= 2:
            break
        time.sleep(0.2)
    assert driver.poll() is None, "the driver finished before it could be killed"
    workers = psutil.Process(driver.pid).children(recursive=True)
    assert workers, "the driver should have started a worker"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    _gone, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, "workers must not outlive a killed driver"
    with Session(engine) as s:
        partial = s.exec(select(func.count()).select_from(ConversionRun)).scalar_one()
    assert 2 <= partial < 12
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "experiment", "run", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{partial} already done" in " ".join(done.stdout.split())
    runs = _runs(engine)
    assert len(runs) == 12 and len(set(_keys(runs))) == 12


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_rows_as_the_local_pool(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from db.migrate import upgrade

    local_url = f"sqlite:///{tmp_path / 'local.db'}"
    upgrade(local_url)
    local = make_engine(local_url)
    spec = _spec(seeds=[0, 1], converters=["torch.onnx-torchscript", "torch.onnx-dynamo"])
    run_campaign(local, spec, tmp_path / "a")
    run_campaign(engine, spec.model_copy(update={"dask": "local"}), tmp_path / "b")

    def rows(eng) -> set[tuple[Any, ...]]:  # type: ignore[no-untyped-def]
        with Session(eng) as s:
            out = s.exec(
                select(
                    ModelUnderTest.model_key,
                    ModelUnderTest.content_hash,
                    ConversionRun.converter,
                    ConversionRun.exporter,
                    ConversionRun.opset,
                    ConversionRun.status,
                    RunOutput.input_index,
                    RunOutput.output_index,
                    RunOutput.max_abs_diff,
                )
                .join(ConversionRun, ConversionRun.model_id == ModelUnderTest.id)
                .join(RunOutput, RunOutput.run_id == ConversionRun.id, isouter=True)
            ).all()
        return {tuple(r) for r in out}

    assert rows(local) == rows(engine) and len(rows(engine)) >= 4
    local.dispose()


def _expected_study_counts(directory: Path) -> Counter[tuple[str, str]]:
    """Outcome per converter straight from the JSON files, as the study recorded them."""
    counts: Counter[tuple[str, str]] = Counter()
    for fw, converter in (("torch", "torch.onnx"), ("tensorflow", "tf2onnx")):
        for path in sorted((directory / fw).glob("*.json")):
            for rec in json.loads(path.read_text()):
                if rec["result"] == 1:
                    outcome = "timeout" if rec.get("hang") else "failed"
                elif fw == "torch":
                    outcome = "mismatch" if rec["mismatch"] else "passed"
                else:
                    mad = float(rec["mad"])
                    outcome = "passed" if math.isfinite(mad) and mad <= 1e-5 else "mismatch"
                counts[(converter, outcome)] += 1
    return counts


def _finished_at(engine) -> Any:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return s.exec(select(Campaign.finished_at).where(Campaign.name == "study-exporter-results")).scalar_one()


def test_study_results_import_counts_per_converter_and_outcome(cli, engine, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    directory = shared_dir / "data/paper-artifact/synthetic-models/exporter_test_results"
    result = cli("experiment", "import-results", str(directory))
    assert result.exit_code == 0, result.output
    with Session(engine) as s:
        got = Counter(
            {
                (c, st): n
                for c, st, n in s.exec(
                    select(ConversionRun.converter, ConversionRun.status, func.count()).group_by(
                        ConversionRun.converter, ConversionRun.status
                    )
                ).all()
            }
        )
        stages = dict(
            s.exec(
                select(ConversionRun.stage, func.count())
                .where(ConversionRun.status == "failed")
                .group_by(ConversionRun.stage)
            ).all()
        )
    assert got == _expected_study_counts(directory)
    assert stages["ort_session"] > stages["ort_run"] > 0 and stages["load"] > 0
    finished = _finished_at(engine)
    again = cli("experiment", "import-results", str(directory))
    assert again.exit_code == 0
    assert f"nothing new: {sum(got.values()):,} runs already stored in campaign" in again.output
    assert "0 new" not in again.output and _finished_at(engine) == finished  # the campaign did not change
    status = cli("experiment", "status")
    assert f"study-exporter-results (historical): {sum(got.values())}/{sum(got.values())} runs" in status.output
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(ConversionRun)).scalar_one() == sum(got.values())


def test_a_bad_results_file_is_one_error_line_and_nothing_is_written(cli, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "torch_symbolic-cinit_opset_16_5.json").write_text(
        json.dumps([{"model": "m1", "result": 0, "mismatch": False}, {"model": "m2"}])
    )
    result = cli("experiment", "import-results", str(tmp_path))
    assert result.exit_code == 2 and "record 1: field 'result' is missing" in result.output
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(ConversionRun)).scalar_one() == 0


def test_results_one_folder_too_high_point_to_the_right_one(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "exporter_test_results" / "torch").mkdir(parents=True)
    result = cli("experiment", "import-results", str(tmp_path))
    assert result.exit_code == 2 and f"did you mean {tmp_path / 'exporter_test_results'}?" in result.output


def test_run_without_a_spec_is_a_user_error(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("experiment", "run")
    assert result.exit_code == 2 and "--preset quick" in result.output
    bad = cli("experiment", "run", "--sources", "no-such-source")
    assert bad.exit_code == 2 and "unknown source 'no-such-source'" in bad.output
    rescored = cli("experiment", "rescore", "--atol", "1e-7", "--rtol", "0")
    assert rescored.exit_code == 0 and "re-judged 0 runs" in rescored.output
    assert cli("experiment", "status").exit_code == 0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--sources", "no-such-source"], "unknown source 'no-such-source'"),
        (["--converters", "no-such-converter"], "unknown converter 'no-such-converter'"),
        (
            ["--sources", "nnsmith-tensorflow", "--converters", "torch.onnx-torchscript"],
            "none converts source 'nnsmith-tensorflow'",
        ),
        (["--plugins", "no_such_plugin_module"], "cannot import 'no_such_plugin_module'"),
        (["--name", "taken"], "campaign 'taken' exists with a different spec"),
    ],
)
def test_a_spec_that_cannot_run_is_one_error_line_before_any_output(
    cli, engine, args: list[str], fragment: str
) -> None:  # type: ignore[no-untyped-def]
    from experiments.store import CampaignStore
    from tests.test_cli_errors import assert_one_error_line

    CampaignStore(engine).campaign("taken", {"another": "spec"}, {})
    result = cli("experiment", "run", "--name", "new", "--sources", "nnsmith-torch", "--seeds", "0", *args)
    assert result.exit_code == 2
    assert_one_error_line(result.output, fragment)  # no campaign header or progress line before it
    with Session(engine) as s:
        assert s.exec(select(Campaign.name)).scalars().all() == ["taken"]


def test_plan_pairs_converters_with_their_framework_only() -> None:
    planned = plan(
        _spec(
            sources=["nnsmith-torch", "nnsmith-tensorflow"],
            seeds=[0, 1],
            opsets=[14, 17],
            converters=["torch.onnx-torchscript", "tf2onnx"],
        )
    )
    assert len(planned) == 4
    for p in planned:
        expected = "torch.onnx" if p["framework"] == "torch" else "tf2onnx"
        assert {r["converter_name"] for r in p["runs"]} == {expected} and len(p["runs"]) == 2


@pytest.mark.slow
def test_a_dask_scheduler_address_runs_jobs_on_its_workers_with_isolation(tmp_path: Path) -> None:
    """`--dask tcp://HOST:PORT`: jobs go to an existing cluster; a crash there is still only a `crash` result."""
    from dask.distributed import LocalCluster

    from experiments.campaign import worker_options
    from experiments.executors import DaskExecutor

    spec = _spec(sources=["fault-abort", "nnsmith-torch"], plugins=[FAULTS], workers=1)
    jobs = [
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
    events: list[Event] = []
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://")
        replaced = DaskExecutor(address, 1, worker_options(spec, tmp_path)).run(jobs, events.append)
    results = {e.job["source"]: e.result.outcome for e in events if isinstance(e, RunEvent)}
    assert results["fault-abort"] == "crash" and results["nnsmith-torch"].judged and replaced == 1


def test_setup_problems_stop_the_campaign_with_one_error_and_no_runs(cli, engine) -> None:  # type: ignore[no-untyped-def]
    """A missing plug-in module, or workers that cannot even start, is one error, not a crash per run."""
    base = [
        "experiment",
        "run",
        "--sources",
        "nnsmith-torch",
        "--seeds",
        "0",
        "--node-counts",
        "3",
        "--converters",
        "torch.onnx-torchscript",
        "--workers",
        "1",
        "--name",
        "broken",
    ]
    missing = cli(*base, "--plugins", "no_such_plugin_module")
    assert missing.exit_code == 2 and "cannot import 'no_such_plugin_module'" in missing.output
    starved = cli(*base, "--memory-mb", "30")
    assert starved.exit_code == 2 and "worker could not start" in starved.output
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(ConversionRun)).scalar_one() == 0
