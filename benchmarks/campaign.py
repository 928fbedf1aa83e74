"""Throughput of conversion campaigns: the study's way vs. our isolated runner vs. an unisolated in-process floor.

The same N NNSmith TensorFlow + N NNSmith torch models (seeds 0..N-1, 10 nodes) are converted (tf2onnx /
torch.onnx TorchScript, opset 17) and checked in onnxruntime on K seeded inputs:

(a) the study's way, sequentially: a `python -m tf2onnx.convert --saved-model` process per TF model (its check
    runs in this process, which already imported TensorFlow: generous to the study), and a fresh interpreter
    per torch model that loads, exports and checks it. Models are generated beforehand, untimed.
(b) our runner (`run_campaign`): 2 isolated workers, with one injected crash (os.abort) and one injected hang
    (killed after --hang-timeout s) added to the workload; generation is included in its time.
(c) the floor: one plain in-process loop per framework, no isolation, generation included.

Prints models/minute for each and the ratios. Run from the repository root:
    python -m benchmarks.campaign --models 30
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OPSET, NODES, K = 17, 10, 3
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
    for seed in range(n):
        model = source.build(_params(seed), out / f"{framework}-{seed}")
        if framework == "tensorflow":
            import tensorflow as tf

            fn = model.native.__call__.get_concrete_function(*model.extra["signature"])
            tf.saved_model.save(model.native, str(out / f"{framework}-{seed}" / "saved"), signatures=fn)


def check_one(framework: str, location: Path, onnx_path: Path | None) -> dict[str, Any]:
    """Load one model (and export it if torch), run K inputs through it and onnxruntime, compare."""
    from experiments.compare import compare_output
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
        ok = True
        for k in range(K):
            feeds = seeded_inputs(model.inputs, 0, k)
            got = runtime.run(session, {renamed.get(n, n): v for n, v in feeds.items()})
            ref = model.run(feeds)
            ok &= all((compare_output(r, g, 1e-4, 1e-3)["n_outside"] or 0) == 0 for r, g in zip(ref, got, strict=True))
        return {"status": "passed" if ok else "mismatch"}
    except Exception as exc:
        return {"status": "failed", "error": type(exc).__name__}


def floor_loop(framework: str, n: int, out: Path) -> dict[str, int]:
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
    counts: dict[str, int] = {}
    for p in plan(spec):
        job = {
            "source": name,
            "params": p["params"],
            "model_dir": str(out / p["model_key"][:16]),
            "atol": 1e-4,
            "rtol": 1e-3,
            "runs": p["runs"],
        }
        events: list[Any] = []
        run_job(job, events.append)
        for e in events:
            if isinstance(e, RunFinished | ModelFailed):
                status = e.result.outcome.value
                counts[status] = counts.get(status, 0) + 1
    return counts


# --- the three measurements ------------------------------------------------------------------------------------


def study_way(n: int, work: Path) -> tuple[float, dict[str, int]]:
    for fw in ("torch", "tensorflow"):
        done = _python("-m", "benchmarks.campaign", "--prepare", fw, "--models", str(n), "--dir", str(work))
        assert done.returncode == 0, done.stderr[-3000:]
    counts: dict[str, int] = {}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from experiments import nnsmith_compat

    nnsmith_compat.apply(("tensorflow",))
    start = time.perf_counter()
    for seed in range(n):  # TensorFlow: one tf2onnx.convert process per model, then the check
        loc = work / f"tensorflow-{seed}"
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
        status = check_one("tensorflow", loc, loc / "model.onnx")["status"] if conv.returncode == 0 else "failed"
        counts[status] = counts.get(status, 0) + 1
    for seed in range(n):  # torch: a fresh interpreter per model
        one = _python("-m", "benchmarks.campaign", "--check-torch", str(work / f"torch-{seed}"))
        status = json.loads(one.stdout.strip().splitlines()[-1])["status"] if one.returncode == 0 else "crash"
        counts[status] = counts.get(status, 0) + 1
    return time.perf_counter() - start, counts


def ours(n: int, work: Path, hang_timeout: float) -> tuple[float, dict[str, int]]:
    from db.engine import make_engine
    from db.migrate import upgrade
    from experiments.campaign import run_campaign
    from experiments.spec import load_spec

    url = f"sqlite:///{work / 'bench.db'}"
    upgrade(url)
    import tests.support.fault_sources  # noqa: F401  (the injected crash and hang)

    spec = load_spec(
        overrides={
            "name": "bench",
            "sources": ["nnsmith-torch", "nnsmith-tensorflow", "fault-abort", "fault-hang"],
            "converters": ["torch.onnx-torchscript", "tf2onnx"],
            "node_counts": [NODES],
            "seeds": list(range(n)),
            "opsets": [OPSET],
            "inputs_per_model": K,
            "workers": 2,
            "timeout_s": hang_timeout,
            "plugins": ["tests.support.fault_sources"],
        }
    )
    start = time.perf_counter()
    result = run_campaign(make_engine(url), spec, work / "ours")
    return time.perf_counter() - start, result.counts


def floor(n: int, work: Path) -> tuple[float, dict[str, int]]:
    counts: dict[str, int] = {}
    start = time.perf_counter()
    for fw in ("torch", "tensorflow"):
        done = _python("-m", "benchmarks.campaign", "--floor", fw, "--models", str(n), "--dir", str(work / "floor"))
        assert done.returncode == 0, done.stderr[-3000:]
        for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items():
            counts[k] = counts.get(k, 0) + v
    return time.perf_counter() - start, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=30, help="models per framework")
    parser.add_argument("--hang-timeout", type=float, default=10.0)
    parser.add_argument("--skip-study", action="store_true", help="skip the (slow) study-way measurement")
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
    with tempfile.TemporaryDirectory(prefix="interop-bench-") as tmp:
        work = Path(tmp)
        print(
            f"{n} TensorFlow + {n} torch NNSmith models ({NODES} nodes), opset {OPSET}, K={K}, {os.cpu_count()} cores",
            flush=True,
        )
        t_floor, c_floor = floor(n, work)
        print(
            f"floor (in-process loop, no isolation): {t_floor:7.1f} s  {60 * total / t_floor:7.1f} models/min  "
            f"{c_floor}",
            flush=True,
        )
        t_ours, c_ours = ours(n, work, args.hang_timeout)
        print(
            f"ours (2 isolated workers, +1 crash +1 hang): {t_ours:7.1f} s  {60 * total / t_ours:7.1f} models/min  "
            f"{c_ours}",
            flush=True,
        )
        print(f"ours / floor time: {t_ours / t_floor:.2f}x (target <= 1.5x)", flush=True)
        if not args.skip_study:
            t_study, c_study = study_way(n, work)
            print(
                f"study's way (process per model): {t_study:7.1f} s  {60 * total / t_study:7.1f} models/min  {c_study}",
                flush=True,
            )
            print(f"speed-up of ours over the study's way: {t_study / t_ours:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
