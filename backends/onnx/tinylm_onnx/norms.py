"""Normalisation lowered from `NormSpec`, alone or fused with the residual add before it.

    norm(x)                 rms: SimplifiedLayerNormalization   layer: LayerNormalization
    add_norm(x, skip)       norm(x + skip) and x + skip, in one com.microsoft Skip(Simplified)LayerNormalization

The weight passed in is the effective scale (`weight_offset` already added by the caller).
"""

from __future__ import annotations

import numpy as np

from tinylm.arch.spec import NormSpec

from .graph import MS, Graph

__all__ = ["norm", "add_norm"]


def norm(g: Graph, x: str, spec: NormSpec, weight: np.ndarray, bias: np.ndarray | None, hint: str) -> str:
    """Normalise x (..., D) over its last axis."""
    w = g.const(np.asarray(weight, np.float32), f"{hint}.weight")
    if spec.kind == "rms":
        return g.op("SimplifiedLayerNormalization", [x, w], hint=hint, axis=-1, epsilon=spec.eps, stash_type=1)
    inputs = [x, w] + ([g.const(np.asarray(bias, np.float32), f"{hint}.bias")] if bias is not None else [])
    return g.op("LayerNormalization", inputs, hint=hint, axis=-1, epsilon=spec.eps)


def add_norm(
    g: Graph,
    x: str,
    skip: str,
    spec: NormSpec,
    weight: np.ndarray,
    bias: np.ndarray | None,
    hint: str,
    *,
    fused: bool,
) -> tuple[str, str]:
    """(norm(x + skip), x + skip) for x, skip (B, T, H)."""
    if not fused:
        total = g.op("Add", [x, skip], hint=f"{hint}.residual")
        return norm(g, total, spec, weight, bias, hint), total
    w = g.const(np.asarray(weight, np.float32), f"{hint}.weight")
    if spec.kind == "rms":
        out = g.op("SkipSimplifiedLayerNormalization", [x, skip, w], outputs=4, domain=MS, hint=hint, epsilon=spec.eps)
    else:
        b = [g.const(np.asarray(bias, np.float32), f"{hint}.bias")] if bias is not None else []
        out = g.op("SkipLayerNormalization", [x, skip, w, *b], outputs=4, domain=MS, hint=hint, epsilon=spec.eps)
    return out[0], out[3]  # outputs: normed, mean, inv_std_var, input + skip
