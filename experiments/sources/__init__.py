"""Model sources: each turns generator parameters into a `LoadedModel` (stage generate) or reloads it (load)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from experiments.core import LoadedModel
from experiments.registry import Registry


class ModelSource:
    """A plug-in that produces models of one framework; subclasses set `name`, `framework`, `kind`."""

    name: str = ""
    framework: str = ""
    #: how converters must treat its models: torch_module, tf_function or keras
    kind: str = ""

    def expand(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        """Generator parameters of every model this source contributes to a campaign (seeds, node counts…)."""
        raise NotImplementedError

    @staticmethod
    def package_version(name: str) -> str:
        """Version of the generating package: part of a model's parameters, so an upgrade means new models."""
        from importlib import metadata

        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "unknown"

    def display_name(self, params: dict[str, Any]) -> str:
        return "-".join(f"{k}{v}" for k, v in sorted(params.items()) if not isinstance(v, dict))

    def node_count(self, params: dict[str, Any]) -> int | None:
        """How many operators the model of `params` has, where the source knows it before building (a generator's
        requested node count); None where it does not. Breakdowns by node count read it."""
        return None

    def build_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        """What `build` uses beyond `params` (defaults it fills in, fixed configurations), so a stored model says
        exactly how it was made; plug-ins that have none keep this empty default."""
        return {}

    def resolved(self, params: dict[str, Any]) -> dict[str, Any]:
        """A model's exact recipe: this source's name and plug-in module, its parameters, its build settings."""
        return {
            "source": self.name,
            "module": type(self).__module__,
            "framework": self.framework,
            "kind": self.kind,
            "params": params,
            "settings": self.build_settings(params),
        }

    def build(self, params: dict[str, Any], out_dir: Path) -> LoadedModel:
        """Generate the model (stage generate), saving its files under `out_dir` where it has any."""
        raise NotImplementedError

    def load(self, params: dict[str, Any], location: str | None) -> LoadedModel:
        """Reload a model generated before (stage load); by default it is rebuilt from its seed."""
        return self.build(params, Path(location) if location else Path("."))


SOURCES: Registry[ModelSource] = Registry("model source")


def _nnsmith_torch() -> ModelSource:
    from experiments.sources.nnsmith_source import NNSmithTorch

    return NNSmithTorch()


def _nnsmith_tf() -> ModelSource:
    from experiments.sources.nnsmith_source import NNSmithTensorFlow

    return NNSmithTensorFlow()


def _keras_apps() -> ModelSource:
    from experiments.sources.keras_apps import KerasApplications

    return KerasApplications()


def _hf_torch() -> ModelSource:
    from experiments.sources.hf_torch import TransformersFromConfig

    return TransformersFromConfig()


SOURCES.register("nnsmith-torch", _nnsmith_torch)
SOURCES.register("nnsmith-tensorflow", _nnsmith_tf)
SOURCES.register("keras-applications", _keras_apps)
SOURCES.register("transformers-torch", _hf_torch)
