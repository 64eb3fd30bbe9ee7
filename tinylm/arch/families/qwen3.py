"""Qwen3: the Llama block with an RMS norm over each head of q and of k (before rope)."""

from __future__ import annotations

from typing import Any

from ..spec import ModelSpec
from ._base import Family
from .llama import llama_config, llama_like_spec, sanitize, to_checkpoint


def qwen3_spec(cfg: dict[str, Any]) -> ModelSpec:
    bias = bool(cfg.get("attention_bias", False))
    return llama_like_spec(cfg, family="qwen3", qkv_bias=bias, out_bias=bias, qk_norm=True)


QWEN3 = Family(
    name="qwen3",
    model_types=("qwen3",),
    from_config=qwen3_spec,
    sanitize=sanitize,
    to_config=llama_config,
    to_checkpoint=to_checkpoint,
)
