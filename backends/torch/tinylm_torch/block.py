"""One transformer block, pre-norm (Llama, GPT-2) or post-norm (BERT).

pre:   x = x + r * attn(attn_norm(x));  x = x + r * mlp(mlp_norm(x))       (r = residual_scale, Granite)
post:  x = attn_norm(x + attn(x));  x = mlp_norm(x + mlp(x))
"""

from __future__ import annotations

import torch
from torch import nn

from tinylm.arch.spec import ModelSpec

from .attention import Attention
from .cache import Frame
from .mlp import MLP
from .norms import make_norm

__all__ = ["Block"]


class Block(nn.Module):
    def __init__(self, spec: ModelSpec, index: int) -> None:
        super().__init__()
        self.post_norm = spec.norm_placement == "post"
        self.attn_norm = make_norm(spec.norm, spec.hidden_size)
        self.attn = Attention(spec, index)
        self.mlp_norm = make_norm(spec.norm, spec.hidden_size)
        self.mlp = MLP(spec)
        self.r = spec.residual_scale

    def _scaled(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.r == 1.0 else y * self.r

    def forward(self, x: torch.Tensor, frame: Frame) -> torch.Tensor:
        if self.post_norm:
            x = self.attn_norm(x + self.attn(x, frame))
            return self.mlp_norm(x + self.mlp(x))
        x = x + self._scaled(self.attn(self.attn_norm(x), frame))
        return x + self._scaled(self.mlp(self.mlp_norm(x)))
