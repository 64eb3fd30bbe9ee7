"""The per-layer state (the static KV cache and the conv states), and the `Frame`: what every layer needs for one
forward call, computed once.

The cache holds, per layer, the state `ModelSpec.states(i)` names. Attention layers: k and v buffers of shape
(B, nkv, capacity, hd) allocated once per batch size (untouched pages cost no memory), so decoding never
reallocates: a step writes its keys at `[start, start + T)` and attends to a view of `[lo, start + T)`.
Conv layers (LFM2): the last kernel - 1 inputs of the convolution, (B, H, K - 1), zeros after `reset()`.

The `RowsCache` holds `rows` independent sequences (slots) of their own lengths in one buffer per layer,
(rows, nkv, capacity, hd): a row is prefilled alone through a `KVCache` view of its slot (exactly the
single-sequence path), and a decode step for several rows writes each row's key at its own position and
attends with a mask (R, 1, 1, S) that lets each row see its own `[0, length]` only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tinylm.arch.spec import ModelSpec

from .rope import Rope

__all__ = ["KVCache", "RowsCache", "Rows", "Frame", "make_frame", "make_rows_frame"]


class KVCache:
    """The state of every layer for `batch` sequences of up to `capacity` tokens: keys and values of the attention
    layers (`k[i]`, `v[i]`; None on other layers), the conv state of the conv layers (`conv[i]`)."""

    def __init__(self, spec: ModelSpec, *, batch: int, capacity: int, dtype: torch.dtype) -> None:
        shape = (batch, spec.num_kv_heads, capacity, spec.head_dim)  # (B, nkv, capacity, hd)
        attends = [spec.mixer(i) == "attention" for i in range(spec.num_layers)]
        self.k = [torch.empty(shape, dtype=dtype) if a else None for a in attends]
        self.v = [torch.empty(shape, dtype=dtype) if a else None for a in attends]
        self.conv: dict[int, torch.Tensor] = {}
        for i in spec.conv_layers:
            (state,) = spec.states(i)
            self.conv[i] = torch.zeros((batch, state.channels, state.width), dtype=dtype)  # (B, H, K - 1)
        self.batch = batch
        self.capacity = capacity
        self.length = 0

    def reset(self) -> None:
        """Forget every sequence: nothing cached, conv states back to zeros."""
        self.length = 0
        for state in self.conv.values():
            state.zero_()

    def conv_window(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """(cached inputs | x) (B, H, K - 1 + T) for conv layer `layer`'s new inputs x (B, H, T); its state becomes
        the last K - 1 of them."""
        state = self.conv[layer]
        window = torch.cat([state, x.to(state.dtype)], dim=-1)  # (B, H, K - 1 + T)
        state.copy_(window[:, :, window.shape[-1] - state.shape[-1] :])
        return window

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor, frame: Frame) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, nkv, T, hd) at the frame's positions; return the keys and values to attend to,
        views (B, nkv, S, hd) of `[frame.lo, frame.end)`."""
        kc, vc = self.k[layer], self.v[layer]
        assert kc is not None and vc is not None
        kc[:, :, frame.start : frame.end] = k
        vc[:, :, frame.start : frame.end] = v
        return kc[:, :, frame.lo : frame.end], vc[:, :, frame.lo : frame.end]

    @classmethod
    def view(cls, k: list[torch.Tensor], v: list[torch.Tensor], *, length: int) -> KVCache:
        """A cache over existing buffers (one slot of a `RowsCache`): writes go to those buffers."""
        cache = cls.__new__(cls)
        cache.k, cache.v = k, v
        cache.batch, cache.capacity, cache.length = k[0].shape[0], k[0].shape[2], length
        return cache


class RowsCache:
    """Keys and values of every layer for up to `rows` independent sequences, each with its own length."""

    def __init__(self, spec: ModelSpec, *, rows: int, capacity: int, dtype: torch.dtype) -> None:
        shape = (rows, spec.num_kv_heads, capacity, spec.head_dim)  # (rows, nkv, capacity, hd)
        self.k = [torch.empty(shape, dtype=dtype) for _ in range(spec.num_layers)]
        self.v = [torch.empty(shape, dtype=dtype) for _ in range(spec.num_layers)]
        self.capacity = capacity
        self.lengths: dict[int, int] = {}  # live slot -> tokens held
        # positions [0, written[slot]) of a slot hold finite values (keys of this or an earlier row, or zeros): a
        # step reads every listed slot up to the longest row's end, and a masked key must not be NaN garbage
        # (0 * NaN is NaN in softmax(scores) @ v)
        self.written = [0] * rows

    def readable(self, slots: list[int], end: int) -> None:
        """Make positions [0, end) of `slots` finite (zeros where nothing was written yet) before a step reads them."""
        for slot in slots:
            if self.written[slot] < end:
                for buffers in (self.k, self.v):
                    for buffer in buffers:
                        buffer[slot, :, self.written[slot] : end] = 0
                self.written[slot] = end

    def slot(self, row: int) -> KVCache:
        """The single-sequence cache of slot `row` (views of its buffers), at its current length (a prefill
        through it writes [0, T); the caller raises `written`)."""
        return KVCache.view(
            [k[row : row + 1] for k in self.k], [v[row : row + 1] for v in self.v], length=self.lengths[row]
        )

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor, frame: Frame) -> tuple[torch.Tensor, torch.Tensor]:
        """Store one new k, v (R, nkv, 1, hd) per row at its own position; return every row's keys and values
        (R, nkv, S, hd), S = the longest row's end (the mask hides each row's positions past its own)."""
        rows = frame.rows
        assert rows is not None
        kc, vc = self.k[layer], self.v[layer]
        kc[rows.slots, :, rows.positions] = k[:, :, 0]  # (R, nkv, hd) at (slot_i, :, position_i)
        vc[rows.slots, :, rows.positions] = v[:, :, 0]
        if rows.first is not None:  # consecutive slots: a view, no copy
            return kc[rows.first : rows.first + len(rows), :, : frame.end], vc[
                rows.first : rows.first + len(rows), :, : frame.end
            ]
        return kc[:, :, : frame.end].index_select(0, rows.slots), vc[:, :, : frame.end].index_select(0, rows.slots)


@dataclass(frozen=True)
class Rows:
    """The rows of one decode step: their slots and the position of each new token (R,)."""

    slots: torch.Tensor  # (R,) int64
    positions: torch.Tensor  # (R,) int64, each row's length before the step
    first: int | None  # the first slot when the slots are consecutive (first, first + 1, ...), else None

    def __len__(self) -> int:
        return int(self.slots.shape[0])


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
        rows: a decode step over independent rows (`RowsCache`): positions per row, cos/sin (R, 1, 1, rd),
            mask (R, 1, 1, S); `end` is then the longest row's end.
    """

    start: int
    end: int
    lo: int = 0
    cos: torch.Tensor | None = None
    sin: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    causal: bool = False
    cache: KVCache | RowsCache | None = None
    rows: Rows | None = None


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


def make_rows_frame(
    spec: ModelSpec,
    *,
    rows: Rows,
    rope: Rope | None,
    window: int | None,
    dtype: torch.dtype,
    device: torch.device,
    cache: RowsCache,
) -> Frame:
    """The frame of one decode token per row, each at its own position, for the layers with this rotary table
    (or none) and this sliding window (or none)."""
    positions = rows.positions  # (R,)
    end = int(positions.max()) + 1
    cos = sin = None
    if rope is not None:
        table_cos, table_sin = rope.tables(0, end, dtype, device)  # (end, 1, rd)
        cos, sin = table_cos[positions][:, None], table_sin[positions][:, None]  # (R, 1, 1, rd)
    keys = torch.arange(end, device=device)[None, :]  # (1, S)
    allowed = keys <= positions[:, None]  # (R, S): each row sees its own keys, up to its new one
    if window is not None:
        allowed &= keys > positions[:, None] - window
    return Frame(start=0, end=end, cos=cos, sin=sin, mask=allowed[:, None, None, :], cache=cache, rows=rows)
