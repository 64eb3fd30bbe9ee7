"""OLMo 2 (AllenAI, 1B-32B): the Llama MLP and attention with the norms moved to the sublayers' outputs,
and q/k RMS norms over the whole projections (not per head).

    x = x + rms(o(attn(rope(rms_q(q(x))), rope(rms_k(k(x))), v(x))))
    x = x + rms(down(silu(gate(x)) * up(x)))
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..spec import ModelSpec
from ._base import Family, Weights
from .llama import llama_like_config, llama_like_spec
from .llama import sanitize as llama_sanitize
from .llama import to_checkpoint as llama_to_checkpoint

# checkpoint layer norm -> canonical (before the Llama rules, which map post_attention_layernorm elsewhere)
NORMS = [("post_attention_layernorm", "attn_post_norm"), ("post_feedforward_layernorm", "mlp_post_norm")]


def olmo2_spec(cfg: dict[str, Any]) -> ModelSpec:
    bias = bool(cfg.get("attention_bias", False))
    spec = llama_like_spec(cfg, family="olmo2", qkv_bias=bias, out_bias=bias, qk_norm=True)
    return dataclasses.replace(spec, norm_placement="output", qk_norm_over="all")


def olmo2_config(spec: ModelSpec, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """config.json for an OLMo 2 spec (the inverse of `olmo2_spec`), updating `base` if given."""
    return {**llama_like_config(spec, base), "attention_bias": spec.qkv_bias}


def sanitize(raw: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    return llama_sanitize(raw, spec, norms=NORMS)


def to_checkpoint(weights: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Canonical tensors -> OLMo 2 names (the inverse of `sanitize`)."""
    return llama_to_checkpoint(weights, spec, norms=NORMS)


OLMO2 = Family(
    name="olmo2",
    model_types=("olmo2",),
    from_config=olmo2_spec,
    sanitize=sanitize,
    to_config=olmo2_config,
    to_checkpoint=to_checkpoint,
)
