"""Linear layers lowered per precision: y = x W^T (+ b), W (out, in) as the canonical weights hold it.

fp32        MatMul(x, W^T)                      W^T stored (in, out)
int8/int4   com.microsoft.MatMulNBits(x, Wq)     block-wise codes + scales (see quantize.py)
"""

from __future__ import annotations

import numpy as np

from .graph import MS, Graph
from .quantize import quantize_blocks

__all__ = ["linear"]


def linear(
    g: Graph, x: str, weight: np.ndarray, bias: np.ndarray | None, *, bits: int, block: int, level: int, hint: str
) -> str:
    """x (..., in) -> (..., out)."""
    n, k = weight.shape
    if bits == 0:
        y = g.op("MatMul", [x, g.const(np.asarray(weight, np.float32).T, f"{hint}.weight")], hint=hint)
    else:
        q = quantize_blocks(weight, bits=bits, block=block)
        inputs = [x, g.const(q.packed, f"{hint}.qweight"), g.const(q.scales.reshape(-1), f"{hint}.scales")]
        y = g.op(
            "MatMulNBits", inputs, domain=MS, hint=hint, K=k, N=n, bits=bits, block_size=block, accuracy_level=level
        )
    if bias is not None:
        y = g.op("Add", [y, g.const(np.asarray(bias, np.float32), f"{hint}.bias")], hint=f"{hint}.add_bias")
    return y
