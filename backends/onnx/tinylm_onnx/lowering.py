"""What every layer's lowering shares: the graph, the spec, the options, the weights, and the `Frame`
(per-call values computed once: positions, GQA's sequence lengths, rotary tables, the encoder's mask)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tinylm.arch.spec import ModelSpec

from .graph import Graph
from .linear import Stored, linear
from .norms import add_norm, norm
from .options import BuildOptions

__all__ = ["Frame", "Lowering"]


@dataclass
class Frame:
    """Graph values shared by all layers of one forward call (None where the model has no use for them)."""

    span: tuple[str, str] | None = None  # [lo, hi) (1,) int64 each: positions of the new tokens (encoders)
    positions: str | None = None  # (B, T) int64 decoders: each row's positions of the new tokens, from seqlens_k
    seqlens: str | None = None  # (B,) int32 GQA: total length - 1 per row
    total: str | None = None  # () int32 GQA: total length
    # rotary tables by `ModelSpec.rope_kind` ("global", "local"): GQA's own cos/sin caches (P, rd/2) when it
    # rotates, else cos and signed sin rows (1, T, 1, rd) applied outside GQA
    inside: dict[str, tuple[str, str]] = field(default_factory=dict)
    outside: dict[str, tuple[str, str]] = field(default_factory=dict)
    mask_bias: str | None = None  # (B, 1, 1, T) encoders: 0 where attended, very negative at padding
    # encoders with local layers: window -> (B, 1, T, T), 0 where |q - k| <= window // 2 and k is a token
    window_bias: dict[int, str] = field(default_factory=dict)


@dataclass
class Lowering:
    g: Graph
    spec: ModelSpec
    opts: BuildOptions
    weights: Mapping[str, np.ndarray]
    frame: Frame = field(default_factory=Frame)
    head_table: str | None = None  # (V, H) initializer shared by the embedding lookup and the LM head
    head_stored: Stored | None = None  # int4 tied: the quantized table the lookup and the LM head share

    def w(self, name: str) -> np.ndarray:
        return np.asarray(self.weights[name], dtype=np.float32)

    def maybe(self, name: str) -> np.ndarray | None:
        return self.w(name) if name in self.weights else None

    def norm_weight(self, prefix: str) -> tuple[np.ndarray, np.ndarray | None]:
        """The effective scale (checkpoint weight + weight_offset) and bias of norm `prefix`."""
        return self.w(f"{prefix}.weight") + np.float32(self.spec.norm.weight_offset), self.maybe(f"{prefix}.bias")

    def norm(self, x: str, prefix: str) -> str:
        return norm(self.g, x, self.spec.norm, *self.norm_weight(prefix), prefix)

    def add_norm(self, x: str, skip: str, prefix: str) -> tuple[str, str]:
        return add_norm(self.g, x, skip, self.spec.norm, *self.norm_weight(prefix), prefix, fused=self.opts.fused_ops)

    def linear(self, x: str, prefixes: Sequence[str], *, bias: bool, hint: str, quantize: bool = True) -> str:
        """One projection for the linears `prefixes`, stacked on the output axis (q|k|v, gate|up)."""
        weight = np.concatenate([self.w(f"{p}.weight") for p in prefixes], axis=0)  # (sum out, in)
        b = np.concatenate([self.w(f"{p}.bias") for p in prefixes]) if bias else None
        bits = self.opts.bits if quantize else 0
        o = self.opts
        return linear(self.g, x, weight, b, bits=bits, block=o.block_size, level=o.accuracy_level, hint=hint)
