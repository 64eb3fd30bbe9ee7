"""Host-side inputs the decoder programs take besides token ids: additive attention masks (numpy only).

0 where query t may attend key s, `MASKED` elsewhere: causal, and within `window` positions when the
model has a sliding window. Used by the macOS sessions and by `evaluate` on any OS.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MASKED", "stateful_mask", "stateless_mask"]

MASKED = -1.0e4  # finite (fp16-safe); exp() of it underflows to 0 (same value as transformer.MASKED)


def _allowed(queries: np.ndarray, keys: np.ndarray, window: int | None) -> np.ndarray:
    """(T, S) bool: key position s visible from query position t."""
    ok = keys[None, :] <= queries[:, None]
    if window is not None:
        ok &= keys[None, :] > queries[:, None] - window
    return ok


def _additive(allowed: np.ndarray, dtype: type) -> np.ndarray:
    return np.where(allowed, 0.0, MASKED).astype(dtype)[None, None]  # (1, 1, T, S)


def stateful_mask(start: int, length: int, window: int | None, dtype: type = np.float16) -> np.ndarray:
    """(1, 1, T, start + T) for T new tokens at [start, start + T) over cache slots [0, start + T)."""
    queries = np.arange(start, start + length)
    return _additive(_allowed(queries, np.arange(start + length), window), dtype)


def stateless_mask(start: int, length: int, capacity: int, window: int | None, dtype: type = np.float16) -> np.ndarray:
    """(1, 1, T, C + T): C cached slots (valid below `start`), then this call's T tokens."""
    queries = np.arange(start, start + length)
    slots = np.arange(capacity)
    cached = _allowed(queries, slots, window) & (slots[None, :] < start)  # (T, C)
    new = _allowed(queries, queries, window)  # (T, T)
    return _additive(np.concatenate([cached, new], axis=1), dtype)
