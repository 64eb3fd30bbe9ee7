"""The KV cache, and the causal (optionally sliding-window) mask of one forward call.

The cache holds, per layer, keys and values of shape (B, nkv, capacity, hd), allocated once per batch
size with `np.zeros` (the OS maps untouched pages lazily, so an unused context costs no memory). A call
writes its keys at `[start, start + T)` and attends to the view `[0, start + T)`.

Conv layers (LFM2, `ModelSpec.mixer(i) == "conv"`) keep no keys: their state is the convolution's last
kernel - 1 inputs, (B, H, K - 1), zeros at the start of a sequence. A call reads it and leaves the next one
pending, committed with the length once the whole call has run.
"""

from __future__ import annotations

import numpy as np

from tinylm.arch.spec import ModelSpec

from .weights import COMPUTE_DTYPE

__all__ = ["KVCache", "causal_mask"]


class KVCache:
    """Each layer's state for `batch` sequences of up to `capacity` tokens: keys and values of attention layers,
    the conv state of conv layers."""

    def __init__(self, spec: ModelSpec, *, batch: int, capacity: int) -> None:
        shape = (batch, spec.num_kv_heads, capacity, spec.head_dim)  # (B, nkv, C, hd)
        self.k = {i: np.zeros(shape, COMPUTE_DTYPE) for i in spec.attention_layers}
        self.v = {i: np.zeros(shape, COMPUTE_DTYPE) for i in spec.attention_layers}
        self.conv = {i: np.zeros((batch, st.channels, st.width), COMPUTE_DTYPE)
                     for i in spec.conv_layers for st in spec.states(i)}  # fmt: skip
        self._pending: dict[int, np.ndarray] = {}
        self.batch = batch
        self.capacity = capacity
        self.length = 0  # advanced by the model once every layer has stored its keys

    def reset(self) -> None:
        self.length = 0  # old keys are overwritten before they are read again; conv states are read: zero them
        for state in self.conv.values():
            state[:] = 0

    def conv_window(self, layer: int, x: np.ndarray) -> np.ndarray:
        """(cached inputs | x) (B, H, K - 1 + T) for the new inputs x (B, H, T); the last K - 1 become the state
        when the call commits."""
        window = np.concatenate([self.conv[layer], x], axis=-1)
        self._pending[layer] = window[:, :, window.shape[-1] - self.conv[layer].shape[-1] :].copy()
        return window

    def commit(self, end: int) -> None:
        """The call ran through: its positions are cached and the conv states move on."""
        self.conv.update(self._pending)
        self._pending = {}
        self.length = end

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
