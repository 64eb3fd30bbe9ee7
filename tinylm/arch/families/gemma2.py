"""Gemma 2 (2B, 9B): Gemma's block with a norm on each side of attention and of the MLP (sandwich), soft-capped
attention scores and final logits, `query_pre_attn_scalar` for the attention scale, and sliding-window layers
alternating with global ones (`layer_types`).

    x = x + rms'(o(attn(rms(x))))           scores: cap_a * tanh(q.k / sqrt(query_pre_attn_scalar) / cap_a)
    x = x + rms'(mlp(rms(x)))               every norm scales by (1 + w)
    logits = cap_f * tanh(lm_head(rms(x)) / cap_f)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..spec import ModelSpec
from ._base import Family, Weights
from .gemma import gemma_config, gemma_spec
from .llama import sanitize as llama_sanitize
from .llama import to_checkpoint as llama_to_checkpoint

# checkpoint layer norm -> canonical (before the Llama rules; input_layernorm stays attn_norm)
NORMS = [
    ("post_attention_layernorm", "attn_post_norm"),
    ("pre_feedforward_layernorm", "mlp_norm"),
    ("post_feedforward_layernorm", "mlp_post_norm"),
]


def layer_windows(cfg: dict[str, Any], default_types: list[str]) -> tuple[int | None, ...]:
    """Each layer's window from `layer_types` ("sliding_attention" / "full_attention") and `sliding_window`."""
    window = cfg.get("sliding_window")
    if not window:
        return ()
    types = cfg.get("layer_types") or default_types
    windows = tuple(int(window) if t == "sliding_attention" else None for t in types)
    return windows if any(w is not None for w in windows) else ()


def layer_types(spec: ModelSpec) -> list[str]:
    return ["sliding_attention" if spec.window(i) is not None else "full_attention" for i in range(spec.num_layers)]


def gemma2_spec(cfg: dict[str, Any]) -> ModelSpec:
    spec = gemma_spec({**cfg, "sliding_window": None})
    alternating = ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(cfg["num_hidden_layers"])]
    cap_a, cap_f = cfg.get("attn_logit_softcapping"), cfg.get("final_logit_softcapping")
    return dataclasses.replace(
        spec,
        family="gemma2",
        norm_placement="sandwich",
        qkv_bias=bool(cfg.get("attention_bias", False)),
        out_bias=bool(cfg.get("attention_bias", False)),
        attn_scale=float(cfg.get("query_pre_attn_scalar", spec.head_dim)) ** -0.5,
        attn_softcap=float(cap_a) if cap_a else None,
        logits_softcap=float(cap_f) if cap_f else None,
        layer_windows=layer_windows(cfg, alternating),
    )


def _pre_attn_scalar(scale: float) -> int | float:
    """`query_pre_attn_scalar` for an attention scale of scalar ** -0.5: an int when it is one (transformers 5's
    Gemma configs accept only ints; 32 ** -0.5 ** -2 is 31.999999999999996 in floats)."""
    scalar = scale**-2
    return round(scalar) if abs(scalar - round(scalar)) < 1e-6 * scalar else scalar


def gemma2_config(spec: ModelSpec, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """config.json for a Gemma 2 spec (the inverse of `gemma2_spec`), updating `base` if given."""
    cfg = gemma_config(spec, base)
    windows = [w for w in spec.layer_windows if w is not None]
    cfg.update(
        attention_bias=spec.qkv_bias,
        query_pre_attn_scalar=_pre_attn_scalar(spec.scale),
        attn_logit_softcapping=spec.attn_softcap,
        final_logit_softcapping=spec.logits_softcap,
        # no sliding layer: a window no sequence outgrows (transformers builds the sliding mask from it anyway)
        sliding_window=windows[0] if windows else spec.max_positions,
        layer_types=layer_types(spec),
    )
    return cfg


def sanitize(raw: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    return llama_sanitize(raw, spec, norms=NORMS)


def to_checkpoint(weights: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Canonical tensors -> Gemma 2 names (the inverse of `sanitize`)."""
    return llama_to_checkpoint(weights, spec, norms=NORMS)


GEMMA2 = Family(
    name="gemma2",
    model_types=("gemma2",),
    from_config=gemma2_spec,
    sanitize=sanitize,
    to_config=gemma2_config,
    to_checkpoint=to_checkpoint,
)
