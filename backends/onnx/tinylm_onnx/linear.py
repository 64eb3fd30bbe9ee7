"""Linear layers lowered per precision: y = x W^T (+ b), W (out, in) as the canonical weights hold it.

fp32        MatMul(x, W^T)                      W^T stored (in, out)
int8/int4   com.microsoft.MatMulNBits(x, Wq)     block-wise codes + scales (see quantize.py)

A quantized weight's initializers can be shared with another op (the tied embedding lookup reads the LM head's
codes): `quantized` makes them, `linear(..., stored=...)` uses them.
"""

from __future__ import annotations

import numpy as np

from .graph import MS, Graph
from .quantize import quantize_blocks

__all__ = ["linear", "quantized", "Stored"]

Stored = tuple[str, str]  # initializer names: codes (N, blocks, block * bits / 8) uint8, scales (N, blocks) float32


def quantized(g: Graph, weight: np.ndarray, *, bits: int, block: int, hint: str) -> Stored:
    """W (N, K) quantized into two initializers (see quantize.py)."""
    q = quantize_blocks(weight, bits=bits, block=block)
    return g.const(q.packed, f"{hint}.qweight"), g.const(q.scales, f"{hint}.scales")


def linear(
    g: Graph,
    x: str,
    weight: np.ndarray,
    bias: np.ndarray | None,
    *,
    bits: int,
    block: int,
    level: int,
    hint: str,
    stored: Stored | None = None,
) -> str:
    """x (..., in) -> (..., out); `stored`: W's quantized initializers, already made."""
    n, k = weight.shape
    if bits == 0:
        y = g.op("MatMul", [x, g.const(np.asarray(weight, np.float32).T, f"{hint}.weight")], hint=hint)
    else:
        codes, scales = stored or quantized(g, weight, bits=bits, block=block, hint=hint)
        inputs = [x, codes, scales]
        y = g.op(
            "MatMulNBits", inputs, domain=MS, hint=hint, K=k, N=n, bits=bits, block_size=block, accuracy_level=level
        )
    if bias is not None:
        y = g.op("Add", [y, g.const(np.asarray(bias, np.float32), f"{hint}.bias")], hint=f"{hint}.add_bias")
    return y
