"""The feed-forward layer: gated (down(act(gate(x)) * up(x)), gate and up fused into one projection)
or plain (down(act(up(x))))."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.arch.spec import ModelSpec

from .layers import Linear

__all__ = ["MLP", "ACTIVATIONS"]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": F.silu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


class MLP(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        h, i = spec.hidden_size, spec.intermediate_size
        self.gated = spec.gated_mlp
        self.act = ACTIVATIONS[spec.activation]
        self.up = Linear(h, 2 * i if self.gated else i, bias=spec.mlp_bias)  # gated: rows gate | up
        self.down = Linear(i, h, bias=spec.mlp_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.gated:
            return self.down(self.act(self.up(x)))
        gate, up = self.up(x).chunk(2, dim=-1)  # 2 x (B, T, I)
        return self.down(self.act(gate) * up)
