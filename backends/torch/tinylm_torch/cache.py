"""The static KV cache, and the `Frame`: what every layer needs for one forward call, computed once.

The cache holds, per layer, k and v buffers of shape (B, nkv, capacity, hd) allocated once per batch
size (untouched pages cost no memory), so decoding never reallocates: a step writes its keys at
`[start, start + T)` and attends to a view of `[lo, start + T)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tinylm.arch.spec import ModelSpec

from .rope import Rope

__all__ = ["KVCache", "Frame", "make_frame"]


class KVCache:
    """Keys and values of every layer for `batch` sequences of up to `capacity` tokens."""

    def __init__(self, spec: ModelSpec, *, batch: int, capacity: int, dtype: torch.dtype) -> None:
        shape = (batch, spec.num_kv_heads, capacity, spec.head_dim)  # (B, nkv, capacity, hd)
        self.k = [torch.empty(shape, dtype=dtype) for _ in range(spec.num_layers)]
        self.v = [torch.empty(shape, dtype=dtype) for _ in range(spec.num_layers)]
        self.batch = batch
        self.capacity = capacity
        self.length = 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor, frame: Frame) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, nkv, T, hd) at the frame's positions; return the keys and values to attend to,
        views (B, nkv, S, hd) of `[frame.lo, frame.end)`."""
        kc, vc = self.k[layer], self.v[layer]
        kc[:, :, frame.start : frame.end] = k
        vc[:, :, frame.start : frame.end] = v
        return kc[:, :, frame.lo : frame.end], vc[:, :, frame.lo : frame.end]


@dataclass(frozen=True)
class Frame:
    """One forward call's positions and attention pattern, shared by all layers.

    Attributes:
        start, end: positions of the new tokens, [start, end).
        lo: first cached position attended (a sliding window cuts earlier ones off in decode).
        cos, sin: rotary tables (T, 1, rd), or None without rope.
        mask: bool (B or 1, 1, T, S), True where a query may attend; None when `causal` or all may.
        causal: let attention apply the plain causal mask itself (T == S, nothing cached before).
        cache: where keys and values are stored, or None (training, encoders).
    """

    start: int
    end: int
    lo: int = 0
    cos: torch.Tensor | None = None
    sin: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    causal: bool = False
    cache: KVCache | None = None


def _window_mask(start: int, end: int, window: int | None, device: torch.device) -> torch.Tensor:
    """Causal (and sliding-window) mask (1, 1, T, S) for queries [start, end) over keys [0, end)."""
    q = torch.arange(start, end, device=device)[:, None]  # (T, 1)
    k = torch.arange(end, device=device)[None, :]  # (1, S)
    allowed = k <= q
    if window is not None:
        allowed &= k > q - window
    return allowed[None, None]  # (1, 1, T, S)


def make_frame(
    spec: ModelSpec,
    *,
    start: int,
    length: int,
    rope: Rope | None,
    window: int | None,
    dtype: torch.dtype,
    device: torch.device,
    cache: KVCache | None = None,
    attention_mask: torch.Tensor | None = None,
) -> Frame:
    """The frame for `length` new tokens at positions [start, start + length), for the layers with this rotary
    table (or none) and this sliding window (or none)."""
    end = start + length
    cos = sin = None
    if rope is not None:
        cos, sin = rope.tables(start, end, dtype, device)
    if not spec.causal:
        mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]  # (B, 1, 1, S)
        if window is not None:  # bidirectional, within the window both ways (ModernBERT's local layers)
            q = torch.arange(end, device=device)
            band = ((q[:, None] - q[None, :]).abs() <= window // 2)[None, None]  # (1, 1, T, S)
            mask = band if mask is None else mask & band
        return Frame(start=start, end=end, cos=cos, sin=sin, mask=mask, cache=cache)
    window = window if window and end > window else None
    if length == 1:  # decode: attend to everything cached, or to the window's last keys
        lo = end - window if window else 0
        return Frame(start=start, end=end, lo=lo, cos=cos, sin=sin, cache=cache)
    if start == 0 and window is None:
        return Frame(start=start, end=end, cos=cos, sin=sin, causal=True, cache=cache)
    return Frame(start=start, end=end, cos=cos, sin=sin, mask=_window_mask(start, end, window, device), cache=cache)
