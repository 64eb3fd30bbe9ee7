"""Block-wise symmetric weight quantization in the layout of ONNX Runtime's `MatMulNBits` (numpy only).

A linear weight W (N, K) (out, in) is cut into blocks of `block` values along K (K zero-padded to a
multiple of `block`). Each block keeps one float32 scale chosen so that its largest-magnitude value maps
to the most negative code (-2^(bits-1)), using the whole signed range; codes are stored unsigned with the
implicit zero point 2^(bits-1) (no zero-point tensor):

    W[n, k] ~= (code[n, k] - 2^(bits-1)) * scale[n, k // block]

    packed  (N, K_pad / block, block * bits / 8) uint8   4 bits: element 2j in the low nibble, 2j+1 high
    scales  (N, K_pad / block) float32
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Quantized", "quantize_blocks", "dequantize_blocks"]


@dataclass(frozen=True)
class Quantized:
    packed: np.ndarray  # (N, blocks, block * bits / 8) uint8
    scales: np.ndarray  # (N, blocks) float32
    bits: int
    block: int
    k: int  # the unpadded input size


def _codes(weight: np.ndarray, bits: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    n, k = weight.shape
    pad = -k % block
    w = np.pad(np.asarray(weight, np.float32), ((0, 0), (0, pad))).reshape(n, -1, block)  # (N, blocks, block)
    idx = np.abs(w).argmax(axis=-1)[..., None]  # the largest-magnitude value of each block
    peak = np.take_along_axis(w, idx, axis=-1)  # (N, blocks, 1), signed
    low = -(1 << (bits - 1))
    scale = peak / low  # peak -> the most negative code
    safe = np.where(scale == 0, 1.0, scale)
    q = np.clip(np.rint(w / safe), low, -low - 1).astype(np.int16) - low  # unsigned codes
    return q.astype(np.uint8), scale[..., 0].astype(np.float32)


def quantize_blocks(weight: np.ndarray, *, bits: int, block: int) -> Quantized:
    """Quantize W (N, K) to `bits` (4 or 8) in blocks of `block` along K."""
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, got {bits}")
    codes, scales = _codes(weight, bits, block)  # (N, blocks, block) uint8
    if bits == 4:
        codes = codes[..., 0::2] | (codes[..., 1::2] << 4)  # (N, blocks, block / 2)
    return Quantized(np.ascontiguousarray(codes), scales, bits, block, weight.shape[1])


def dequantize_blocks(q: Quantized) -> np.ndarray:
    """W (N, K) float32 back from `q` (tests and error measurement)."""
    codes = q.packed
    if q.bits == 4:
        codes = np.stack([codes & 0x0F, codes >> 4], axis=-1).reshape(*codes.shape[:2], -1)
    w = (codes.astype(np.float32) - (1 << (q.bits - 1))) * q.scales[..., None]  # (N, blocks, block)
    return w.reshape(w.shape[0], -1)[:, : q.k]
