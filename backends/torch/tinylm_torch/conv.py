"""The gated short causal convolution mixer (LFM2), with its state of the last kernel - 1 inputs:

    b, c, u = split(in(x), 3)                       (B, T, H) each
    y = out(c * conv(b * u))                         conv: depthwise, causal, kernel K over time

Without a cache (training, scoring) the convolution sees zeros before position 0; with one it sees the
cached last K - 1 inputs instead, and leaves the last K - 1 of (cached | new) behind (`KVCache.conv_window`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.arch.spec import ModelSpec

from .cache import Frame
from .layers import Linear

__all__ = ["ShortConv"]


class Kernel(nn.Module):
    """The depthwise kernel (H, K) and its bias (H,): canonical `layers.{i}.conv.kernel.{weight,bias}`."""

    def __init__(self, channels: int, size: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, size))
        self.bias = nn.Parameter(torch.empty(channels)) if bias else None


class ShortConv(nn.Module):
    def __init__(self, spec: ModelSpec, index: int) -> None:
        super().__init__()
        assert spec.conv is not None
        h, bias = spec.hidden_size, spec.conv.bias
        self.index = index
        self.width = spec.conv.kernel - 1
        self.add_module("in", Linear(h, 3 * h, bias=bias))  # canonical name `conv.in` (a keyword in Python)
        self.kernel = Kernel(h, spec.conv.kernel, bias)
        self.out = Linear(h, h, bias=bias)

    def forward(self, x: torch.Tensor, frame: Frame) -> torch.Tensor:
        b, c, u = self._modules["in"](x).chunk(3, dim=-1)  # (B, T, H) each
        bu = (b * u).transpose(1, 2)  # (B, H, T)
        if frame.cache is not None:
            window = frame.cache.conv_window(self.index, bu)  # (B, H, K - 1 + T): the cached inputs first
        else:
            window = F.pad(bu, (self.width, 0))  # zeros before position 0
        kernel = self.kernel.weight.unsqueeze(1)  # (H, 1, K)
        y = F.conv1d(window, kernel, self.kernel.bias, groups=kernel.shape[0])  # (B, H, T)
        return self.out(c * y.transpose(1, 2))  # (B, T, H)
