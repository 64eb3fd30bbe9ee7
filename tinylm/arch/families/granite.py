"""IBM Granite (dense: granite-3.x 2B/8B, granite-3.1, granite-4.0-micro's dense layers): the Llama block
with four multipliers from the config.

    x = embed(ids) * embedding_multiplier
    x = x + residual_multiplier * attn(rms(x))        (softmax(q k^T * attention_multiplier) v)
    x = x + residual_multiplier * mlp(rms(x))
    logits = lm_head(rms(x)) / logits_scaling
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..spec import ModelSpec
from ._base import Family
from .llama import llama_like_config, llama_like_spec, sanitize, to_checkpoint


def granite_spec(cfg: dict[str, Any]) -> ModelSpec:
    bias = bool(cfg.get("attention_bias", False))
    spec = llama_like_spec(cfg, family="granite", qkv_bias=bias, out_bias=bias, qk_norm=False)
    return dataclasses.replace(
        spec,
        embed_scale=float(cfg.get("embedding_multiplier", 1.0)),
        attn_scale=float(cfg.get("attention_multiplier", 1.0)),
        residual_scale=float(cfg.get("residual_multiplier", 1.0)),
        logits_scaling=float(cfg.get("logits_scaling", 1.0)),
    )


def granite_config(spec: ModelSpec, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """config.json for a Granite spec (the inverse of `granite_spec`), updating `base` if given."""
    cfg = llama_like_config(spec, base)
    cfg.update(
        attention_bias=spec.qkv_bias,
        embedding_multiplier=spec.embed_scale,
        attention_multiplier=spec.scale,
        residual_multiplier=spec.residual_scale,
        logits_scaling=spec.logits_scaling,
    )
    return cfg


GRANITE = Family(
    name="granite",
    model_types=("granite",),
    from_config=granite_spec,
    sanitize=sanitize,
    to_config=granite_config,
    to_checkpoint=to_checkpoint,
)
