"""One test per nnsmith compatibility fix, each on a real nnsmith model (see experiments/nnsmith_compat.py).

Each test runs in a fresh interpreter: nnsmith registers its operator implementations per process, and the
torch and TensorFlow materialisations must not meet in one.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


GEN_TORCH = """
    from experiments import nnsmith_compat
    {apply}
    from nnsmith.graph_gen import model_gen
    from nnsmith.materialize import Model
    from nnsmith.narrow_spec import auto_opset
    cls = Model.init("torch")
    ops = auto_opset(cls, None)
    ir = model_gen(opset=ops, method="symbolic-cinit", seed=1, max_nodes=5).make_concrete()
"""


@pytest.mark.slow
def test_fix1_nnsmith_onnx_materialisation_uses_the_torchscript_exporter(tmp_path: Path) -> None:
    out = _python(
        GEN_TORCH.format(apply="nnsmith_compat.apply(('torch',))")
        + f"""
    from nnsmith.materialize.onnx import ONNXModelCPU
    model = ONNXModelCPU.from_gir(ir)
    model.dump({str(tmp_path / "m.onnx")!r})
    import onnx
    print("nodes", len(onnx.load({str(tmp_path / "m.onnx")!r}).graph.node))
    """
    )
    assert "nodes" in out and int(out.split()[-1]) > 0


@pytest.mark.slow
def test_fix4_dynamo_can_trace_nnsmith_models_only_with_the_numeric_guard_skipped() -> None:
    code = (
        GEN_TORCH
        + """
    import torch
    net = cls.from_gir(ir).torch_model.eval()
    args = tuple(torch.ones(t.shape, dtype=t.dtype.torch()) for t in net.input_like.values())
    try:
        torch.onnx.export(net, args, dynamo=True, verbose=False)
        print("EXPORTED")
    except Exception as exc:
        print("FAILED", type(exc).__name__)
    """
    )
    assert "FAILED" in _python(code.format(apply="nnsmith_compat.force_torchscript_export()"))
    assert "EXPORTED" in _python(code.format(apply="nnsmith_compat.apply(('torch',))"))


@pytest.mark.slow
def test_fix2_keras_layers_are_tracked_so_their_weights_are_saved(tmp_path: Path) -> None:
    code = f"""
    from experiments import nnsmith_compat
    {{apply}}
    import tensorflow as tf
    from nnsmith.abstract.dtype import DType
    from nnsmith.abstract.op import AbsTensor, Placeholder
    from nnsmith.gir import GraphIR, InstExpr
    from nnsmith.materialize import Model
    from nnsmith.materialize.tensorflow.dialect import Dense
    cls = Model.init("tensorflow")
    ir = GraphIR()
    x = ir.add_inst(InstExpr(op=Placeholder(AbsTensor([2, 4], DType.float32)).to_input(), args=[])).retval()
    dense = Dense(ifeat=4, ofeat=3)
    itensors = [ir.vars[x]]
    out = dense.checked_type_transfer(itensors)
    dense.bind_input_like(itensors)
    dense.bind_output_like(out)
    ir.add_inst(InstExpr(op=dense, args=[x]))
    model = cls.from_gir(ir)
    model.net(tf.ones([2, 4]))
    try:
        model.dump({str(tmp_path / "saved")!r})
        loaded = tf.saved_model.load({str(tmp_path / "saved" / "tfnet")!r})
        fresh = list(model.net(tf.ones([2, 4])).values())[0].numpy()
        again = list(loaded.signatures["serving_default"](**dict([(x, tf.ones([2, 4]))])).values())[0].numpy()
        same = "same" if (fresh == again).all() else "different"
        print("SAVED", same, "weights", len(model.net.keras_layers[0].weights))
    except Exception as exc:
        print("FAILED", type(exc).__name__)
    """
    before = _python(code.format(apply="pass"))
    after = _python(code.format(apply="nnsmith_compat.apply(('tensorflow',))"))
    assert "FAILED" in before
    assert "SAVED same weights 2" in after
