"""Crash-proof execution: a pool of long-lived worker processes watched for death, time and memory.

The pool turns a worker's segfault/abort into a `crash` result, a run past its time limit into `timeout` and a
worker past its memory limit (RSS, sampled every 0.1 s by psutil) into `oom`, each charged to the stage the
worker last reported; the worker is replaced and the model's remaining conversions go to the next worker.
A run's time is the worker's own: time it spent waiting for a CPU held by other processes (a loaded machine)
is not charged to it, so a model blowing up memory slowly on a busy machine still ends as `oom`, not `timeout`.
Results leave through `emit` as typed events (`experiments.messages`): ModelEvent, ModelFailedEvent, RunEvent.
The pool never touches the database. Workers are forked from a warm zygote per framework (`experiments.zygote`),
so replacing one costs milliseconds, not an import of torch or TensorFlow; each worker gets its next job while
it runs the current one, so it never waits for the driver between jobs. A zygote still importing counts as
a busy core: while it imports, jobs start only on the cores it leaves free, since a job beside it on a full
machine slows down the import that the rest of the queue waits for.
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
from db.outcomes import RunOutcome, Stage
from experiments.messages import (
    MODEL,
    Event,
    JobDone,
    ModelEvent,
    ModelFailed,
    ModelFailedEvent,
    ModelReady,
    Ready,
    RunEvent,
    RunFinished,
    StageStarted,
    StartJob,
    Stop,
    WorkerMessage,
)
from experiments.results import ModelInfo, RunResult
from experiments.zygote import ForkedProcess, Zygote, ZygoteError

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
    #: fork workers from a warm zygote per framework (`experiments.zygote`); False: a fresh interpreter each
    warm: bool = True


def worker_env(options: WorkerOptions) -> dict[str, str]:
    """The environment of fresh workers and zygotes: quiet TensorFlow, offline hubs, one OpenMP thread each."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("OMP_NUM_THREADS", str(options.threads))
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    return env


class IsolatedWorker:
    """One worker process (forked from a zygote, or a fresh `python -m experiments.worker`) and its two pipes."""

    def __init__(self, options: WorkerOptions, slot: int, framework: str, zygote: Zygote | None = None) -> None:
        self.options, self.framework = options, framework
        self.created = time.monotonic()
        Path(options.log_dir).mkdir(parents=True, exist_ok=True)
        self.log_path = str(Path(options.log_dir) / f"worker-{slot}-{os.getpid()}-{time.time_ns()}.log")
        self.proc: subprocess.Popen[bytes] | ForkedProcess
        if zygote is not None:
            self.proc, self.inbox, self.outbox = zygote.spawn(self.log_path)
        else:
            self._start_fresh(slot, framework)
        self.ps = psutil.Process(self.proc.pid)
        self.last_rss_mb = 0.0

    def _start_fresh(self, slot: int, framework: str) -> None:
        options = self.options
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
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
                env=worker_env(options),
                start_new_session=True,
            )
        os.close(to_worker_r)
        os.close(from_worker_w)
        self.inbox = Connection(to_worker_w, readable=False)
        self.outbox = Connection(from_worker_r, writable=False)

    def rss_mb(self) -> float:
        """The worker's RSS now; once it is gone (crashed, killed), the last value sampled while it lived."""
        if self.proc.poll() is not None:  # exited: a zombie reads as 0 bytes, which is no sample
            return self.last_rss_mb
        with contextlib.suppress(psutil.Error):
            rss = self.ps.memory_info().rss / 2**20
            if rss > 0:
                self.last_rss_mb = rss
        return self.last_rss_mb

    def queued_s(self) -> float:
        """Seconds the worker's main thread has spent runnable but waiting for a CPU (Linux schedstat; 0 when
        unknown): a loaded machine's delay, which the run's time limit does not count."""
        try:
            with open(f"/proc/{self.proc.pid}/schedstat", encoding="ascii") as fh:
                return int(fh.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return 0.0

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
            with contextlib.suppress(ProcessLookupError):  # a forked worker killed before its setsid()
                os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.close()

    def stop(self) -> None:
        try:
            self.inbox.send(Stop())
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
    run: int = MODEL
    stage: Stage | None = None
    deadline: float = 0.0
    #: the worker's CPU-queue wait when the current deadline was set (waiting for a CPU extends the deadline)
    queued_at: float = 0.0
    peak_mb: float = 0.0
    log_offset: int = 0
    ready: bool = False
    model_info: ModelInfo | None = None
    finished: set[int] = field(default_factory=set)
    #: the job already sent to the worker, queued in its pipe behind `job` (no round trip between jobs)
    next: dict[str, Any] | None = None

    def start_clock(self, seconds: float) -> None:
        """The current run (or the worker's start-up) gets `seconds` of the worker's own time from now."""
        self.deadline = time.monotonic() + seconds
        self.queued_at = self.worker.queued_s() if self.worker is not None else 0.0

    def overdue(self, now: float) -> bool:
        """Past the deadline once the time the worker waited for a CPU since the clock started is given back."""
        if now <= self.deadline:
            return False
        waited = (self.worker.queued_s() - self.queued_at) if self.worker is not None else 0.0
        return now > self.deadline + max(waited, 0.0)


def _signal_name(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class PoolStats:
    """Where the pool's time went that the runs' own stage durations do not show."""

    #: seconds from asking for a worker to its Ready, summed over workers (zygote imports included)
    worker_start_s: float = 0.0
    workers_started: int = 0
    #: the zygotes' threads when they were ready, per framework (what a fork leaves behind)
    zygote_threads: dict[str, list[str]] = field(default_factory=dict)
    #: seconds each framework's zygote took to import everything (they import side by side)
    zygote_import_s: dict[str, float] = field(default_factory=dict)
    #: worker-seconds of slots without a job while every queued job's zygote was still importing
    zygote_wait_s: float = 0.0


class WorkerPool:
    """N isolated workers; `run(jobs, emit)` returns when every job has produced a result for every run."""

    def __init__(self, size: int, options: WorkerOptions) -> None:
        self.options = options
        self.slots = [_Slot(i) for i in range(max(1, size))]
        self.replaced = 0
        self.stats = PoolStats()
        self.zygotes: dict[str, Zygote] = {}
        #: the cores this process may run on: slots beyond them only share cores
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    def close(self) -> None:
        """Stop idle workers politely; kill busy ones (we are leaving mid-job, e.g. on Ctrl-C); then the zygotes."""
        for slot in self.slots:
            if slot.worker is not None:
                slot.worker.kill() if slot.job is not None else slot.worker.stop()
                slot.worker = None
        for zygote in self.zygotes.values():
            zygote.hang_up()  # all of them first: they leave side by side
        for zygote in self.zygotes.values():
            zygote.close()
        self.zygotes.clear()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start_zygotes(self, frameworks: set[str]) -> None:
        """Start the zygotes of these frameworks now, side by side, so their imports overlap."""
        if not self.options.warm:
            return
        for framework in sorted(frameworks):
            zygote = self.zygotes.get(framework)
            if zygote is None or not zygote.alive():
                o = self.options
                self.zygotes[framework] = Zygote(framework, o.threads, o.plugins, o.log_dir, worker_env(o))

    def _zygote(self, framework: str) -> Zygote | None:
        """The ready zygote of `framework` (restarted if it died); a WorkerStartupError if it cannot get ready."""
        if not self.options.warm:
            return None
        self.start_zygotes({framework})
        zygote = self.zygotes[framework]
        try:
            zygote.wait_ready(self.options.startup_timeout_s)
        except ZygoteError as exc:
            self.zygotes.pop(framework).close()
            raise self._startup_error(framework, str(exc), zygote.log_path) from exc
        if zygote.rss_mb is not None and self.options.memory_mb and zygote.rss_mb > self.options.memory_mb:
            why = f"it needs {zygote.rss_mb:.0f} MB before any model, over the {self.options.memory_mb} MB limit"
            raise self._startup_error(framework, why, zygote.log_path)
        self.stats.zygote_threads[framework] = zygote.threads
        if zygote.import_s is not None:
            self.stats.zygote_import_s[framework] = round(zygote.import_s, 2)
        return zygote

    @staticmethod
    def _startup_error(framework: str, why: str, log_path: str) -> WorkerStartupError:
        try:
            tail = "\n".join(Path(log_path).read_text(errors="replace").splitlines()[-5:])
        except OSError:
            tail = ""
        why = f"a {framework} worker could not start ({why})"
        return WorkerStartupError(f"{why}; its log {log_path} ends with:\n{tail}")

    def _new_worker(self, slot: _Slot, framework: str) -> IsolatedWorker:
        asked = time.monotonic()  # a worker's start includes waiting for its zygote's imports
        zygote = self._zygote(framework)
        try:
            worker = IsolatedWorker(self.options, slot.index, framework, zygote)
        except ZygoteError:  # the zygote died since it was ready: one more try with a new one
            assert zygote is not None
            self.zygotes.pop(framework).close()
            worker = IsolatedWorker(self.options, slot.index, framework, self._zygote(framework))
        worker.created = asked
        return worker

    def run(self, jobs: list[dict[str, Any]], emit: Emit) -> None:
        queue: deque[dict[str, Any]] = deque(jobs)
        self.start_zygotes({j["framework"] for j in jobs})
        waiting, since = 0, time.monotonic()
        while queue or any(s.job is not None for s in self.slots):
            now = time.monotonic()
            self.stats.zygote_wait_s += waiting * (now - since)
            waiting, since = 0, now
            n_busy, importing = sum(s.job is not None for s in self.slots), self._importing(queue)
            for slot in self.slots:
                if slot.job is None and queue:
                    # an importing zygote holds a core: a job beside it would slow the import that the rest of
                    # the queue waits for (the critical path) by as much as it gains
                    held = importing > 0 and n_busy + importing >= self.cores
                    job = None if held else self._pick(slot, queue)
                    if job is None:  # only jobs whose zygote is still importing: look again shortly
                        waiting += 1
                    else:
                        self._assign(slot, job)
                        n_busy += 1
                elif slot.job is not None and slot.next is None and slot.ready and queue:
                    self._prefetch(slot, queue)
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
                    self._lost(slot, RunOutcome.crash, None, emit, queue)
            self._watch(emit, queue)

    def _pick(self, slot: _Slot, queue: deque[dict[str, Any]]) -> dict[str, Any] | None:
        """Next job for a slot: one of its worker's framework, else of the framework with the fewest workers
        among those a worker can be had for now; None while every such zygote is still importing.

        nnsmith registers its operator implementations per process, so a worker serves one framework only.
        Waiting for a zygote inside the driver's loop would leave the workers it already has without jobs.
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
        startable = {fw for fw in {j["framework"] for j in queue} if self._can_start(fw)}
        candidates = [j for j in queue if j["framework"] in startable]
        if not candidates:
            return None
        job = min(candidates, key=lambda j: serving.get(j["framework"], 0))
        queue.remove(job)
        return job

    def _importing(self, queue: deque[dict[str, Any]]) -> int:
        """Zygotes still importing (alive, not late) that queued jobs wait for: each keeps one core busy."""
        if not self.options.warm or all(z.ready_now() for z in self.zygotes.values()):
            return 0  # the usual case once started: no walk over a long queue on every turn of the loop
        waited_for = {j["framework"] for j in queue}
        return sum(1 for fw in waited_for if fw in self.zygotes and not self._can_start(fw))

    def _can_start(self, framework: str) -> bool:
        """A worker of `framework` can be had without waiting: warm workers are off, or its zygote has imported
        everything; a zygote that died or overran the start-up limit also says yes (`_zygote` reports why)."""
        if not self.options.warm:
            return True
        zygote = self.zygotes.get(framework)
        if zygote is None:
            self.start_zygotes({framework})
            zygote = self.zygotes[framework]
        late = time.monotonic() - zygote.started > self.options.startup_timeout_s
        return zygote.ready_now() or not zygote.alive() or late

    def _bloated(self, worker: IsolatedWorker) -> bool:
        """A worker that kept much memory from earlier models: recycled before it could cause a spurious oom."""
        return bool(self.options.memory_mb) and worker.rss_mb() > RECYCLE_FRACTION * self.options.memory_mb  # type: ignore[operator]

    def _prefetch(self, slot: _Slot, queue: deque[dict[str, Any]]) -> None:
        """Send the worker its next job (of its framework) now: it starts it the moment the current one ends."""
        worker = slot.worker
        if worker is None or self._bloated(worker):
            return  # it goes idle after this job and is recycled by `_assign`
        job = next((j for j in queue if j["framework"] == worker.framework), None)
        if job is None:
            return
        try:
            worker.inbox.send(StartJob(job))
        except OSError:
            return  # a dead worker is noticed by the next wait()
        queue.remove(job)
        slot.next = job

    def _assign(self, slot: _Slot, job: dict[str, Any]) -> None:
        alive = slot.worker is not None and slot.worker.proc.poll() is None
        if not alive or self._bloated(slot.worker) or slot.worker.framework != job["framework"]:  # type: ignore[union-attr, arg-type]
            if slot.worker is not None:
                slot.worker.stop() if alive else slot.worker.close()
                slot.worker = None
            slot.worker = self._new_worker(slot, job["framework"])
            slot.ready = False
        self._begin(slot, job)
        with contextlib.suppress(OSError):  # a dead worker is noticed by the next wait()
            slot.worker.inbox.send(StartJob(job))  # type: ignore[union-attr]

    def _begin(self, slot: _Slot, job: dict[str, Any]) -> None:
        """`job` is now the one the slot's worker runs (or will run first)."""
        assert slot.worker is not None
        slot.job, slot.run, slot.stage, slot.model_info, slot.finished = job, MODEL, None, None, set()
        slot.peak_mb, slot.log_offset = slot.worker.rss_mb(), slot.worker.log_size()
        slot.start_clock(self.options.timeout_s if slot.ready else self.options.startup_timeout_s)

    def _handle(self, slot: _Slot, message: WorkerMessage, emit: Emit) -> None:
        job = slot.job
        assert job is not None
        if isinstance(message, Ready):
            slot.ready = True
            if slot.worker is not None:
                self.stats.worker_start_s += time.monotonic() - slot.worker.created
                self.stats.workers_started += 1
            slot.start_clock(self.options.timeout_s)
            slot.peak_mb = max(slot.peak_mb, slot.worker.rss_mb() if slot.worker else 0.0)
        elif isinstance(message, StageStarted):
            if message.run != slot.run:
                slot.start_clock(self.options.timeout_s)
                slot.peak_mb = slot.worker.rss_mb() if slot.worker else 0.0
                slot.log_offset = slot.worker.log_size() if slot.worker else 0
            slot.run, slot.stage = message.run, message.stage
        elif isinstance(message, ModelReady):
            slot.model_info = message.info
            emit(ModelEvent(job, message.info))
        elif isinstance(message, ModelFailed):
            emit(ModelFailedEvent(job, message.result))
        elif isinstance(message, RunFinished):
            message.result.peak_rss_mb = round(slot.peak_mb, 1)
            slot.finished.add(message.run)
            emit(RunEvent(job, job["runs"][message.run], message.result))
        elif isinstance(message, JobDone):
            slot.job = None
            if slot.next is not None:
                self._begin(slot, slot.next)
                slot.next = None

    def _watch(self, emit: Emit, queue: deque[dict[str, Any]]) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.job is None or slot.worker is None:
                continue
            rss = slot.worker.rss_mb()
            slot.peak_mb = max(slot.peak_mb, rss)
            if self.options.memory_mb and rss > self.options.memory_mb:
                why = f"worker RSS {rss:.0f} MB exceeded the {self.options.memory_mb} MB limit"
                self._lost(slot, RunOutcome.oom, why, emit, queue)
            elif slot.overdue(now):
                limit = self.options.timeout_s if slot.ready else self.options.startup_timeout_s
                self._lost(slot, RunOutcome.timeout, f"no result within {limit:g} s", emit, queue)
            elif slot.worker.proc.poll() is not None and not slot.worker.outbox.poll():
                self._lost(slot, RunOutcome.crash, None, emit, queue)

    def _lost(self, slot: _Slot, status: RunOutcome, why: str | None, emit: Emit, queue: deque[dict[str, Any]]) -> None:
        """The worker died or was killed: charge the current run (or the model), requeue the rest, replace it."""
        job, worker = slot.job, slot.worker
        assert job is not None and worker is not None
        worker.kill()
        code = worker.proc.returncode
        excerpt = worker.log_since(slot.log_offset)
        if slot.next is not None:  # sent but never started: it goes back, uncharged
            queue.appendleft(slot.next)
            slot.next = None
        if not slot.ready:
            # Not the model's fault: the environment cannot start a worker. Stop rather than record every run
            # as crashed (which a resume would then skip).
            slot.worker, slot.job = None, None
            raise self._startup_error(worker.framework, why or _signal_name(code), worker.log_path)
        self.replaced += 1
        stage = slot.stage or Stage.of_model(job.get("content_hash"))
        message = why or f"worker {_signal_name(code)} during {stage}"
        error = RunResult.lost(status, stage, message, excerpt, round(slot.peak_mb, 1))
        slot.worker, slot.job, slot.ready = None, None, False
        if slot.run == MODEL:
            emit(ModelFailedEvent(job, error))
            return
        if slot.run not in slot.finished:  # it may have died after reporting this run
            emit(RunEvent(job, job["runs"][slot.run], error))
        rest = [r for i, r in enumerate(job["runs"]) if i > slot.run and i not in slot.finished]
        if rest:
            info = slot.model_info or ModelInfo()
            queue.appendleft(
                {
                    **job,
                    "runs": rest,
                    "content_hash": info.content_hash or job.get("content_hash"),
                    "location": info.location or job.get("location"),
                }
            )
