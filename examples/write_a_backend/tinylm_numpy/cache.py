"""The KV cache, and the causal (optionally sliding-window) mask of one forward call.

The cache holds, per layer, keys and values of shape (B, nkv, capacity, hd), allocated once per batch
size with `np.zeros` (the OS maps untouched pages lazily, so an unused context costs no memory). A call
writes its keys at `[start, start + T)` and attends to the view `[0, start + T)`.
"""

from __future__ import annotations

import numpy as np

from tinylm.arch.spec import ModelSpec

from .weights import COMPUTE_DTYPE

__all__ = ["KVCache", "causal_mask"]


class KVCache:
    """Keys and values of every layer for `batch` sequences of up to `capacity` tokens."""

    def __init__(self, spec: ModelSpec, *, batch: int, capacity: int) -> None:
        shape = (batch, spec.num_kv_heads, capacity, spec.head_dim)  # (B, nkv, C, hd)
        self.k = [np.zeros(shape, COMPUTE_DTYPE) for _ in range(spec.num_layers)]
        self.v = [np.zeros(shape, COMPUTE_DTYPE) for _ in range(spec.num_layers)]
        self.batch = batch
        self.capacity = capacity
        self.length = 0  # advanced by the model once every layer has stored its keys

    def store(self, layer: int, k: np.ndarray, v: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
        """Write k, v (B, nkv, T, hd) at positions [start, start + T); return every key and value
        so far, views (B, nkv, start + T, hd)."""
        end = start + k.shape[2]
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


def causal_mask(start: int, end: int, window: int | None) -> np.ndarray:
    """bool (T, S): True where query position q in [start, end) may see key position k in [0, end):
    k <= q, and k > q - window with a sliding window (Mistral's convention)."""
    q = np.arange(start, end)[:, None]  # (T, 1)
    k = np.arange(end)[None, :]  # (1, S)
    allowed = k <= q
    if window is not None:
        allowed &= k > q - window
    return allowed  # (T, S)
