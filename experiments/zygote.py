"""Warm worker starts: a per-framework "zygote" process imports everything once, then forks a worker per request.

A fresh worker spends seconds importing torch or TensorFlow (more on a loaded machine); a worker forked from the
zygote starts with all of it imported, in milliseconds. Isolation is unchanged: each worker is its own process
and session, watched and killed by the driver exactly like a fresh one; its exit status (a signal included)
reaches the driver through the zygote, which reaps it.

What the zygote may do before forking, and why (`WARM_IMPORTS` and `experiments.worker.preload`):
- import modules, set thread counts and `gc.freeze()` what was imported, nothing else. `fork()` copies only
  the calling thread, so a library whose thread pool already runs would be left in the child with a pool whose
  threads are gone (and maybe a lock held by one of them): a hang or a crash charged to an innocent model.
- torch: importing it and `set_num_threads` start no thread; its intra-op (OpenMP) pool starts at the first
  parallel op, so that op must happen in the worker, never in the zygote.
- TensorFlow: importing it starts jemalloc's background thread, which is fork-safe (jemalloc locks its arenas
  around fork and the child restarts the thread on demand); its eager context and its inter/intra-op pools
  start at the first op or `tf.function` call, so no model is built or traced in the zygote.
- onnxruntime: importing it starts one idle native thread; sessions (with their own thread pools) are created
  in the worker only.
- the sources, converters and nnsmith patches (`nnsmith_compat`) are pure Python state, copied as is. nnsmith
  registers its operators per framework, so there is one zygote per framework (and per thread count and set of
  plug-ins), never one for both.
The zygote checks this: it reports its threads when ready, and tests compare forked and fresh workers' verdicts.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import importlib.util
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

from db.errors import InteropError
from experiments.worker import die_with_parent, preload, serve

#: what a zygote imports beyond `experiments.worker.preload`, per framework (missing modules are skipped)
WARM_IMPORTS: dict[str, list[str]] = {
    "torch": [
        "torch.onnx",
        "torch.jit",
        "nnsmith.materialize.torch",
        "experiments.converters.torch_onnx",
    ],
    "tensorflow": [
        "tf2onnx",
        "tf2onnx.tf_loader",
        "keras",
        "nnsmith.materialize.tensorflow",
        "experiments.converters.tf2onnx_api",
        "tf2onnx.tfonnx",  # its rewriters and op handlers: imported by the first conversion otherwise (~0.6 s)
        "tf2onnx.optimizer",
    ],
}
COMMON_IMPORTS = [
    "onnx",
    "onnx.checker",
    "nnsmith.graph_gen",
    "experiments.pipeline",
    "experiments.sources.nnsmith_source",
    "experiments.runtime",
    "nnsmith.backends.factory",
    "nnsmith.difftest",
    "nnsmith.narrow_spec",
]
MAX_MESSAGE = 1 << 16


def warm(framework: str, threads: int, plugins: list[str]) -> None:
    """Everything a worker of `framework` would import: the plug-ins, the framework, the converters, the sources."""
    for module in plugins:
        importlib.import_module(module)
    preload([framework], threads)
    for name in [*WARM_IMPORTS.get(framework, []), *COMMON_IMPORTS]:
        if importlib.util.find_spec(name.split(".")[0]) is not None:
            importlib.import_module(name)


def thread_names() -> list[str]:
    """Names of this process's threads (Linux), to show what a fork leaves behind."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return []
    names = []
    for task in tasks:
        with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/comm", encoding="utf-8") as fh:
            names.append(fh.read().strip())
    return sorted(names)


def _send(sock: socket.socket, message: Any) -> None:
    sock.send(pickle.dumps(message))


def _child(request: dict[str, Any], fds: list[int], closing: list[int], zygote_pid: int) -> None:
    """In the forked worker: own session, die with the zygote (which dies with the driver), log, then serve."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in closing:
            os.close(fd)
        os.setsid()
        die_with_parent()
        if os.getppid() != zygote_pid:  # the zygote died before we could ask to die with it
            os._exit(1)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        inbox, outbox = Connection(fds[0], writable=False), Connection(fds[1], readable=False)
        code = serve(inbox, outbox, request["log"], int(request["threads"]))
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(sock, ("exited", pid, os.waitstatus_to_exitcode(status)))


def zygote_main(sock: socket.socket, threads: int) -> int:
    """Fork a worker per `spawn` request (its two pipe ends come with it); report each worker's exit status."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    me = os.getpid()
    while True:
        readable, _, _ = select.select([sock.fileno(), wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 4096)
        _reap(sock)
        if sock.fileno() not in readable:
            continue
        data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 2)
        if not data:
            return 0  # the driver closed its end
        kind, request = pickle.loads(data)
        if kind != "spawn":
            return 0
        pid = os.fork()
        if pid == 0:
            _child({**request, "threads": threads}, fds, [sock.fileno(), wake_r, wake_w], me)
        for fd in fds:
            os.close(fd)
        _send(sock, ("spawned", pid))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="experiments.zygote")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--framework", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plugins", default="")
    args = parser.parse_args(argv)
    die_with_parent()
    sock = socket.socket(fileno=args.fd)
    warm(args.framework, args.threads, [p for p in args.plugins.split(",") if p])
    # Everything imported so far lives as long as the process: out of the collector's sight, a worker's
    # per-job `gc.collect()` costs microseconds instead of a walk over TensorFlow's ~400,000 objects (0.5 s a
    # job), and the collector no longer touches (and so copies) the pages the workers share with the zygote.
    gc.collect()
    gc.freeze()
    rss = psutil.Process().memory_info().rss / 2**20
    _send(sock, ("ready", os.getpid(), rss, thread_names(), gc.get_freeze_count()))
    return zygote_main(sock, args.threads)


# --- driver side -----------------------------------------------------------------------------------------------


class ZygoteError(InteropError):
    """The zygote died or did not get ready in time: the environment cannot start workers."""


class Zygote:
    """The driver's handle on one zygote process: start it, fork workers from it, learn how they exited."""

    def __init__(self, framework: str, threads: int, plugins: tuple[str, ...], log_dir: str, env: dict[str, str]):
        self.framework = framework
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self.log_path = str(Path(log_dir) / f"zygote-{framework}-{os.getpid()}-{time.time_ns()}.log")
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cmd = [sys.executable, "-m", "experiments.zygote", "--fd", str(theirs.fileno()), "--framework", framework]
        cmd += ["--threads", str(threads), "--plugins", ",".join(plugins)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        theirs.close()
        self.started = time.monotonic()
        self.frozen = 0  # objects the zygote froze out of the collector's sight before forking
        self.import_s: float | None = None  # from start to ready: what its first worker waited at most
        self.exits: dict[int, int] = {}
        self.rss_mb: float | None = None
        self.threads: list[str] = []

    def _receive(self, timeout: float | None) -> Any:
        """The next message, or None when none came within `timeout` s; ZygoteError once the zygote is gone."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return None
        try:
            data = self.sock.recv(MAX_MESSAGE)
        except OSError as exc:
            raise ZygoteError(f"the {self.framework} zygote is gone ({exc})") from exc
        if not data:
            raise ZygoteError(f"the {self.framework} zygote exited ({self.proc.poll()})")
        message = pickle.loads(data)
        if message[0] == "exited":
            self.exits[int(message[1])] = int(message[2])
        return message

    def wait_ready(self, timeout: float) -> None:
        """Block until the zygote has imported everything (once)."""
        deadline = time.monotonic() + timeout
        while self.rss_mb is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ZygoteError(f"the {self.framework} zygote was not ready within {timeout:g} s")
            message = self._receive(min(left, 1.0))
            if message is not None and message[0] == "ready":
                self.rss_mb, self.threads = float(message[2]), list(message[3])
                self.frozen = int(message[4])
                self.import_s = time.monotonic() - self.started

    def ready_now(self) -> bool:
        """Whether the zygote has imported everything, without waiting (the driver keeps other workers fed
        meanwhile); a zygote that died says so at `wait_ready`."""
        with contextlib.suppress(ZygoteError):
            while self.rss_mb is None and (message := self._receive(0)) is not None:
                if message[0] == "ready":
                    self.rss_mb, self.threads = float(message[2]), list(message[3])
                    self.frozen = int(message[4])
                    self.import_s = time.monotonic() - self.started
        return self.rss_mb is not None

    def pump(self) -> None:
        """Read every exit report already sent, without blocking."""
        with contextlib.suppress(ZygoteError):
            while self._receive(0) is not None:
                pass

    def alive(self) -> bool:
        return self.proc.poll() is None

    def spawn(self, log_path: str) -> tuple[ForkedProcess, Connection, Connection]:
        """A new worker forked from the zygote, and the driver's ends of its two pipes (inbox, outbox)."""
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        try:
            socket.send_fds(self.sock, [pickle.dumps(("spawn", {"log": log_path}))], [to_r, from_w])
        except OSError as exc:
            for fd in (to_r, to_w, from_r, from_w):
                os.close(fd)
            raise ZygoteError(f"the {self.framework} zygote is gone ({exc})") from exc
        finally:
            with contextlib.suppress(OSError):
                os.close(to_r)
                os.close(from_w)
        while True:
            message = self._receive(30.0)
            if message is None:
                raise ZygoteError(f"the {self.framework} zygote did not fork within 30 s")
            if message[0] == "spawned":
                proc = ForkedProcess(self, int(message[1]))
                return proc, Connection(to_w, readable=False), Connection(from_r, writable=False)

    def close(self) -> None:
        """Stop the zygote (its idle workers must be stopped before: they die with it)."""
        self.hang_up()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def hang_up(self) -> None:
        """Tell the zygote to leave (it exits when the driver's end of its socket closes); `close` waits for it."""
        with contextlib.suppress(OSError):
            self.sock.close()


class ForkedProcess:
    """A forked worker as the driver sees it: the parts of `subprocess.Popen` the worker pool uses."""

    def __init__(self, zygote: Zygote, pid: int) -> None:
        self.zygote, self.pid = zygote, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.zygote.pump()
            if self.pid in self.zygote.exits:
                self.returncode = self.zygote.exits.pop(self.pid)
            elif not self.zygote.alive() and not psutil.pid_exists(self.pid):
                self.returncode = -signal.SIGKILL  # the zygote died; its workers were killed with it
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
            try:
                self.zygote._receive(0.05)
            except ZygoteError:
                time.sleep(0.05)
        assert self.returncode is not None
        return self.returncode


if __name__ == "__main__":
    try:
        code = main()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)  # no interpreter teardown (TensorFlow's takes ~0.2 s): nothing is left to write or release
