"""The decoder's attention masks, written by the session (numpy) from the positions it keeps.

Row b's query at position q attends the state's key j at position k when k <= q and, in a layer with a sliding
window W, q - k < W. Keys are listed per row in the state's order (past, then this call's); HOLE marks an entry a
row does not hold (padding, a step it sat out), which no query attends. Each mask is additive: 0 where attended,
float32's lowest elsewhere (finite, so a query with nothing to attend stays a number).

`StepMasks` serves the single-sequence decode step without computing anything: the mask of position n over keys
0..n is a view of one buffer per window.
"""

from __future__ import annotations

import numpy as np

from tinylm.arch.spec import ModelSpec

from .transformer import bias_name

__all__ = ["HOLE", "LOWEST", "biases", "StepMasks"]

HOLE = 2**40  # a key position no query reaches
LOWEST = np.finfo(np.float32).min


def biases(spec: ModelSpec, positions: np.ndarray, keys: np.ndarray) -> dict[str, np.ndarray]:
    """{input name: (B, 1, T, S) float32} for queries at `positions` (B, T) over keys at `keys` (B, S)."""
    q = positions[:, None, :, None]  # (B, 1, T, 1)
    k = keys[:, None, None, :]  # (B, 1, 1, S)
    causal = k <= q
    out = {}
    for window in spec.windows:
        allowed = causal if window is None else causal & (q - k < window)
        out[bias_name(window)] = np.where(allowed, np.float32(0.0), LOWEST).astype(np.float32)
    return out


class StepMasks:
    """The (1, 1, 1, n + 1) masks of a batch-1 step at position n, as views (valid while this object lives)."""

    def __init__(self, spec: ModelSpec, capacity: int) -> None:
        self.capacity = capacity
        self._buffers: dict[str, tuple[np.ndarray, int]] = {}
        for window in spec.windows:
            w = capacity if window is None else min(window, capacity)
            buf = np.full(capacity + w, LOWEST, np.float32)
            buf[capacity:] = 0.0  # index >= capacity: attended
            self._buffers[bias_name(window)] = (buf, w)

    def at(self, n: int) -> dict[str, np.ndarray]:
        """Key j (0..n) is attended when n - j < W: the view starting at capacity - n + W - 1."""
        out = {}
        for name, (buf, w) in self._buffers.items():
            start = self.capacity - n + w - 1
            out[name] = buf[start : start + n + 1].reshape(1, 1, 1, n + 1)
        return out
