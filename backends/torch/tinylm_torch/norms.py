"""Normalisation layers lowered from `NormSpec`: RMS norm and LayerNorm.

The module holds the *effective* scale: a checkpoint that stores `w - 1` (Gemma,
`NormSpec.weight_offset = 1`) is loaded as `w + offset` (see `weights.py`), so `forward` never adds it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.arch.spec import NormSpec

__all__ = ["RMSNorm", "LayerNorm", "make_norm"]


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * w (torch's fused kernel accumulates in float32 for bfloat16 inputs)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.shape = (dim,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self.shape, self.weight, self.eps)


class LayerNorm(nn.Module):
    """(x - mean) / sqrt(var + eps) * w (+ b)."""

    def __init__(self, dim: int, eps: float, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None
        self.eps = eps
        self.shape = (dim,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.shape, self.weight, self.bias, self.eps)


def make_norm(norm: NormSpec, dim: int) -> nn.Module:
    """The norm layer `norm` describes, over the last dimension of size `dim`."""
    if norm.kind == "rms":
        return RMSNorm(dim, norm.eps)
    return LayerNorm(dim, norm.eps, norm.bias)
