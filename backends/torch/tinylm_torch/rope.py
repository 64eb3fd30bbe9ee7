"""Rotary position embedding: cos/sin tables from `tinylm.arch.rope` (never recomputed here), applied to the
first `rotary_dim` dims of each head in the rotate-half layout.

    rotate_half(x) * sin == roll(x, rd/2) * [-sin | sin]

so the sign is folded into the sin table once and a rotation is a roll and one fused multiply-add.
A call whose sequence is longer than `switch_length` (longrope) reads the long table at every position.
"""

from __future__ import annotations

import torch

from tinylm.arch.rope import cos_sin, switch_length
from tinylm.arch.spec import RopeSpec

__all__ = ["Rope", "rotate"]

_CPU = torch.device("cpu")


class Rope:
    """cos and signed-sin tables (P, rd), built on first use and grown on demand up to `max_positions`.

    Not an `nn.Module`: the tables are derived data (not weights), cached per dtype and device.
    """

    def __init__(self, spec: RopeSpec, *, initial: int = 4096) -> None:
        self.spec = spec
        self.size = 0
        self.initial = initial
        self.switch = switch_length(spec)
        self._tables: dict[tuple[bool, torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def _grow(self, end: int) -> None:
        limit = max(self.spec.max_positions, end)
        size = min(max(end, self.initial, 2 * self.size), limit)
        self._tables = {}
        for long in (False, True) if self.switch is not None else (False,):
            cos, sin = cos_sin(self.spec, size, long=long)  # (P, rd) float32
            sin[:, : self.spec.rotary_dim // 2] *= -1.0  # fold rotate_half's sign into the table
            self._tables[(long, torch.float32, _CPU)] = (torch.from_numpy(cos), torch.from_numpy(sin))
        self.size = size

    def tables(
        self, start: int, end: int, dtype: torch.dtype, device: torch.device = _CPU
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, signed sin for positions [start, end) of a sequence `end` long, shaped (T, 1, rd) to broadcast
        over (B, T, heads, rd)."""
        if end > self.size:
            self._grow(end)
        long = self.switch is not None and end > self.switch
        key = (long, dtype, device)
        if key not in self._tables:
            cos, sin = self._tables[(long, torch.float32, _CPU)]
            self._tables[key] = (cos.to(device=device, dtype=dtype), sin.to(device=device, dtype=dtype))
        cos, sin = self._tables[key]
        return cos[start:end, None, :], sin[start:end, None, :]  # (T, 1, rd)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, T, heads, hd) by the tables (T, 1, rd); dims past rd pass through (partial rotary)."""
    rd = cos.shape[-1]
    if rd == x.shape[-1]:
        return torch.addcmul(x * cos, x.roll(rd // 2, -1), sin)
    rot, rest = x[..., :rd], x[..., rd:]
    return torch.cat([torch.addcmul(rot * cos, rot.roll(rd // 2, -1), sin), rest], dim=-1)
