"""The long-lived conversion worker: imports the frameworks once, then runs model jobs sent over a pipe.

Started by `experiments.isolation`, either forked from a warm zygote (`experiments.zygote`, the default) or as
`python -m experiments.worker` (a fresh interpreter); everything a bad model can do to it (segfault, abort,
hang, memory blow-up) only costs this process, which the driver then replaces.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib
import os
import signal
import sys
from multiprocessing.connection import Connection


def die_with_parent() -> None:
    """Linux: get SIGKILL when the parent dies (e.g. the driver's `kill -9`), so no orphan keeps converting."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def preload(frameworks: list[str], threads: int) -> None:
    """Import the frameworks a campaign needs before the first job, with one compute thread each.

    Imports and settings only, no computation: a zygote runs this before forking (see `experiments.zygote`).
    """
    if "torch" in frameworks:
        import torch

        torch.set_num_threads(threads)
    if "tensorflow" in frameworks:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    for name in frameworks:
        if name in ("torch", "tensorflow"):
            from experiments import nnsmith_compat

            nnsmith_compat.apply((name,))
    import onnxruntime  # noqa: F401


def _release() -> None:
    """Free what the last job left behind: Keras keeps every built model in its global state otherwise."""
    if "keras" in sys.modules:
        import keras

        keras.backend.clear_session()
    gc.collect()


def serve(inbox: Connection, outbox: Connection, stderr_path: str | None, threads: int) -> int:
    """Say Ready, then run StartJob messages until Stop or the driver's end of the pipe closes."""
    from experiments.messages import JobDone, Ready, StartJob, WorkerMessage
    from experiments.pipeline import run_job

    outbox.send(Ready(os.getpid()))

    def emit(message: WorkerMessage) -> None:
        outbox.send(message)
        sys.stderr.flush()

    while True:
        try:
            message = inbox.recv()
        except EOFError:
            return 0
        if not isinstance(message, StartJob):  # Stop
            return 0
        run_job(message.job, emit, stderr_path=stderr_path, threads=threads)
        _release()
        outbox.send(JobDone())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="experiments.worker")
    parser.add_argument("--rfd", type=int, required=True)
    parser.add_argument("--wfd", type=int, required=True)
    parser.add_argument("--stderr", default=None)
    parser.add_argument("--preload", default="")
    parser.add_argument("--plugins", default="")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    die_with_parent()
    inbox, outbox = Connection(args.rfd, writable=False), Connection(args.wfd, readable=False)
    for module in filter(None, args.plugins.split(",")):
        importlib.import_module(module)
    preload([f for f in args.preload.split(",") if f], args.threads)
    gc.collect()
    gc.freeze()  # as a zygote does: the imports stay out of every per-job collection
    return serve(inbox, outbox, args.stderr, args.threads)


if __name__ == "__main__":
    sys.exit(main())
