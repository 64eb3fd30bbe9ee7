"""Rotary position embedding: tables from `tinylm.arch.rope.cos_sin` (never recomputed here), applied either
inside GroupQueryAttention (its cos/sin caches) or with plain ops where GQA cannot express it.

GQA's rotary needs rotary_dim/2 to be a multiple of 8 (rotary_dim <= head_dim); other shapes (e.g. head_dim
8 or 24, Phi-3's partial rotary of 8 dims) are rotated here, in the rotate-half layout:

    rotate_half(x) * sin == roll(x, rd/2) * [-sin | sin]       (the sign folded into the table once)
"""

from __future__ import annotations

from tinylm.arch.rope import cos_sin
from tinylm.arch.spec import ModelSpec

from .graph import Graph

__all__ = ["gqa_can_rotate", "gqa_caches", "external_tables", "rotate"]


def gqa_can_rotate(spec: ModelSpec) -> bool:
    rd = spec.rope.rotary_dim if spec.rope else 0
    return rd > 0 and rd <= spec.head_dim and (rd // 2) % 8 == 0


def gqa_caches(g: Graph, spec: ModelSpec, positions: int) -> tuple[str, str]:
    """GQA's cos_cache and sin_cache (P, rd/2) initializers."""
    assert spec.rope is not None
    cos, sin = cos_sin(spec.rope, positions)  # (P, rd), halves equal
    half = spec.rope.rotary_dim // 2
    return g.const(cos[:, :half], "rope.cos_cache"), g.const(sin[:, :half], "rope.sin_cache")


def external_tables(g: Graph, spec: ModelSpec, positions: int, span: tuple[str, str]) -> tuple[str, str]:
    """cos and signed sin rows [lo, hi) of `span`, shaped (1, T, 1, rd) to broadcast over (B, T, heads, rd)."""
    assert spec.rope is not None
    cos, sin = cos_sin(spec.rope, positions)  # (P, rd)
    sin[:, : spec.rope.rotary_dim // 2] *= -1.0
    axes = g.scalar([0, 2])
    out = []
    for table, name in ((cos, "rope.cos"), (sin, "rope.signed_sin")):
        picked = g.op("Slice", [g.const(table, name), *span, g.scalar([0])], hint=f"{name}.at")  # (T, rd)
        out.append(g.op("Unsqueeze", [picked, axes], hint=f"{name}.bcast"))  # (1, T, 1, rd)
    return out[0], out[1]


def rotate(g: Graph, x: str, heads: int, head_dim: int, rotary_dim: int, cos: str, sin: str, hint: str) -> str:
    """Rotate x (B, T, heads * hd) by the gathered tables; dims past rotary_dim pass through."""
    x4 = g.op("Reshape", [x, g.scalar([0, 0, heads, head_dim])], hint=f"{hint}.heads")  # (B, T, n, hd)
    half = rotary_dim // 2
    if rotary_dim < head_dim:
        lo, hi, rest = g.op("Split", [x4, g.scalar([half, half, head_dim - rotary_dim])], outputs=3, axis=-1, hint=hint)
    else:
        lo, hi = g.op("Split", [x4, g.scalar([half, half])], outputs=2, axis=-1, hint=hint)
        rest = None
    rot = g.op("Concat", [lo, hi], axis=-1, hint=f"{hint}.rot")  # (B, T, n, rd)
    rolled = g.op("Concat", [hi, lo], axis=-1, hint=f"{hint}.roll")
    y = g.op("Add", [g.op("Mul", [rot, cos]), g.op("Mul", [rolled, sin])], hint=f"{hint}.rotated")
    if rest is not None:
        y = g.op("Concat", [y, rest], axis=-1, hint=f"{hint}.partial")
    return g.op("Reshape", [y, g.scalar([0, 0, heads * head_dim])], hint=f"{hint}.flat")  # (B, T, n * hd)
