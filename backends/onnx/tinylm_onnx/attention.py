"""Attention lowered from the spec.

Decoders: one com.microsoft.GroupQueryAttention per layer, its past and present KV buffers (B, nkv, S_max, hd)
bound to the same memory by the session, so a step writes its keys and values in place; causal, with the
sliding window as GQA's `local_window_size`, rotary inside GQA when it can express it (else `rope.rotate`).

    x -> qkv (one MatMul) [+ bias] -> [q/k RMS norm per head] -> [rotate] -> GQA -> o [+ bias]

GQA takes the projection packed (q | k | v in its query input) when nothing has to happen to q and k between
the projection and GQA (no per-head norm, rotary inside GQA or none), so no Split runs.

Encoders (bidirectional, padding mask): plain ops, softmax(q k^T * scale + mask_bias) v; local layers add their
window's bias instead (padding and |q - k| > window // 2 masked).
"""

from __future__ import annotations

from .graph import MS
from .lowering import Lowering
from .rope import rotate

__all__ = ["decoder_attention", "encoder_attention"]


def _packed_qkv(lw: Lowering, x: str, i: int) -> str:
    """One fused projection (B, T, nh*hd + 2 * nkv*hd): q | k | v."""
    s, p = lw.spec, f"layers.{i}.attn"
    return lw.linear(x, [f"{p}.q", f"{p}.k", f"{p}.v"], bias=s.qkv_bias, hint=f"{p}.qkv")


def _split(lw: Lowering, qkv: str, i: int) -> tuple[str, str, str]:
    """The fused projection split into q (B, T, nh*hd), k and v (B, T, nkv*hd)."""
    s = lw.spec
    sizes = lw.g.scalar([s.q_size, s.kv_size, s.kv_size])
    q, k, v = lw.g.op("Split", [qkv, sizes], outputs=3, axis=-1, hint=f"layers.{i}.attn.split")
    return q, k, v


def _qkv(lw: Lowering, x: str, i: int) -> tuple[str, str, str]:
    return _split(lw, _packed_qkv(lw, x, i), i)


def _head_norm(lw: Lowering, x: str, heads: int, prefix: str) -> str:
    """RMS norm over each head of x (B, T, heads * hd) (Qwen3's q_norm/k_norm), or over all of it (OLMo 2)."""
    g, hd = lw.g, lw.spec.head_dim
    if lw.spec.qk_norm_over == "all":
        return lw.norm(x, prefix)
    x4 = g.op("Reshape", [x, g.scalar([0, 0, heads, hd])], hint=f"{prefix}.heads")  # (B, T, n, hd)
    y = lw.norm(x4, prefix)
    return g.op("Reshape", [y, g.scalar([0, 0, heads * hd])], hint=f"{prefix}.flat")


def decoder_attention(lw: Lowering, x: str, i: int, past_k: str, past_v: str) -> tuple[str, str, str]:
    """(output (B, T, H), present_key, present_value) for layer i."""
    s, g, f, p = lw.spec, lw.g, lw.frame, f"layers.{i}.attn"
    kind = s.rope_kind(i)  # None on layers without rotary positions
    internal = kind is not None and kind in f.inside
    qkv = _packed_qkv(lw, x, i)
    if not s.qk_norm and (kind is None or internal):  # GQA reads q|k|v packed: no Split node
        inputs = [qkv, "", "", past_k, past_v, f.seqlens, f.total]
    else:
        q, k, v = _split(lw, qkv, i)
        if s.qk_norm:
            q, k = _head_norm(lw, q, s.num_heads, f"{p}.q_norm"), _head_norm(lw, k, s.num_kv_heads, f"{p}.k_norm")
        if kind is not None and not internal:
            rd, (cos, sin) = s.rope_of(kind).rotary_dim, f.outside[kind]
            q = rotate(g, q, s.num_heads, s.head_dim, rd, cos, sin, f"{p}.rope_q")
            k = rotate(g, k, s.num_kv_heads, s.head_dim, rd, cos, sin, f"{p}.rope_k")
        inputs = [q, k, v, past_k, past_v, f.seqlens, f.total]
    if internal:
        inputs += list(f.inside[kind])
    y, present_k, present_v = g.op(
        "GroupQueryAttention",
        inputs,
        outputs=3,
        domain=MS,
        hint=f"{p}.gqa",
        num_heads=s.num_heads,
        kv_num_heads=s.num_kv_heads,
        scale=float(s.scale),
        do_rotary=int(internal),
        rotary_interleaved=0,
        local_window_size=int(s.window(i) or -1),
        softcap=float(s.attn_softcap or 0.0),  # 0: no cap
    )
    out = lw.linear(y, [f"{p}.o"], bias=s.out_bias, hint=f"{p}.o")
    return out, present_k, present_v


def encoder_attention(lw: Lowering, x: str, i: int) -> str:
    """Bidirectional attention over x (B, T, H) with the frame's padding mask."""
    s, g, p = lw.spec, lw.g, f"layers.{i}.attn"
    q, k, v = _qkv(lw, x, i)
    if s.qk_norm:
        q, k = _head_norm(lw, q, s.num_heads, f"{p}.q_norm"), _head_norm(lw, k, s.num_kv_heads, f"{p}.k_norm")
    kind = s.rope_kind(i)
    if kind is not None:
        rd, (cos, sin) = s.rope_of(kind).rotary_dim, lw.frame.outside[kind]
        q = rotate(g, q, s.num_heads, s.head_dim, rd, cos, sin, f"{p}.rope_q")
        k = rotate(g, k, s.num_kv_heads, s.head_dim, rd, cos, sin, f"{p}.rope_k")
    group = s.num_heads // s.num_kv_heads

    def heads(t: str, n: int, name: str) -> str:
        t = g.op("Reshape", [t, g.scalar([0, 0, n, s.head_dim])], hint=f"{p}.{name}.heads")  # (B, T, n, hd)
        t = g.op("Transpose", [t], perm=[0, 2, 1, 3], hint=f"{p}.{name}.bnth")  # (B, n, T, hd)
        if n != s.num_heads:  # grouped KV heads: repeat each group's head
            t = g.op("Unsqueeze", [t, g.scalar([2])])  # (B, nkv, 1, T, hd)
            t = g.op("Expand", [t, g.scalar([1, 1, group, 1, 1])])  # (B, nkv, g, T, hd)
            t = g.op("Reshape", [t, g.scalar([0, s.num_heads, -1, s.head_dim])])  # (B, nh, T, hd)
        return t

    qh, kh, vh = heads(q, s.num_heads, "q"), heads(k, s.num_kv_heads, "k"), heads(v, s.num_kv_heads, "v")
    kt = g.op("Transpose", [kh], perm=[0, 1, 3, 2], hint=f"{p}.kt")  # (B, nh, hd, T)
    scores = g.op("Mul", [g.op("MatMul", [qh, kt]), g.scalar(s.scale, "float32")], hint=f"{p}.scores")
    if s.attn_softcap is not None:
        cap = g.scalar(s.attn_softcap, "float32")
        scores = g.op("Mul", [g.op("Tanh", [g.op("Div", [scores, cap])]), cap], hint=f"{p}.capped")
    window = s.window(i)
    bias = lw.frame.window_bias[window] if window is not None else lw.frame.mask_bias  # (B, 1, T or 1, T)
    probs = g.op("Softmax", [g.op("Add", [scores, bias])], axis=-1, hint=f"{p}.probs")  # (B, nh, T, T)
    y = g.op("Transpose", [g.op("MatMul", [probs, vh])], perm=[0, 2, 1, 3], hint=f"{p}.y")  # (B, T, nh, hd)
    y = g.op("Reshape", [y, g.scalar([0, 0, s.q_size])], hint=f"{p}.merge")  # (B, T, nh*hd)
    return lw.linear(y, [f"{p}.o"], bias=s.out_bias, hint=f"{p}.o")
