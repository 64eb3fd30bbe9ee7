"""One transformer block; the norms sit where `ModelSpec.norm_placement` says.

pre:       x = x + r * attn(attn_norm(x));  x = x + r * mlp(mlp_norm(x))       (r = residual_scale, Granite)
post:      x = attn_norm(x + attn(x));  x = mlp_norm(x + mlp(x))               (BERT)
sandwich:  x = x + attn_post_norm(attn(attn_norm(x)));  likewise the MLP      (Gemma 2, Gemma 3)
output:    x = x + attn_post_norm(attn(x));  x = x + mlp_post_norm(mlp(x))    (OLMo 2)
A layer in `no_attn_norm_layers` has no attn_norm: attention takes x as it is (ModernBERT's layer 0).

`attn` is the layer's mixer: attention, or a gated short convolution where `ModelSpec.mixer(i)` says "conv"
(LFM2; `attn_norm` is then the norm before the convolution).
"""

from __future__ import annotations

import torch
from torch import nn

from tinylm.arch.spec import ModelSpec

from .attention import Attention
from .cache import Frame
from .conv import ShortConv
from .mlp import MLP
from .norms import make_norm

__all__ = ["Block"]


class Block(nn.Module):
    def __init__(self, spec: ModelSpec, index: int) -> None:
        super().__init__()
        h = spec.hidden_size
        self.post_norm = spec.norm_placement == "post"
        self.attn_norm = make_norm(spec.norm, h) if spec.has_attn_norm(index) else None
        if spec.mixer(index) == "conv":
            self.conv = ShortConv(spec, index)
            self.attn = None
        else:
            self.attn = Attention(spec, index)
        self.attn_post_norm = make_norm(spec.norm, h) if spec.output_norms else None
        self.mlp_norm = make_norm(spec.norm, h) if spec.norm_placement != "output" else None
        self.mlp = MLP(spec)
        self.mlp_post_norm = make_norm(spec.norm, h) if spec.output_norms else None
        self.r = spec.residual_scale

    def _scaled(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.r == 1.0 else y * self.r

    def _mix(self, x: torch.Tensor, frame: Frame) -> torch.Tensor:
        return self.attn(x, frame) if self.attn is not None else self.conv(x, frame)

    def forward(self, x: torch.Tensor, frame: Frame) -> torch.Tensor:
        if self.post_norm:
            x = self.attn_norm(x + self._mix(x, frame))
            return self.mlp_norm(x + self.mlp(x))
        a = self._mix(self.attn_norm(x) if self.attn_norm is not None else x, frame)
        x = x + self._scaled(self.attn_post_norm(a) if self.attn_post_norm is not None else a)
        m = self.mlp(self.mlp_norm(x) if self.mlp_norm is not None else x)
        return x + self._scaled(self.mlp_post_norm(m) if self.mlp_post_norm is not None else m)
