"""Attention lowered from the spec, on OpenVINO's ScaledDotProductAttention (opset 13).

Decoders keep each layer's keys and values in OpenVINO state, in the pattern the CPU plugin fuses into its
KV-cache attention (StatefulSDPAFusion), so nothing of the cache crosses Python:

    past = ReadValue(var, init: zeros (B, nkv, 0, hd)) -> Gather(past, beam_idx, 0)
    all  = Concat(past, new (B, nkv, T, hd), axis 2) -> Assign(var)               (B, nkv, S, hd)
    [grouped KV: Unsqueeze(2) -> Broadcast (B, nkv, g, S, hd) -> Reshape (B, nh, S, hd)]
    y    = SDPA(q (B, nh, T, hd), k, v, mask (1, 1, T, S) float: 0 or lowest, added to the scores; scale)

Encoders: the same SDPA without state, with the padding mask (B, 1, 1, T).
"""

from __future__ import annotations

import numpy as np
import openvino as ov
from openvino.op.util import Variable, VariableInfo

from .graph import Output, const, ints, ops
from .layers import Lowering

__all__ = ["decoder_attention", "encoder_attention"]


def _heads(lw: Lowering, x: Output, n: int, prefix: str, norm: bool) -> Output:
    """(B, T, n * hd) -> (B, n, T, hd), with Qwen3's per-head RMS norm when `norm`."""
    y = ops.reshape(x, ints([0, 0, n, lw.spec.head_dim]), special_zero=True).output(0)  # (B, T, n, hd)
    if norm:
        y = lw.norm(y, prefix)
    return ops.transpose(y, ints([0, 2, 1, 3])).output(0)  # (B, n, T, hd)


def _qkv(lw: Lowering, x: Output, i: int) -> tuple[Output, Output, Output]:
    """q (B, nh, T, hd), k and v (B, nkv, T, hd), rotated. One projection for the three, split by heads after
    the transpose (SmolLM2-135M on CPU: first token 3-9% sooner, decode up to 8% faster than three projections;
    docs/backends/openvino.md); separate ones where Qwen3 normalises q and k per head before the transpose."""
    s, p = lw.spec, f"layers.{i}.attn"
    if s.qk_norm and s.qk_norm_over == "all":  # OLMo 2: over the whole projection, before the heads split
        q = _heads(lw, lw.norm(lw.linear(x, f"{p}.q", bias=s.qkv_bias), f"{p}.q_norm"), s.num_heads, "", False)
        k = _heads(lw, lw.norm(lw.linear(x, f"{p}.k", bias=s.qkv_bias), f"{p}.k_norm"), s.num_kv_heads, "", False)
        v = _heads(lw, lw.linear(x, f"{p}.v", bias=s.qkv_bias), s.num_kv_heads, f"{p}.v", False)
    elif s.qk_norm:
        q = _heads(lw, lw.linear(x, f"{p}.q", bias=s.qkv_bias), s.num_heads, f"{p}.q_norm", True)
        k = _heads(lw, lw.linear(x, f"{p}.k", bias=s.qkv_bias), s.num_kv_heads, f"{p}.k_norm", True)
        v = _heads(lw, lw.linear(x, f"{p}.v", bias=s.qkv_bias), s.num_kv_heads, f"{p}.v", False)
    else:
        qkv = lw.linear(x, (f"{p}.q", f"{p}.k", f"{p}.v"), bias=s.qkv_bias)  # (B, T, (nh + 2 nkv) hd)
        heads = _heads(lw, qkv, s.num_heads + 2 * s.num_kv_heads, "", False)  # (B, nh + 2 nkv, T, hd)
        q, k, v = ops.variadic_split(heads, ints(1), ints([s.num_heads, s.num_kv_heads, s.num_kv_heads])).outputs()
    kind = s.rope_kind(i)  # None on layers without rotary positions
    if kind is not None:
        q, k = lw.rotate(q, kind, f"{p}.rope_q"), lw.rotate(k, kind, f"{p}.rope_k")
    return q, k, v


def _repeat_kv(lw: Lowering, x: Output) -> Output:
    """(B, nkv, S, hd) -> (B, nh, S, hd) by repeating each KV head for its group of query heads."""
    s = lw.spec
    group = s.num_heads // s.num_kv_heads
    if group == 1:
        return x
    y = ops.unsqueeze(x, ints([2]))  # (B, nkv, 1, S, hd)
    y = ops.broadcast(y, ints([1, 1, group, 1, 1]), broadcast_spec="bidirectional")  # (B, nkv, g, S, hd)
    return ops.reshape(y, ints([0, s.num_heads, -1, s.head_dim]), special_zero=True).output(0)  # (B, nh, S, hd)


def _sdpa(lw: Lowering, q: Output, k: Output, v: Output, mask: Output, i: int) -> Output:
    """softmax(q k^T * scale + mask) v, merged back to (B, T, nh * hd) and projected."""
    s, p = lw.spec, f"layers.{i}.attn"
    scale = const(np.float32(s.scale), "scale")
    if s.attn_softcap is None:
        y = ops.scaled_dot_product_attention(q, k, v, mask, scale, causal=False)  # (B, nh, T, hd)
    else:  # Gemma 2's soft-capped scores, which SDPA has no parameter for: cap * tanh(q.k * scale / cap)
        cap = const(np.float32(s.attn_softcap), "softcap")
        scores = ops.multiply(ops.matmul(q, k, False, True), scale)  # (B, nh, T, S)
        scores = ops.add(ops.multiply(ops.tanh(ops.divide(scores, cap)), cap), mask)
        y = ops.matmul(ops.softmax(scores, -1), v, False, False)  # (B, nh, T, hd)
    y = ops.transpose(y, ints([0, 2, 1, 3]))  # (B, T, nh, hd)
    y = ops.reshape(y, ints([0, 0, s.q_size]), special_zero=True).output(0)  # (B, T, nh * hd)
    return lw.linear(y, f"{p}.o", bias=s.out_bias)


def _state(lw: Lowering, new: Output, name: str) -> tuple[Output, object]:
    """Concat(past from the state, new) on the sequence axis, and the Assign that stores it."""
    s, f = lw.spec, lw.frame
    info = VariableInfo()
    info.variable_id = name
    info.data_type = ov.Type.f32
    info.data_shape = ov.PartialShape([-1, s.num_kv_heads, -1, s.head_dim])
    var = Variable(info)
    empty = ops.concat([f.batch, ints([s.num_kv_heads, 0, s.head_dim])], 0)  # [B, nkv, 0, hd]
    init = ops.broadcast(const(np.float32(0.0), "zero"), empty)
    past = ops.read_value(init, var)
    past = ops.gather(past, f.beam_idx, ints(0))  # (B, nkv, S_past, hd)
    both = ops.concat([past, new], 2).output(0)  # (B, nkv, S, hd)
    return both, ops.assign(both.get_node(), var)


def decoder_attention(lw: Lowering, x: Output, i: int) -> tuple[Output, list[object]]:
    """(output (B, T, H), the two Assign sinks) for layer i."""
    q, k, v = _qkv(lw, x, i)
    k, assign_k = _state(lw, k, f"past_key.{i}")
    v, assign_v = _state(lw, v, f"past_value.{i}")
    window = lw.spec.window(i)
    mask = lw.frame.masks[window] if window is not None else lw.frame.mask
    return _sdpa(lw, q, _repeat_kv(lw, k), _repeat_kv(lw, v), mask, i), [assign_k, assign_v]


def encoder_attention(lw: Lowering, x: Output, i: int) -> Output:
    """Bidirectional attention over x (B, T, H) with the frame's padding mask."""
    q, k, v = _qkv(lw, x, i)
    window = lw.spec.window(i)
    mask = lw.frame.masks[window] if window is not None else lw.frame.mask
    return _sdpa(lw, q, _repeat_kv(lw, k), _repeat_kv(lw, v), mask, i)
