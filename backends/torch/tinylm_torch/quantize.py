"""int8: weight-only, per-output-channel symmetric quantization of every linear layer and the LM head.

    w ~= q * s,  q = round(w / s) in [-127, 127],  s = max|w_row| / 127        (one scale per output row)

Activations, norms, attention and the KV cache run in bfloat16; the int8 matmul is torch's
`_weight_int8pack_mm` (bf16 x int8 -> bf16), which reads a quarter of float32's bytes per decoded token.
Scales come from the float32 weights. A tied LM head shares one int8 table with the embedding, whose
lookups dequantize only the rows they gather.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .transformer import Transformer

__all__ = ["Int8Linear", "Int8Embedding", "quantize_int8", "quantize_rows", "COMPUTE_DTYPE"]

COMPUTE_DTYPE = torch.bfloat16


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) float -> int8 (N, K) and float32 scales (N,)."""
    w = weight.detach().float()
    scales = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)  # (N,)
    q = torch.round(w / scales[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.contiguous(), scales


class Int8Linear(nn.Module):
    def __init__(self, q: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.register_buffer("q", q)  # (N, K) int8
        self.register_buffer("scales", scales.to(COMPUTE_DTYPE))  # (N,)
        self.register_buffer("bias", None if bias is None else bias.detach().to(COMPUTE_DTYPE))
        self.in_features, self.out_features = q.shape[1], q.shape[0]

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        q, scales = quantize_rows(linear.weight)
        return cls(q, scales, linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).to(COMPUTE_DTYPE)  # (B*T, K)
        y = torch.ops.aten._weight_int8pack_mm(flat, self.q, self.scales)  # (B*T, N)
        if self.bias is not None:
            y = y + self.bias
        return y.view(*x.shape[:-1], self.out_features)


class Int8Embedding(nn.Module):
    """Row lookups in an int8 table (shared with a tied LM head), dequantized to bfloat16."""

    def __init__(self, q: torch.Tensor, scales: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("q", q)  # (V, H) int8
        self.register_buffer("scales", scales.to(COMPUTE_DTYPE))  # (V,)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = F.embedding(ids, self.q).to(COMPUTE_DTYPE)  # (B, T, H)
        return rows * F.embedding(ids, self.scales[:, None])  # (B, T, 1) broadcast


def _swap_linears(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear.from_linear(child))
        else:
            _swap_linears(child)


def quantize_int8(model: Transformer) -> Transformer:
    """Quantize a float32 `Transformer` in place (inference only) and return it."""
    spec = model.spec
    tied = spec.kind == "decoder" and model.lm_head is None
    _swap_linears(model.layers)
    if model.lm_head is not None:
        model.lm_head = Int8Linear.from_linear(model.lm_head)
    if tied:
        q, scales = quantize_rows(model.embed.weight)
        model.embed = Int8Embedding(q, scales)
        model.lm_head = Int8Linear(q, scales, None)  # shares the table
    model.to(COMPUTE_DTYPE)  # norms, other embeddings; int8 buffers keep their dtype
    return model.eval()
