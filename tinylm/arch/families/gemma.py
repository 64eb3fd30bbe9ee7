"""Gemma (v1): the Llama block with three twists.

- RMS norms scale by (1 + w): the checkpoint stores w - 1 (`NormSpec.weight_offset = 1`).
- Embeddings are multiplied by sqrt(H) before the first block.
- The MLP activation is tanh-approximated GELU; embeddings are tied.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..spec import ModelSpec, NormSpec
from ._base import Family, activation, activation_name
from .llama import llama_like_config, llama_like_spec, sanitize, to_checkpoint


def gemma_spec(cfg: dict[str, Any]) -> ModelSpec:
    cfg = {"tie_word_embeddings": True, **cfg}
    spec = llama_like_spec(cfg, family="gemma", qkv_bias=False, out_bias=False, qk_norm=False)
    act = cfg.get("hidden_activation") or cfg.get("hidden_act") or "gelu_pytorch_tanh"
    return dataclasses.replace(
        spec,
        norm=NormSpec(kind="rms", eps=spec.norm.eps, weight_offset=1.0),
        activation=activation(act, family="gemma"),
        embed_scale=float(cfg["hidden_size"]) ** 0.5,
    )


def gemma_config(spec: ModelSpec, base: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = llama_like_config(spec, base)
    cfg["hidden_activation"] = cfg["hidden_act"] = activation_name(spec.activation)
    return cfg


GEMMA = Family(
    name="gemma",
    model_types=("gemma",),
    from_config=gemma_spec,
    sanitize=sanitize,
    to_config=gemma_config,
    to_checkpoint=to_checkpoint,
)
