"""Runtimes that execute the converted ONNX model; onnxruntime on CPU is the one the study used."""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.registry import Registry


class Runtime:
    """Open a session on ONNX bytes (stage ort_session) and run one input through it (stage ort_run)."""

    name = ""

    def version(self) -> str:
        raise NotImplementedError

    def session(self, onnx_bytes: bytes, threads: int = 1) -> Any:
        raise NotImplementedError

    def run(self, session: Any, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError


class OnnxRuntimeCPU(Runtime):
    name = "onnxruntime-cpu"

    def version(self) -> str:
        import onnxruntime

        return str(onnxruntime.__version__)

    def session(self, onnx_bytes: bytes, threads: int = 1) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])

    def run(self, session: Any, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        # Exporters may drop inputs the graph never reads (feed only what the session declares) or rename them
        # (then inputs are matched by position).
        declared = [i.name for i in session.get_inputs()]
        if all(name in inputs for name in declared):
            feeds = {name: inputs[name] for name in declared}
        else:
            feeds = dict(zip(declared, inputs.values(), strict=False))
        return [np.asarray(o) for o in session.run(None, feeds)]


RUNTIMES: Registry[Runtime] = Registry("runtime")
RUNTIMES.register("onnxruntime-cpu", OnnxRuntimeCPU)
