"""Qwen2 / Qwen2.5: the Llama block with biases on q, k and v (not on o)."""

from __future__ import annotations

from typing import Any

from ..spec import ModelSpec
from ._base import Family
from .llama import llama_like_config, llama_like_spec, sanitize, to_checkpoint


def qwen2_spec(cfg: dict[str, Any]) -> ModelSpec:
    return llama_like_spec(cfg, family="qwen2", qkv_bias=True, out_bias=False, qk_norm=False)


def qwen2_config(spec: ModelSpec, base: dict[str, Any] | None = None) -> dict[str, Any]:
    return llama_like_config(spec, base)


QWEN2 = Family(
    name="qwen2",
    model_types=("qwen2",),
    from_config=qwen2_spec,
    sanitize=sanitize,
    to_config=qwen2_config,
    to_checkpoint=to_checkpoint,
)
