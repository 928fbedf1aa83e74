"""Real PyTorch architectures available offline: Hugging Face `transformers` models built from small configs.

No download happens (`HF_HUB_OFFLINE=1`); weights are the seeded random initialisation. Exporting the models
directly fails on keyword-only arguments (`use_cache`), so a wrapper takes one positional tensor.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from experiments.core import LoadedModel, TensorSpec, hash_arrays
from experiments.sources import ModelSource

#: small configurations: (model_type, config overrides, input name, input shape, input dtype)
ARCHS: dict[str, tuple[str, dict[str, Any], str, tuple[int, ...], str]] = {
    "bert": (
        "bert",
        {
            "vocab_size": 1000,
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 128,
            "max_position_embeddings": 64,
        },
        "input_ids",
        (1, 16),
        "int64",
    ),
    "distilbert": (
        "distilbert",
        {"vocab_size": 1000, "dim": 64, "n_layers": 2, "n_heads": 2, "hidden_dim": 128, "max_position_embeddings": 64},
        "input_ids",
        (1, 16),
        "int64",
    ),
    "gpt2": (
        "gpt2",
        {"vocab_size": 1000, "n_embd": 64, "n_layer": 2, "n_head": 2, "n_positions": 64, "use_cache": False},
        "input_ids",
        (1, 16),
        "int64",
    ),
    "vit": (
        "vit",
        {
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 128,
        },
        "pixel_values",
        (1, 3, 32, 32),
        "float32",
    ),
}


def _wrapper(model: Any, input_name: str) -> Any:
    import torch

    class Positional(torch.nn.Module):
        """forward(x) -> last_hidden_state, so both exporters see one positional tensor."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(**{input_name: x}, return_dict=True).last_hidden_state

    return Positional().eval()


class TransformersFromConfig(ModelSource):
    name, framework, kind = "transformers-torch", "torch", "torch_module"

    def expand(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        version = self.package_version("transformers")
        return [
            {"arch": arch, "seed": int(s), "generator_version": version}
            for arch in options.get("archs", list(ARCHS))
            for s in options.get("seeds", [0])
        ]

    def display_name(self, params: dict[str, Any]) -> str:
        return f"{params['arch']}-s{params['seed']}"

    def build_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        model_type, overrides, input_name, shape, dtype = ARCHS[params["arch"]]
        return {
            "model_type": model_type,
            "config": dict(overrides),
            "input": {"name": input_name, "shape": list(shape), "dtype": dtype},
            "output": "last_hidden_state",
            "seed": int(params["seed"]),
        }

    def build(self, params: dict[str, Any], out_dir: Path) -> LoadedModel:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoConfig, AutoModel

        model_type, overrides, input_name, shape, dtype = ARCHS[params["arch"]]
        torch.manual_seed(int(params["seed"]))
        config = AutoConfig.for_model(model_type, **overrides)
        net = _wrapper(AutoModel.from_config(config).eval(), input_name)
        spec = TensorSpec(input_name, shape, dtype)

        def run(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
            with torch.no_grad():
                return [net(torch.from_numpy(inputs[input_name])).numpy()]

        operators = [type(m).__name__ for m in net.model.modules() if not list(m.children())]
        weights = [v.detach().numpy() for v in net.state_dict().values()]
        return LoadedModel(
            framework="torch",
            native=net,
            inputs=[spec],
            output_names=["last_hidden_state"],
            run=run,
            # Leaf module types in definition order; no edge list (module order is not the dataflow graph).
            operators=operators,
            graph=[],
            content_hash=hash_arrays([params["arch"].encode(), *weights]),
        )
