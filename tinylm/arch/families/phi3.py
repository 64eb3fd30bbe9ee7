"""Phi-3 / Phi-3.5 / Phi-4-mini: the Llama block with fused checkpoint tensors.

The checkpoint stores `qkv_proj` (q, k, v stacked on the output axis) and `gate_up_proj`
(gate then up); they are split at load so backends see the canonical layout.
Partial rotary (`partial_rotary_factor`) and longrope scaling come from the config.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..spec import ModelSpec
from ._base import Family, Weights
from .llama import llama_like_spec
from .llama import sanitize as llama_sanitize


def phi3_spec(cfg: dict[str, Any]) -> ModelSpec:
    return llama_like_spec(cfg, family="phi3", qkv_bias=False, out_bias=False, qk_norm=False)


def sanitize(raw: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    weights = llama_sanitize(raw, spec)
    for name in [n for n in weights if n.endswith("self_attn.qkv_proj.weight")]:
        i = name.split(".")[-4]
        qkv = weights.pop(name)  # (q_size + 2 * kv_size, H)
        q, k, v = np.split(qkv, [spec.q_size, spec.q_size + spec.kv_size], axis=0)
        weights.update({f"layers.{i}.attn.q.weight": q, f"layers.{i}.attn.k.weight": k, f"layers.{i}.attn.v.weight": v})
    for name in [n for n in weights if n.endswith("mlp.gate_up_proj.weight")]:
        i = name.split(".")[-4]
        gate, up = np.split(weights.pop(name), 2, axis=0)  # (2I, H) -> 2 x (I, H)
        weights.update({f"layers.{i}.mlp.gate.weight": gate, f"layers.{i}.mlp.up.weight": up})
    return weights


PHI3 = Family(name="phi3", model_types=("phi3",), from_config=phi3_spec, sanitize=sanitize)
