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
from .llama import llama_like_config, llama_like_spec
from .llama import sanitize as llama_sanitize
from .llama import to_checkpoint as llama_to_checkpoint


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


def phi3_config(spec: ModelSpec, base: dict[str, Any] | None = None) -> dict[str, Any]:
    return llama_like_config(spec, base)


def to_checkpoint(weights: Weights, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Canonical tensors -> Phi-3 names, q/k/v fused into `qkv_proj` and gate/up into `gate_up_proj`."""
    out = llama_to_checkpoint(weights, spec)
    for i in range(spec.num_layers):
        p = f"model.layers.{i}"
        parts = [out.pop(f"{p}.self_attn.{x}_proj.weight") for x in "qkv"]
        out[f"{p}.self_attn.qkv_proj.weight"] = np.concatenate(parts, axis=0)  # (q_size + 2 * kv_size, H)
        gate, up = out.pop(f"{p}.mlp.gate_proj.weight"), out.pop(f"{p}.mlp.up_proj.weight")
        out[f"{p}.mlp.gate_up_proj.weight"] = np.concatenate([gate, up], axis=0)  # (2I, H)
    return out


PHI3 = Family(
    name="phi3",
    model_types=("phi3",),
    from_config=phi3_spec,
    sanitize=sanitize,
    to_config=phi3_config,
    to_checkpoint=to_checkpoint,
)
