"""Multi-head attention with grouped KV heads, rotary positions, optional q/k norms and a KV cache.

Grouped heads are never repeated: q is viewed as (B, nkv, g, T, hd) against k, v (B, nkv, 1, S, hd), and
matmul broadcasts the group axis. The mask is additive (0 where a query may attend, a large negative
number elsewhere) and comes from the host, so causal, sliding-window and padding masks are one input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Var

from tinylm.arch.spec import ModelSpec

from .kvcache import KVCache
from .layers import dynamic_shape, linear, norm, rotate
from .weights import Constants

__all__ = ["Frame", "attention"]


@dataclass(frozen=True)
class Frame:
    """What every layer needs for one call: rotary tables (1, 1, T, rd) by `ModelSpec.rope_kind`, the additive
    mask (B or 1, 1, T, S) from the host, the additive band of each per-layer sliding window (added to the mask
    on the layers that have that window), the KV cache, and the conv layers' states (`conv.ConvStates`, LFM2)."""

    rope: dict[str, tuple[Var, Var]]
    mask: Var
    cache: KVCache
    bands: dict[int, Var] = field(default_factory=dict)
    conv: Any = None


def _heads(x: Var, n: int, hd: int) -> Var:
    """(B, T, n * hd) -> (B, n, T, hd)."""
    return mb.transpose(x=mb.reshape(x=x, shape=dynamic_shape(x, 2, [n, hd])), perm=[0, 2, 1, 3])


def _capped(scores: Var, spec: ModelSpec) -> Var:
    """Gemma 2's soft-capped scores, cap * tanh(s / cap), or the scores as they are."""
    if spec.attn_softcap is None:
        return scores
    cap = np.float32(spec.attn_softcap)
    return mb.mul(x=mb.tanh(x=mb.real_div(x=scores, y=cap)), y=cap)


def _attend(q: Var, k: Var, v: Var, mask: Var, spec: ModelSpec) -> Var:
    """softmax(q k^T + mask) v for q (B, nh, T, hd), k, v (B, nkv, S, hd) -> (B, nh, T, hd); q is pre-scaled."""
    nh, nkv, hd = spec.num_heads, spec.num_kv_heads, spec.head_dim
    if nh == nkv:
        scores = mb.add(x=_capped(mb.matmul(x=q, y=k, transpose_y=True), spec), y=mask)  # (B, nh, T, S)
        return mb.matmul(x=mb.softmax(x=scores, axis=-1), y=v)
    g = nh // nkv
    q5 = mb.reshape(x=q, shape=dynamic_shape(q, 1, [nkv, g, -1, hd]))  # (B, nkv, g, T, hd)
    k5, v5 = mb.expand_dims(x=k, axes=[2]), mb.expand_dims(x=v, axes=[2])  # (B, nkv, 1, S, hd)
    scores = _capped(mb.matmul(x=q5, y=k5, transpose_y=True), spec)  # (B, nkv, g, T, S)
    scores = mb.add(x=scores, y=mb.expand_dims(x=mask, axes=[2]))
    y = mb.matmul(x=mb.softmax(x=scores, axis=-1), y=v5)  # (B, nkv, g, T, hd)
    return mb.reshape(x=y, shape=dynamic_shape(y, 1, [nh, -1, hd]))  # (B, nh, T, hd)


def attention(x: Var, spec: ModelSpec, w: Constants, layer: int, frame: Frame) -> Var:
    """x (B, T, H) -> (B, T, H)."""
    p = f"layers.{layer}.attn"
    nh, nkv, hd = spec.num_heads, spec.num_kv_heads, spec.head_dim
    q = linear(x, w(f"{p}.q.weight"), w.optional(f"{p}.q.bias"))  # (B, T, nh * hd)
    k = linear(x, w(f"{p}.k.weight"), w.optional(f"{p}.k.bias"))  # (B, T, nkv * hd)
    whole = spec.qk_norm and spec.qk_norm_over == "all"  # OLMo 2: over the whole projection
    if whole:
        q, k = norm(q, spec.norm, w(f"{p}.q_norm.weight")), norm(k, spec.norm, w(f"{p}.k_norm.weight"))
    q, k = _heads(q, nh, hd), _heads(k, nkv, hd)  # (B, nh, T, hd), (B, nkv, T, hd)
    v = _heads(linear(x, w(f"{p}.v.weight"), w.optional(f"{p}.v.bias")), nkv, hd)
    if spec.qk_norm and not whole:
        q = norm(q, spec.norm, w(f"{p}.q_norm.weight"))
        k = norm(k, spec.norm, w(f"{p}.k_norm.weight"))
    kind = spec.rope_kind(layer)  # None on layers without rotary positions
    if kind is not None:
        (cos, sin), rd = frame.rope[kind], spec.rope_of(kind).rotary_dim
        q, k = rotate(q, cos, sin, rd, hd), rotate(k, cos, sin, rd, hd)
    k, v = frame.cache.append(layer, k, v)  # (B, nkv, S, hd)
    window = spec.window(layer)
    mask = mb.add(x=frame.mask, y=frame.bands[window]) if window in frame.bands else frame.mask
    y = _attend(mb.mul(x=q, y=spec.scale), k, v, mask, spec)  # (B, nh, T, hd)
    y = mb.transpose(x=y, perm=[0, 2, 1, 3])  # (B, T, nh, hd)
    y = mb.reshape(x=y, shape=dynamic_shape(y, 2, [nh * hd]))  # (B, T, nh * hd)
    return linear(y, w(f"{p}.o.weight"), w.optional(f"{p}.o.bias"))
