"""NNSmith 0.1.0 on torch 2.13 / Keras 3: three measured incompatibilities and our fix for each.

1. nnsmith calls `torch.onnx.export` without `dynamo=False`; torch 2.13's default (dynamo) exporter fails on
   every nnsmith model, so its ONNX materialisation and operator probe break. `force_torchscript_export()`
   makes nnsmith's own export calls (and only those) use the TorchScript exporter.
2. nnsmith's TensorFlow backend builds `keras.layers` objects; Keras-3 layers are not `tf.Module`s, so its
   `TFNet` does not track them and their weights are missing from `net.variables` and from SavedModels.
   `track_keras_layers()` adds them to a tracked list.
3. The first run per model type probes which operators work and caches the result in
   `~/.cache/nnsmith-0.1.0/`; a probe made with a broken setup caches an empty list forever.
   `invalidate_broken_probe_cache()` deletes such files so the next run probes again.

4. `SymbolNet.forward` checks its tensors for NaN/Inf with a data-dependent Python `if`
   (`debug_numeric`), which torch.export cannot trace: the dynamo exporter then fails on every nnsmith model
   for a reason that is nnsmith's, not the converter's. `skip_numeric_guard()` makes that check a no-op
   (our own comparator counts NaN/Inf instead).

`apply()` does all four; it is idempotent and only imports the framework modules that exist.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

_PATCHED: set[str] = set()


class _OnnxNamespace:
    """`torch.onnx` as nnsmith sees it: `export` defaults to the TorchScript exporter."""

    def __init__(self, onnx_module: Any) -> None:
        self._onnx = onnx_module

    def export(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("dynamo", False)
        return self._onnx.export(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._onnx, name)


class _TorchNamespace:
    """The `torch` module with `onnx` replaced by `_OnnxNamespace`, installed into nnsmith's module only."""

    def __init__(self, torch_module: Any) -> None:
        self._torch = torch_module
        self.onnx = _OnnxNamespace(torch_module.onnx)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._torch, name)


def force_torchscript_export() -> None:
    """Fix 1: nnsmith's `torch2onnx` exports with `dynamo=False` (other callers of torch.onnx are untouched)."""
    if "torchscript" in _PATCHED:
        return
    import nnsmith.materialize.onnx as nnsmith_onnx
    import torch

    nnsmith_onnx.torch = _TorchNamespace(torch)
    _PATCHED.add("torchscript")


def skip_numeric_guard() -> None:
    """Fix 4: `SymbolNet.debug_numeric` does nothing, so torch.export can trace nnsmith models."""
    if "numeric" in _PATCHED:
        return
    from nnsmith.materialize.torch.symbolnet import SymbolNet

    def debug_numeric(self: Any, tensor_map: Any) -> None:
        return None

    SymbolNet.debug_numeric = debug_numeric
    _PATCHED.add("numeric")


def track_keras_layers() -> None:
    """Fix 2: after `TFNet.__init__`, keep every Keras layer of the net in a tracked list attribute."""
    if "keras" in _PATCHED:
        return
    import keras
    from nnsmith.materialize.tensorflow.tfnet import TFNet

    original_init = TFNet.__init__

    def __init__(self: Any, ir: Any) -> None:
        original_init(self, ir)
        self.keras_layers = [ins.fwd_fn for ins in self.instructions if isinstance(ins.fwd_fn, keras.layers.Layer)]

    TFNet.__init__ = __init__
    _PATCHED.add("keras")


def probe_cache_dir() -> Path:
    """Where nnsmith caches its operator probes (`~/.cache/nnsmith-<version>` on Linux)."""
    from appdirs import user_cache_dir
    from nnsmith import __version__

    return Path(user_cache_dir(f"nnsmith-{__version__}"))


def invalidate_broken_probe_cache(cache_dir: Path | None = None) -> list[Path]:
    """Fix 3: delete probe caches that are unreadable or list no operators; returns what was deleted."""
    from omegaconf import DictConfig, OmegaConf

    cache_dir = cache_dir or probe_cache_dir()
    removed: list[Path] = []
    if not cache_dir.is_dir():
        return removed
    for path in sorted(cache_dir.glob("*.yaml")):
        try:
            conf = OmegaConf.load(path)
            topset = conf.get("topset") if isinstance(conf, DictConfig) else None
            broken = not topset
        except Exception:
            broken = True
        if broken:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def apply(frameworks: tuple[str, ...] = ("torch", "tensorflow")) -> None:
    """Apply every fix that applies to the given frameworks (idempotent; the cache is checked once per process)."""
    if "cache" not in _PATCHED:
        invalidate_broken_probe_cache()
        _PATCHED.add("cache")
    if "torch" in frameworks:
        force_torchscript_export()
        skip_numeric_guard()
    if "tensorflow" in frameworks and importlib.util.find_spec("tensorflow") is not None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        track_keras_layers()
