"""MIL building blocks lowered from the spec's concepts: linear, norms, activations, rotary positions.

Every function appends ops to the MIL block being built (inside `mb.program`, or the constant-input
`Function` that `evaluate` runs with numpy), so one piece of code builds both. Tensors are float32 here;
the converter's fp16 pass lowers the whole program when the package is written.

Only ops with a numpy value inference in coremltools are used, so the graph can be evaluated on Linux:
silu is written x * sigmoid(x) for that reason (coremltools has no value inference for `silu`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Var

from tinylm.arch.spec import NormSpec

__all__ = ["linear", "norm", "ACTIVATIONS", "rotate", "dynamic_shape"]


def linear(x: Var, weight: Var, bias: Var | None = None) -> Var:
    """x (..., in) @ weight (out, in)^T (+ bias) -> (..., out)."""
    if bias is None:
        return mb.linear(x=x, weight=weight)
    return mb.linear(x=x, weight=weight, bias=bias)


def norm(x: Var, spec: NormSpec, weight: Var, bias: Var | None = None) -> Var:
    """Normalise over the last axis: LayerNorm, or RMS norm.

    RMS norm is lowered as the LayerNorm of [x, -x]: that vector has mean 0 and variance mean(x^2),
    so one fused `layer_norm` computes x / rms(x) and fp16 never materialises x^2 as a separate
    tensor (which overflows fp16 once |x| > 256, common in LLM residual streams).
    """
    if spec.kind == "layer":
        if bias is None:
            return mb.layer_norm(x=x, axes=[-1], gamma=weight, epsilon=spec.eps)
        return mb.layer_norm(x=x, axes=[-1], gamma=weight, beta=bias, epsilon=spec.eps)
    mirrored = mb.concat(values=[x, mb.mul(x=x, y=-1.0)], axis=-1)  # (..., 2D)
    normed = mb.split(x=mb.layer_norm(x=mirrored, axes=[-1], epsilon=spec.eps), num_splits=2, axis=-1)[0]  # (..., D)
    return mb.mul(x=normed, y=weight)


ACTIVATIONS: dict[str, Callable[[Var], Var]] = {
    "silu": lambda x: mb.mul(x=x, y=mb.sigmoid(x=x)),
    "gelu": lambda x: mb.gelu(x=x, mode="EXACT"),
    "gelu_tanh": lambda x: mb.gelu(x=x, mode="TANH_APPROXIMATION"),
    "relu": lambda x: mb.relu(x=x),
}


def rotate(x: Var, cos: Var, sin: Var, rotary_dim: int, head_dim: int) -> Var:
    """Rotary positions in the rotate-half layout: x (B, heads, T, hd) by cos/sin (1, 1, T, rd).

    Dims past `rotary_dim` pass through (partial rotary)."""
    rest = None
    if rotary_dim < head_dim:
        x, rest = mb.split(x=x, split_sizes=[rotary_dim, head_dim - rotary_dim], axis=-1)
    x1, x2 = mb.split(x=x, num_splits=2, axis=-1)  # 2 x (B, heads, T, rd/2)
    half_turn = mb.concat(values=[mb.mul(x=x2, y=-1.0), x1], axis=-1)  # rotate_half(x)
    out = mb.add(x=mb.mul(x=x, y=cos), y=mb.mul(x=half_turn, y=sin))
    return out if rest is None else mb.concat(values=[out, rest], axis=-1)


def dynamic_shape(x: Var, keep: int, tail: list[int]) -> Var:
    """The shape [x.shape[:keep], *tail] as an int32 tensor (for reshapes over flexible B and T)."""
    head = mb.slice_by_index(x=mb.shape(x=x), begin=[0], end=[keep])
    return mb.concat(values=[head, np.asarray(tail, dtype=np.int32)], axis=0)
