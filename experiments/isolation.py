"""Crash-proof execution: a pool of long-lived worker processes watched for death, time and memory.

The pool turns a worker's segfault/abort into a `crash` result, a run past its time limit into `timeout` and a
worker past its memory limit (RSS, sampled every 0.1 s by psutil) into `oom`, each charged to the stage the
worker last reported; the worker is replaced and the model's remaining conversions go to the next worker.
Results leave through `emit` as events: ("model", job, info), ("model_failed", job, error),
("run", job, run_spec, result). The pool never touches the database.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import psutil

from db.errors import InteropError

Event = tuple[Any, ...]
Emit = Callable[[Event], None]
POLL_SECONDS = 0.1
RECYCLE_FRACTION = 0.6  # of the memory limit: an idle worker above it is restarted before its next job


class WorkerStartupError(InteropError):
    """A worker died or hung before it was ready: a setup problem, not a model's."""


@dataclass(frozen=True)
class WorkerOptions:
    """How each worker is started and watched."""

    timeout_s: float = 60.0
    memory_mb: int | None = 4096
    threads: int = 1
    plugins: tuple[str, ...] = ()
    log_dir: str = "artifacts/logs"
    startup_timeout_s: float = 300.0


class IsolatedWorker:
    """One `python -m experiments.worker` process and its two pipes."""

    def __init__(self, options: WorkerOptions, slot: int, framework: str) -> None:
        self.options, self.framework = options, framework
        Path(options.log_dir).mkdir(parents=True, exist_ok=True)
        self.log_path = str(Path(options.log_dir) / f"worker-{slot}-{os.getpid()}-{time.time_ns()}.log")
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("OMP_NUM_THREADS", str(options.threads))
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
        cmd = [
            sys.executable,
            "-m",
            "experiments.worker",
            "--rfd",
            str(to_worker_r),
            "--wfd",
            str(from_worker_w),
            "--stderr",
            self.log_path,
            "--preload",
            framework,
            "--plugins",
            ",".join(options.plugins),
            "--threads",
            str(options.threads),
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                pass_fds=(to_worker_r, from_worker_w),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        os.close(to_worker_r)
        os.close(from_worker_w)
        self.inbox = Connection(to_worker_w, readable=False)
        self.outbox = Connection(from_worker_r, writable=False)
        self.ps = psutil.Process(self.proc.pid)
        self.last_rss_mb = 0.0

    def rss_mb(self) -> float:
        """The worker's RSS now; once it is gone (crashed, killed), the last value sampled while it lived."""
        if self.proc.poll() is not None:  # exited: a zombie reads as 0 bytes, which is no sample
            return self.last_rss_mb
        with contextlib.suppress(psutil.Error):
            rss = self.ps.memory_info().rss / 2**20
            if rss > 0:
                self.last_rss_mb = rss
        return self.last_rss_mb

    def log_size(self) -> int:
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, offset: int, limit: int = 4000) -> str | None:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                text = fh.read().decode("utf-8", "replace").strip()
        except OSError:
            return None
        return text[-limit:] or None

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.close()

    def stop(self) -> None:
        try:
            self.inbox.send(("stop",))
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def close(self) -> None:
        for conn in (self.inbox, self.outbox):
            with contextlib.suppress(OSError):
                conn.close()


@dataclass
class _Slot:
    """What one worker is doing: its job, the run and stage it last reported, its deadline and peak memory."""

    index: int
    worker: IsolatedWorker | None = None
    job: dict[str, Any] | None = None
    run: int = -1
    stage: str | None = None
    deadline: float = 0.0
    peak_mb: float = 0.0
    log_offset: int = 0
    ready: bool = False
    model_info: dict[str, Any] | None = None
    finished: set[int] = field(default_factory=set)


def _signal_name(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class WorkerPool:
    """N isolated workers; `run(jobs, emit)` returns when every job has produced a result for every run."""

    def __init__(self, size: int, options: WorkerOptions) -> None:
        self.options = options
        self.slots = [_Slot(i) for i in range(max(1, size))]
        self.replaced = 0

    def close(self) -> None:
        """Stop idle workers politely; kill busy ones (we are leaving mid-job, e.g. on Ctrl-C)."""
        for slot in self.slots:
            if slot.worker is not None:
                slot.worker.kill() if slot.job is not None else slot.worker.stop()
                slot.worker = None

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, jobs: list[dict[str, Any]], emit: Emit) -> None:
        queue: deque[dict[str, Any]] = deque(jobs)
        while queue or any(s.job is not None for s in self.slots):
            for slot in self.slots:
                if slot.job is None and queue:
                    self._assign(slot, self._pick(slot, queue))
            busy = {s.worker.outbox: s for s in self.slots if s.job is not None and s.worker is not None}
            for ready in wait(list(busy), timeout=POLL_SECONDS):
                slot = next(s for c, s in busy.items() if c is ready)
                conn = slot.worker.outbox if slot.worker is not None else None
                if conn is None:
                    continue
                try:
                    while slot.job is not None and conn.poll():
                        self._handle(slot, conn.recv(), emit)
                except (EOFError, OSError):
                    self._lost(slot, "crash", None, emit, queue)
            self._watch(emit, queue)

    def _pick(self, slot: _Slot, queue: deque[dict[str, Any]]) -> dict[str, Any]:
        """Next job for a slot: one of its worker's framework, else of the framework with the fewest workers.

        nnsmith registers its operator implementations per process, so a worker serves one framework only.
        """
        mine = slot.worker.framework if slot.worker is not None else None
        for job in queue:
            if job["framework"] == mine:
                queue.remove(job)
                return job
        serving: dict[str, int] = {}
        for other in self.slots:
            if other.job is not None and other.worker is not None:
                serving[other.worker.framework] = serving.get(other.worker.framework, 0) + 1
        job = min(queue, key=lambda j: serving.get(j["framework"], 0))
        queue.remove(job)
        return job

    def _assign(self, slot: _Slot, job: dict[str, Any]) -> None:
        worker = slot.worker
        alive = worker is not None and worker.proc.poll() is None
        # A worker that kept much memory from earlier models is recycled before it could cause a spurious oom.
        limit = self.options.memory_mb
        bloated = worker is not None and alive and bool(limit) and worker.rss_mb() > RECYCLE_FRACTION * (limit or 0)
        if worker is None or not alive or bloated or worker.framework != job["framework"]:
            if worker is not None:
                worker.stop() if alive else worker.close()
            worker = slot.worker = IsolatedWorker(self.options, slot.index, job["framework"])
            slot.ready = False
        slot.job, slot.run, slot.stage, slot.model_info, slot.finished = job, -1, None, None, set()
        slot.peak_mb, slot.log_offset = worker.rss_mb(), worker.log_size()
        now = time.monotonic()
        slot.deadline = now + (self.options.timeout_s if slot.ready else self.options.startup_timeout_s)
        with contextlib.suppress(OSError):  # a dead worker is noticed by the next wait()
            worker.inbox.send(("job", job))

    def _handle(self, slot: _Slot, message: Event, emit: Emit) -> None:
        kind = message[0]
        job = slot.job
        assert job is not None
        if kind == "ready":
            slot.ready = True
            slot.deadline = time.monotonic() + self.options.timeout_s
            slot.peak_mb = max(slot.peak_mb, slot.worker.rss_mb() if slot.worker else 0.0)
        elif kind == "stage":
            _, run, stage = message
            if run != slot.run:
                slot.deadline = time.monotonic() + self.options.timeout_s
                slot.peak_mb = slot.worker.rss_mb() if slot.worker else 0.0
                slot.log_offset = slot.worker.log_size() if slot.worker else 0
            slot.run, slot.stage = run, stage
        elif kind == "model":
            slot.model_info = message[1]
            emit(("model", job, message[1]))
        elif kind == "model_failed":
            emit(("model_failed", job, message[1]))
        elif kind == "run":
            _, index, result = message
            result["peak_rss_mb"] = round(slot.peak_mb, 1)
            slot.finished.add(index)
            emit(("run", job, job["runs"][index], result))
        elif kind == "done":
            slot.job = None

    def _watch(self, emit: Emit, queue: deque[dict[str, Any]]) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.job is None or slot.worker is None:
                continue
            rss = slot.worker.rss_mb()
            slot.peak_mb = max(slot.peak_mb, rss)
            if self.options.memory_mb and rss > self.options.memory_mb:
                self._lost(
                    slot, "oom", f"worker RSS {rss:.0f} MB exceeded the {self.options.memory_mb} MB limit", emit, queue
                )
            elif now > slot.deadline:
                limit = self.options.timeout_s if slot.ready else self.options.startup_timeout_s
                self._lost(slot, "timeout", f"no result within {limit:g} s", emit, queue)
            elif slot.worker.proc.poll() is not None and not slot.worker.outbox.poll():
                self._lost(slot, "crash", None, emit, queue)

    def _lost(self, slot: _Slot, status: str, why: str | None, emit: Emit, queue: deque[dict[str, Any]]) -> None:
        """The worker died or was killed: charge the current run (or the model), requeue the rest, replace it."""
        job, worker = slot.job, slot.worker
        assert job is not None and worker is not None
        worker.kill()
        code = worker.proc.returncode
        excerpt = worker.log_since(slot.log_offset)
        if not slot.ready:
            # Not the model's fault: the environment cannot start a worker. Stop rather than record every run
            # as crashed (which a resume would then skip).
            slot.worker, slot.job = None, None
            tail = "\n".join((worker.log_since(0) or "").splitlines()[-5:])
            raise WorkerStartupError(
                f"a {worker.framework} worker could not start ({why or _signal_name(code)}); "
                f"its log {worker.log_path} ends with:\n{tail}"
            )
        self.replaced += 1
        stage = slot.stage or ("load" if job.get("content_hash") else "generate")
        error: dict[str, Any] = {
            "status": status,
            "stage": stage,
            "error_class": f"worker.{status}",
            "message": why or f"worker {_signal_name(code)} during {stage}",
            "stderr_excerpt": excerpt,
            "durations": {},
            "outputs": [],
            "onnx_graph": None,
            "peak_rss_mb": round(slot.peak_mb, 1),
        }
        slot.worker, slot.job, slot.ready = None, None, False
        if slot.run < 0:
            emit(("model_failed", job, error))
            return
        if slot.run not in slot.finished:  # it may have died after reporting this run
            emit(("run", job, job["runs"][slot.run], error))
        rest = [r for i, r in enumerate(job["runs"]) if i > slot.run and i not in slot.finished]
        if rest:
            info = slot.model_info or {}
            queue.appendleft(
                {
                    **job,
                    "runs": rest,
                    "content_hash": info.get("content_hash") or job.get("content_hash"),
                    "location": info.get("location") or job.get("location"),
                }
            )
