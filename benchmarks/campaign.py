"""Throughput of conversion campaigns: the study's way vs. our isolated runner vs. an unisolated in-process floor.

The same N NNSmith TensorFlow + N NNSmith torch models (seeds 0..N-1, 10 nodes) are converted (tf2onnx /
torch.onnx TorchScript, opset 17) and checked in onnxruntime on K seeded inputs:

(a) the study's way, sequentially: a `python -m tf2onnx.convert --saved-model` process per TF model (its check
    runs in this process, which already imported TensorFlow: generous to the study), and a fresh interpreter
    per torch model that loads, exports and checks it. Models are generated beforehand, untimed.
(b) our runner (`run_campaign`, 2 isolated workers forked from warm zygotes), on the same workload fault-free,
    and again with one injected crash (os.abort) and one injected hang (killed after --hang-timeout s) added;
    generation is included in its time. For the fault-free run: where the 2 workers' time went.
(c) the floor: one plain in-process loop per framework, no isolation, generation included (after an untimed
    warm-up that brings the libraries into the page cache for every path alike); the ideal for N
    workers is floor / N.
(d) with `--dask local` (or a scheduler address): (b) fault-free through Dask, and its overhead over (b).

Every path judges a run by the pipeline's rule (values within atol/rtol, and the same shapes and dtypes).
Prints models/minute for each, the ratios against the issue's targets, and the verdicts of the paths compared
model by model. Run from the repository root:
    python -m benchmarks.campaign --models 30 [--skip-study] [--dask local]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OPSET, NODES, K, WORKERS = 17, 10, 3, 2
ATOL, RTOL = 1e-4, 1e-3
#: the benchmark's parts of a run's time, by pipeline stage
STAGE_GROUPS = {
    "generation": ("generate", "load"),
    "conversion": ("export", "onnx_check"),
    "onnxruntime": ("ort_session", "ort_run"),
    "comparison": ("compare",),
}
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}


def _params(seed: int) -> dict[str, Any]:
    return {"generator": "nnsmith", "method": "symbolic-cinit", "max_nodes": NODES, "seed": seed}


def _python(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


# --- helpers run in child interpreters -------------------------------------------------------------------------


def prepare(framework: str, n: int, out: Path) -> None:
    """Generate the models' files (torch: model.pth + gir.pkl; TF: a SavedModel too, for tf2onnx's CLI)."""
    from experiments.sources import SOURCES

    source = SOURCES.get("nnsmith-torch" if framework == "torch" else "nnsmith-tensorflow")
    for seed in range(n):  # a model that cannot be built or saved is left without files: the study fails it
        try:
            model = source.build(_params(seed), out / f"{framework}-{seed}")
            if framework == "tensorflow":
                import tensorflow as tf

                fn = model.native.__call__.get_concrete_function(*model.extra["signature"])
                tf.saved_model.save(model.native, str(out / f"{framework}-{seed}" / "saved"), signatures=fn)
        except Exception as exc:
            print(f"{framework} seed {seed}: not generated ({type(exc).__name__})", file=sys.stderr)
            (out / f"{framework}-{seed}" / "saved").mkdir(parents=True, exist_ok=True)
            (out / f"{framework}-{seed}" / "NOT-GENERATED").write_text(type(exc).__name__)


def check_one(framework: str, location: Path, onnx_path: Path | None) -> dict[str, Any]:
    """Load one model (and export it if torch), run K inputs through it and onnxruntime, compare.

    Judged by the pipeline's rule (`run_passes`: values within tolerance, and the same shapes and dtypes), so that
    a verdict that differs from ours comes from the process-per-model path, not from a laxer check: a values-only
    check passes torch.onnx's float32 output of a float64 model, which ours calls a mismatch.
    """
    from experiments.compare import compare_output, run_passes
    from experiments.core import seeded_inputs
    from experiments.runtime import OnnxRuntimeCPU
    from experiments.sources import SOURCES

    seed = int(location.name.rsplit("-", 1)[1])
    source = SOURCES.get("nnsmith-torch" if framework == "torch" else "nnsmith-tensorflow")
    try:
        model = source.load(_params(seed), str(location))
        if onnx_path is None:
            from experiments.converters import CONVERTERS

            onnx_bytes = CONVERTERS.get("torch.onnx-torchscript").convert(model, OPSET, "torch_module")
        else:
            onnx_bytes = onnx_path.read_bytes()
        runtime = OnnxRuntimeCPU()
        session = runtime.session(onnx_bytes)
        renamed = {i.name.split(":")[0]: i.name for i in session.get_inputs()}
        rows = []
        for k in range(K):
            feeds = seeded_inputs(model.inputs, 0, k)
            got = runtime.run(session, {renamed.get(n, n): v for n, v in feeds.items()})
            ref = model.run(feeds)
            rows += [compare_output(r, g, ATOL, RTOL) for r, g in zip(ref, got, strict=True)]
        return {"status": "passed" if run_passes(rows, ATOL, RTOL) else "mismatch"}
    except Exception as exc:
        return {"status": "failed", "error": type(exc).__name__}


def floor_loop(framework: str, n: int, out: Path) -> dict[str, str]:
    """The floor: generate, convert and check every model of one framework in this one process."""
    from experiments.messages import ModelFailed, RunFinished
    from experiments.pipeline import run_job

    name = "nnsmith-torch" if framework == "torch" else "nnsmith-tensorflow"
    converter = "torch.onnx-torchscript" if framework == "torch" else "tf2onnx"
    from experiments.campaign import plan
    from experiments.spec import load_spec

    spec = load_spec(
        overrides={
            "sources": [name],
            "converters": [converter],
            "node_counts": [NODES],
            "seeds": list(range(n)),
            "opsets": [OPSET],
            "inputs_per_model": K,
        }
    )
    verdicts: dict[str, str] = {}
    for p in plan(spec):
        job = {
            "source": name,
            "params": p["params"],
            "model_dir": str(out / p["model_key"][:16]),
            "atol": ATOL,
            "rtol": RTOL,
            "runs": p["runs"],
        }
        events: list[Any] = []
        run_job(job, events.append)
        for e in events:
            if isinstance(e, RunFinished | ModelFailed):
                verdicts[f"{framework}-{p['params']['seed']}"] = e.result.outcome.value
    return verdicts


# --- the three measurements ------------------------------------------------------------------------------------


def _counts(verdicts: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in verdicts.values():
        counts[v] = counts.get(v, 0) + 1
    return dict(sorted(counts.items()))


def study_way(n: int, work: Path) -> tuple[float, dict[str, str]]:
    for fw in ("torch", "tensorflow"):
        done = _python("-m", "benchmarks.campaign", "--prepare", fw, "--models", str(n), "--dir", str(work))
        assert done.returncode == 0, done.stderr[-3000:]
    verdicts: dict[str, str] = {}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from experiments import nnsmith_compat

    nnsmith_compat.apply(("tensorflow",))
    start = time.perf_counter()
    for seed in range(n):  # TensorFlow: one tf2onnx.convert process per model, then the check
        loc = work / f"tensorflow-{seed}"
        if (loc / "NOT-GENERATED").exists():
            verdicts[loc.name] = "failed"
            continue
        conv = _python(
            "-m",
            "tf2onnx.convert",
            "--saved-model",
            str(loc / "saved"),
            "--output",
            str(loc / "model.onnx"),
            "--opset",
            str(OPSET),
        )
        verdicts[loc.name] = (
            check_one("tensorflow", loc, loc / "model.onnx")["status"] if conv.returncode == 0 else "failed"
        )
    for seed in range(n):  # torch: a fresh interpreter per model
        loc = work / f"torch-{seed}"
        if (loc / "NOT-GENERATED").exists():
            verdicts[loc.name] = "failed"
            continue
        one = _python("-m", "benchmarks.campaign", "--check-torch", str(loc))
        verdicts[loc.name] = (
            json.loads(one.stdout.strip().splitlines()[-1])["status"] if one.returncode == 0 else "crash"
        )
    return time.perf_counter() - start, verdicts


@dataclass
class Ours:
    """One run of our runner: wall time, per-model verdicts, stage seconds summed over runs, driver timings."""

    seconds: float
    verdicts: dict[str, str]
    stages: dict[str, float]
    timings: dict[str, float]
    replaced: int


def ours(n: int, work: Path, hang_timeout: float, faults: bool, dask: str | None = None) -> Ours:
    from db.engine import make_engine
    from db.migrate import upgrade
    from db.queries.experiments import runs
    from experiments.campaign import run_campaign
    from experiments.spec import load_spec

    label = ("faults" if faults else "clean") + ("-dask" if dask else "")
    url = f"sqlite:///{work / f'bench-{label}.db'}"
    upgrade(url)
    import tests.support.fault_sources  # noqa: F401  (the injected crash and hang)

    sources = ["nnsmith-torch", "nnsmith-tensorflow"] + (["fault-abort", "fault-hang"] if faults else [])
    spec = load_spec(
        overrides={
            "name": "bench",
            "sources": sources,
            "converters": ["torch.onnx-torchscript", "tf2onnx"],
            "node_counts": [NODES],
            "seeds": list(range(n)),
            "opsets": [OPSET],
            "inputs_per_model": K,
            "atol": ATOL,
            "rtol": RTOL,
            "workers": WORKERS,
            "timeout_s": hang_timeout,
            "plugins": ["tests.support.fault_sources"],
            **({"dask": dask} if dask else {}),
        }
    )
    engine = make_engine(url)
    start = time.perf_counter()
    result = run_campaign(engine, spec, work / f"ours-{label}")
    seconds = time.perf_counter() - start
    frame = runs(engine, "bench")
    engine.dispose()
    verdicts: dict[str, str] = {}
    stages = {stage: 0.0 for stage in STAGE_GROUPS}
    for row in frame.itertuples():
        if not str(row.source).startswith("nnsmith"):
            verdicts[str(row.model)] = str(row.outcome)
            continue
        fw = "torch" if row.framework == "torch" else "tensorflow"
        verdicts[f"{fw}-{str(row.model).rsplit('-s', 1)[1]}"] = str(row.outcome)
        for group, members in STAGE_GROUPS.items():
            stages[group] += sum(
                float(getattr(row, f"{m}_s") or 0.0) for m in members if _finite(getattr(row, f"{m}_s"))
            )
    return Ours(seconds, verdicts, stages, result.timings, result.replaced_workers)


def _finite(value: Any) -> bool:
    return value is not None and value == value  # NaN from pandas for a stage that did not run


def warm_up() -> None:
    """Import everything once, untimed: on a cold page cache the first path to load TensorFlow's and torch's
    libraries from disk pays for it (seen: the floor 34.5 s on a fresh machine, 13.0 s right after)."""
    code = "from experiments.zygote import warm; warm('torch', 1, []); warm('tensorflow', 1, [])"
    done = _python("-c", code)
    assert done.returncode == 0, done.stderr[-3000:]


def floor(n: int, work: Path) -> tuple[float, dict[str, str]]:
    verdicts: dict[str, str] = {}
    start = time.perf_counter()
    for fw in ("torch", "tensorflow"):
        done = _python("-m", "benchmarks.campaign", "--floor", fw, "--models", str(n), "--dir", str(work / "floor"))
        assert done.returncode == 0, done.stderr[-3000:]
        verdicts.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return time.perf_counter() - start, verdicts


def breakdown(run: Ours) -> str:
    """Where the workers' time went in `run`: worker-seconds per part, against workers × wall time."""
    budget = WORKERS * run.timings.get("executor_s", run.seconds)
    parts = {
        "zygote wait": run.timings.get("zygote_wait_s", 0.0),
        "worker start": run.timings.get("worker_start_s", 0.0),
        **run.stages,
    }
    busy = sum(parts.values())
    lines = [f"  where the time went ({WORKERS} workers x {budget / WORKERS:.1f} s = {budget:.1f} worker-seconds):"]
    for name, value in parts.items():
        lines.append(f"    {name:<13} {value:7.1f} s  {100 * value / budget:5.1f} %")
    lines.append(f"    {'idle/other':<13} {budget - busy:7.1f} s  {100 * (budget - busy) / budget:5.1f} %")
    db, started = run.timings.get("database_s", 0.0), run.timings.get("workers_started", 0)
    lines.append(f"    (comparison includes the source framework's reference run; driver: {db:.1f} s storing")
    imports = ", ".join(
        f"{k.split('.', 1)[1]} {v:.1f} s" for k, v in sorted(run.timings.items()) if k.startswith("zygote_import_s.")
    )
    lines.append(f"     results in batches, on the same cores; {started:.0f} workers started)")
    if imports:
        lines.append(f"    (zygote imports, side by side from the start: {imports}; slots without a job meanwhile")
        lines.append("     are 'zygote wait': an importing zygote holds a core, so only the other cores run jobs;")
        lines.append("     the floor pays the same imports one after the other)")
    return "\n".join(lines)


def compare_verdicts(paths: dict[str, dict[str, str]]) -> str:
    """Model by model: how many models every path judged alike, and each model where they differ (and why)."""
    names = list(paths)
    keys = sorted(k for k in set().union(*(set(v) for v in paths.values())) if not k.startswith("fault-"))
    differ = [k for k in keys if len({paths[p].get(k, "-") for p in names}) > 1]
    lines = [f"verdicts model by model ({', '.join(names)}): {len(keys) - len(differ)} of {len(keys)} models alike"]
    for k in differ:
        seen = ", ".join(f"{p}={paths[p].get(k, '-')}" for p in names)
        why = ""
        if (
            k.startswith("tensorflow")
            and "study" in paths
            and len({paths[p].get(k) for p in names if p != "study"}) == 1
        ):
            why = "  (the study converts a SavedModel with the tf2onnx CLI, ours the in-memory tf.function)"
        lines.append(f"  {k}: {seen}{why}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=30, help="models per framework")
    parser.add_argument("--hang-timeout", type=float, default=10.0)
    parser.add_argument("--skip-study", action="store_true", help="skip the (slow) study-way measurement")
    parser.add_argument("--dask", default=None, help="also run ours fault-free through Dask ('local' or tcp://...)")
    parser.add_argument("--prepare", choices=["torch", "tensorflow"], help=argparse.SUPPRESS)
    parser.add_argument("--check-torch", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--floor", choices=["torch", "tensorflow"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        from experiments import nnsmith_compat

        nnsmith_compat.apply((args.prepare,))
        prepare(args.prepare, args.models, args.dir)
        return
    if args.check_torch:
        from experiments import nnsmith_compat

        nnsmith_compat.apply(("torch",))
        print(json.dumps(check_one("torch", args.check_torch, None)))
        return
    if args.floor:
        print(json.dumps(floor_loop(args.floor, args.models, args.dir)))
        return

    n = args.models
    total = 2 * n

    def line(what: str, seconds: float, verdicts: dict[str, str] | None = None) -> None:
        counts = f"  {_counts(verdicts)}" if verdicts is not None else ""
        print(f"{what:<44} {seconds:7.1f} s  {60 * total / seconds:7.1f} models/min{counts}", flush=True)

    with tempfile.TemporaryDirectory(prefix="interop-bench-") as tmp:
        work = Path(tmp)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(
            f"{time.strftime('%Y-%m-%d %H:%M')}: {n} TensorFlow + {n} torch NNSmith models ({NODES} nodes), "
            f"opset {OPSET}, K={K}, {os.cpu_count()} cores, load average {load:.1f} at start",
            flush=True,
        )
        warm_up()
        t_floor, v_floor = floor(n, work)
        line("floor (one in-process loop, no isolation)", t_floor, v_floor)
        ideal = t_floor / WORKERS
        line(f"ideal for {WORKERS} workers (floor / {WORKERS})", ideal)
        clean = ours(n, work, args.hang_timeout, faults=False)
        line(f"ours, fault-free ({WORKERS} isolated workers)", clean.seconds, clean.verdicts)
        print(breakdown(clean), flush=True)
        faulty = ours(n, work, args.hang_timeout, faults=True)
        line("ours, +1 crash +1 hang", faulty.seconds, {k: v for k, v in faulty.verdicts.items()})
        r1 = clean.seconds / ideal
        print(f"ours fault-free / ideal: {r1:.2f}x (target <= 1.25x: {'met' if r1 <= 1.25 else 'NOT met'})")
        extra, allowed = faulty.seconds - clean.seconds, args.hang_timeout + 2
        print(
            f"crash + hang cost: {extra:+.1f} s (target <= hang timeout + 2 s = {allowed:.0f} s: "
            f"{'met' if extra <= allowed else 'NOT met'}); {faulty.replaced} workers replaced",
            flush=True,
        )
        paths = {"floor": v_floor, "ours": clean.verdicts, "ours+faults": faulty.verdicts}
        if args.dask:
            on_dask = ours(n, work, args.hang_timeout, faults=False, dask=args.dask)
            line(f"ours, fault-free, on Dask ({args.dask})", on_dask.seconds, on_dask.verdicts)
            print(f"Dask overhead over the local executor: {on_dask.seconds - clean.seconds:+.1f} s", flush=True)
            paths["dask"] = on_dask.verdicts
        if not args.skip_study:
            t_study, v_study = study_way(n, work)
            line("study's way (process per model)", t_study, v_study)
            speed = t_study / faulty.seconds
            print(
                f"ours (+1 crash +1 hang) vs the study's way: {speed:.1f}x faster (target >= 10x: "
                f"{'met' if speed >= 10 else 'NOT met'}); fault-free: {t_study / clean.seconds:.1f}x"
            )
            paths["study"] = v_study
        print(compare_verdicts(paths), flush=True)


if __name__ == "__main__":
    main()
