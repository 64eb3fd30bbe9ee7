"""Weight storage per precision, as the decompression subgraphs OpenVINO's CPU/GPU plugins execute directly
(the layout NNCF's `compress_weights` writes, built here with numpy so converting needs neither NNCF nor torch):

    f32     Constant(f32)                                                   (N, K)
    f16     Constant(f16) -> Convert(f32)                                   (N, K)
    int8    Constant(u8 (N, K)) -> Convert(f16) - zp(u8 (N, 1)) * scale(f16 (N, 1)) -> Convert(f32)
            asymmetric, one scale and zero point per output channel
    int4    Constant(u4 (N, G, g)) -> Convert(f16) - zp(u4 (N, G, 1)) * scale(f16 (N, G, 1)) -> Reshape (N, K)
            -> Convert(f32); asymmetric, one scale and zero point per group of g inputs (g = 128, else the
            largest of 64/32/16 dividing K: SmolLM2's 576-wide layers reject a group of 128)

Codes are computed against the float16-rounded scale, so `dequantize` is exactly what the plugin multiplies by.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import openvino as ov

from .graph import Output, const, ints, ops

__all__ = ["Quantized", "quantize", "dequantize", "group_size", "weight", "STORAGE"]

STORAGE = ("f32", "f16", "int8", "int4")


@dataclass(frozen=True)
class Quantized:
    codes: np.ndarray  # (N, G, g) uint8, values in [0, 2^bits)
    zero: np.ndarray  # (N, G, 1) uint8
    scale: np.ndarray  # (N, G, 1) float16
    bits: int


def group_size(k: int, bits: int, preferred: int = 128) -> int:
    """Inputs per scale: all of K for int8; for int4 the preferred group, else the largest power of two >= 16
    below it that divides K, else all of K."""
    if bits == 8:
        return k
    g = preferred
    while g >= 16:
        if k % g == 0:
            return g
        g //= 2
    return k


def quantize(w: np.ndarray, *, bits: int, group: int) -> Quantized:
    """Asymmetric min/max quantization of W (N, K) in groups of `group` along K."""
    n, k = w.shape
    levels = (1 << bits) - 1
    x = np.asarray(w, np.float32).reshape(n, k // group, group)  # (N, G, g)
    lo = np.minimum(x.min(axis=-1, keepdims=True), 0.0)
    hi = np.maximum(x.max(axis=-1, keepdims=True), 0.0)
    scale = ((hi - lo) / levels).astype(np.float16)
    scale = np.where(scale == 0, np.float16(1.0), scale)
    s32 = scale.astype(np.float32)
    zero = np.clip(np.rint(-lo / s32), 0, levels)
    codes = np.clip(np.rint(x / s32) + zero, 0, levels)
    return Quantized(codes.astype(np.uint8), zero.astype(np.uint8), scale, bits)


def dequantize(q: Quantized) -> np.ndarray:
    """W (N, K) float32 back from `q`: what the plugin computes."""
    w = (q.codes.astype(np.float32) - q.zero) * q.scale.astype(np.float32)  # (N, G, g)
    return w.reshape(w.shape[0], -1)


def _u4(values: np.ndarray, name: str) -> Output:
    """A u4 constant (two codes a byte, the first in the low nibble)."""
    flat = values.reshape(-1)
    if flat.size % 2:
        flat = np.append(flat, np.uint8(0))
    tensor = ov.Tensor(ov.Type.u4, ov.Shape(list(values.shape)))
    tensor.data[:] = flat[0::2] | (flat[1::2] << 4)
    node = ops.constant(tensor)
    node.set_friendly_name(name)
    return node.output(0)


def _quantized(w: np.ndarray, bits: int, group: int, name: str) -> Output:
    q = quantize(w, bits=bits, group=group)
    n, k = w.shape
    if bits == 8:  # per channel: (N, K) codes, (N, 1) zero points and scales
        codes, zero = const(q.codes.reshape(n, k), name), const(q.zero[:, :, 0], f"{name}.zp")
        scale_c = const(q.scale[:, :, 0], f"{name}.scale")
    else:
        codes, zero, scale_c = _u4(q.codes, name), _u4(q.zero, f"{name}.zp"), const(q.scale, f"{name}.scale")
    x = ops.subtract(ops.convert(codes, "f16"), ops.convert(zero, "f16"))
    x = ops.multiply(x, scale_c)
    if bits != 8:
        x = ops.reshape(x, ints([n, k]), special_zero=False)  # (N, G, g) -> (N, K)
    return ops.convert(x, "f32").output(0)


def weight(w: np.ndarray, storage: str, name: str, *, group: int = 128) -> Output:
    """W (N, K) as a float32 value stored as `storage` (one of STORAGE)."""
    if storage == "f32":
        return const(np.asarray(w, np.float32), name)
    if storage == "f16":
        return ops.convert(const(np.asarray(w, np.float16), name), "f32").output(0)
    bits = 8 if storage == "int8" else 4
    return _quantized(w, bits, group_size(w.shape[1], bits, group), name)
