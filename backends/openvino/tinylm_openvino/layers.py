"""The layers every block is built from, lowered to OpenVINO ops from the spec and the canonical weights.

linear      y = x W^T (+ b): MatMul(x, W, transpose_b) on the stored weight (compress.weight); several linears
            of one input as one MatMul over their stacked weights
norm        rms: x * 1/sqrt(mean(x^2) + eps) * w  (the pattern the plugins fuse into their RMS kernel)
            layer: MVN(x) * w + b
rotate      rotate-half rotary on (B, n, T, hd) with cos/sin rows of `tinylm.arch.rope.cos_sin`, written as
            x * cos + concat(-x[half:], x[:half]) * sin with Slice ops: the pattern the CPU plugin fuses into
            one RoPE kernel (prefill of 32 tokens, SmolLM2-135M: 30 Multiply nodes instead of 150, no Concat or
            VariadicSplit left)
ACTIVATIONS silu, gelu, gelu_tanh, relu
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from tinylm.arch.rope import cos_sin, switch_length
from tinylm.arch.spec import ModelSpec

from .compress import weight
from .graph import Output, const, ints, ops
from .options import BuildOptions

__all__ = ["Lowering", "Frame", "ACTIVATIONS"]

ACTIVATIONS: dict[str, Callable[[Output], Output]] = {
    "silu": lambda x: ops.swish(x).output(0),
    "gelu": lambda x: ops.gelu(x, "erf").output(0),
    "gelu_tanh": lambda x: ops.gelu(x, "tanh").output(0),
    "relu": lambda x: ops.relu(x).output(0),
}


@dataclass
class Frame:
    """Values shared by every layer of one call (None where the model has no use for them)."""

    start: Output | None = None  # (1,) int64 encoders: position of the first token (0)
    end: Output | None = None  # (1,) int64 encoders: T
    positions: Output | None = None  # (B, T) int64 decoders: each row's positions of its new tokens
    ends: Output | None = None  # (B, 1, 1, 1) int64 decoders: each row's length after this call (longrope)
    rope: dict[str, tuple[Output, Output]] = field(default_factory=dict)  # kind -> cos, sin (B or 1, 1, T, rd)
    mask: Output | None = None  # float, broadcast to (B, nh, T, S): 0 where attended, float32's lowest elsewhere
    masks: dict[int, Output] = field(default_factory=dict)  # sliding window -> its mask (layers that have one)
    beam_idx: Output | None = None  # (B,) int32 decoders: the rows of the state each new row continues
    batch: Output | None = None  # (1,) int64 B


@dataclass
class Lowering:
    spec: ModelSpec
    weights: Mapping[str, np.ndarray]
    opts: BuildOptions
    frame: Frame = field(default_factory=Frame)

    def w(self, name: str) -> np.ndarray:
        return np.asarray(self.weights[name], dtype=np.float32)

    def linear(self, x: Output, prefix: str | tuple[str, ...], *, bias: bool, storage: str | None = None) -> Output:
        """x (..., in) -> (..., out) for the canonical linear `prefix`; for several prefixes, one MatMul over their
        weights stacked along the outputs (each row keeps its own scale or groups, so the values are those of the
        separate layers), its outputs in the order given."""
        names = (prefix,) if isinstance(prefix, str) else prefix
        name = "|".join(names)  # the one prefix, or "q|k|v"
        stacked = np.concatenate([self.w(f"{n}.weight") for n in names])  # (out, in)
        w = weight(stacked, storage or self.opts.plan.storage, name, group=self.opts.group_size)
        y = ops.matmul(x, w, transpose_a=False, transpose_b=True).output(0)
        if bias:
            y = ops.add(y, const(np.concatenate([self.w(f"{n}.bias") for n in names]), f"{name}.bias")).output(0)
        return y

    def norm(self, x: Output, prefix: str) -> Output:
        """Normalise x (..., D) over its last axis with the norm `prefix` (weight_offset folded in)."""
        s = self.spec.norm
        scale = const(self.w(f"{prefix}.weight") + np.float32(s.weight_offset), f"{prefix}.weight")
        if s.kind == "rms":
            var = ops.reduce_mean(ops.power(x, const(np.float32(2.0), "two")), ints([-1]), keep_dims=True)
            inv = ops.divide(const(np.float32(1.0), "one"), ops.sqrt(ops.add(var, const(np.float32(s.eps), "eps"))))
            return ops.multiply(ops.multiply(x, inv), scale).output(0)
        y = ops.multiply(ops.mvn(x, ints([-1]), True, s.eps, "inside_sqrt"), scale)
        if s.bias:
            y = ops.add(y, const(self.w(f"{prefix}.bias"), f"{prefix}.bias"))
        return y.output(0)

    def rope_frame(self, positions: int) -> None:
        """For each rotary table the layers use: cos and sin at each row's positions, (B, 1, T, rd) (decoders), or
        rows [start, end) shaped (1, 1, T, rd) (encoders), to broadcast over (B, n, T, rd). longrope: both tables
        baked, the long one read at every position of a row longer than the switch length."""
        s, f = self.spec, self.frame
        for kind in s.rope_kinds:
            rope, prefix = s.rope_of(kind), "rope" if kind == "global" else f"rope_{kind}"
            switch = switch_length(rope)
            rows = []
            for i, name in enumerate((f"{prefix}.cos", f"{prefix}.sin")):
                table: Output = const(cos_sin(rope, positions)[i], name)  # (P, rd)
                if f.positions is None:  # encoders: one span for every row
                    picked = ops.slice(table, f.start, f.end, ints([1]), ints([0]))  # (T, rd)
                    rows.append(ops.unsqueeze(picked, ints([0, 1])).output(0))  # (1, 1, T, rd)
                    continue
                picked = ops.unsqueeze(ops.gather(table, f.positions, ints(0)), ints([1]))  # (B, 1, T, rd)
                if switch is not None:  # each row by its own length
                    long = const(cos_sin(rope, positions, long=True)[i], f"{name}_long")
                    at_long = ops.unsqueeze(ops.gather(long, f.positions, ints(0)), ints([1]))
                    picked = ops.select(ops.greater(f.ends, ints(switch)), at_long, picked)
                rows.append(picked.output(0))
            f.rope[kind] = (rows[0], rows[1])

    def rotate(self, x: Output, kind: str, hint: str) -> Output:
        """Rotate x (B, n, T, hd) by the frame's `kind` tables; dims past rotary_dim pass through."""
        s = self.spec
        cos, sin = self.frame.rope[kind]
        rd, hd = s.rope_of(kind).rotary_dim, s.head_dim  # type: ignore[arg-type]
        half = rd // 2
        big = np.iinfo(np.int64).max
        rot = x if rd == hd else ops.slice(x, ints([0]), ints([rd]), ints([1]), ints([3]))  # (B, n, T, rd)
        lo = ops.slice(rot, ints([0]), ints([half]), ints([1]), ints([3]))
        hi = ops.slice(rot, ints([half]), ints([big]), ints([1]), ints([3]))
        rolled = ops.concat([ops.multiply(hi, const(np.float32(-1.0), "minus_one")), lo], -1)  # rotate_half
        y = ops.add(ops.multiply(rot, cos), ops.multiply(rolled, sin))
        if rd < hd:
            y = ops.concat([y, ops.slice(x, ints([rd]), ints([big]), ints([1]), ints([3]))], -1)
        return y.output(0)
