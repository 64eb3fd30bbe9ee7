"""Rotary position embedding: tables from `tinylm.arch.rope.cos_sin` (never recomputed here), applied either
inside GroupQueryAttention (its cos/sin caches) or with plain ops where GQA cannot express it.

GQA's rotary needs rotary_dim/2 to be a multiple of 8 (rotary_dim <= head_dim); other shapes (e.g. head_dim
8 or 24, Phi-3's partial rotary of 8 dims) are rotated here, in the rotate-half layout:

    rotate_half(x) * sin == roll(x, rd/2) * [-sin | sin]       (the sign folded into the table once)

longrope past its switch length: both tables are baked and Where(end > switch) picks one per call, so a
sequence longer than the original context rotates every position by the long table (as transformers does).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinylm.arch.rope import cos_sin, switch_length
from tinylm.arch.spec import ModelSpec, RopeSpec

from .graph import Graph

__all__ = ["gqa_can_rotate", "gqa_caches", "external_tables", "rotate"]


def gqa_can_rotate(spec: ModelSpec) -> bool:
    """Whether GQA can apply every rotary table the layers use (each table's rotary_dim/2 a multiple of 8)."""
    dims = [spec.rope_of(kind).rotary_dim for kind in spec.rope_kinds]
    return bool(dims) and all(0 < rd <= spec.head_dim and (rd // 2) % 8 == 0 for rd in dims)


def _tables(
    g: Graph,
    rope: RopeSpec,
    positions: int,
    end: str | None,
    shape: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    prefix: str,
) -> tuple[str, str]:
    """cos, sin tables (shaped by `shape`) as graph values: the one table, or longrope's two chosen by
    `end` ((1,) int64, the sequence's total length) against the switch length."""
    switch = switch_length(rope) if end is not None else None
    tables = [shape(*cos_sin(rope, positions, long=long)) for long in ((False, True) if switch else (False,))]
    names = (f"{prefix}.cos", f"{prefix}.sin")
    short = [g.const(t, n) for t, n in zip(tables[0], names)]
    if switch is None:
        return short[0], short[1]
    long = [g.const(t, f"{n}_long") for t, n in zip(tables[1], names)]
    past = g.op("Greater", [end, g.scalar([switch])], hint="rope.past_switch")  # (1,) bool
    cos, sin = (g.op("Where", [past, lt, st], hint=f"{n}.pick") for lt, st, n in zip(long, short, names))
    return cos, sin


def gqa_caches(g: Graph, rope: RopeSpec, positions: int, end: str | None, prefix: str = "rope") -> tuple[str, str]:
    """GQA's cos_cache and sin_cache (P, rd/2)."""
    half = rope.rotary_dim // 2
    return _tables(g, rope, positions, end, lambda cos, sin: (cos[:, :half], sin[:, :half]), prefix)  # halves equal


def _signed(cos: np.ndarray, sin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sin = sin.copy()
    sin[:, : sin.shape[1] // 2] *= -1.0
    return cos, sin


def external_tables(
    g: Graph,
    rope: RopeSpec,
    positions: int,
    span: tuple[str, str],
    prefix: str = "rope",
    *,
    positions_at: str | None = None,
) -> tuple[str, str]:
    """cos and signed sin at each row's positions `positions_at` ((B, T) int64), shaped (B, T, 1, rd), or rows
    [lo, hi) of `span` shaped (1, T, 1, rd) without them (encoders); both broadcast over (B, T, heads, rd)."""
    tables = _tables(g, rope, positions, span[1], _signed, prefix)  # (P, rd)
    out = []
    for table, name in zip(tables, (f"{prefix}.cos", f"{prefix}.signed_sin")):
        if positions_at is not None:
            picked = g.op("Gather", [table, positions_at], hint=f"{name}.at")  # (B, T, rd)
            out.append(g.op("Unsqueeze", [picked, g.scalar([2])], hint=f"{name}.bcast"))  # (B, T, 1, rd)
        else:
            picked = g.op("Slice", [table, *span, g.scalar([0])], hint=f"{name}.at")  # (T, rd)
            out.append(g.op("Unsqueeze", [picked, g.scalar([0, 2])], hint=f"{name}.bcast"))  # (1, T, 1, rd)
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
