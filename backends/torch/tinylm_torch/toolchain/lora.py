"""LoRA adapters on the attention and MLP linears, merged into the weights before saving.

    y = W x + (alpha / r) * B A x          A: (r, in) random,  B: (out, r) zeros (starts as the base model)
    merge: W <- W + (alpha / r) * B A

The torch module fuses q|k|v into one `attn.qkv` linear (and gate|up into `mlp.up`), so one adapter
covers the fused projection; the merged weights are split back into the canonical tensors as usual.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LoRALinear", "add_lora", "merge_lora", "TARGETS"]

TARGETS = ("attn.qkv", "attn.o", "mlp.up", "mlp.down")


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, *, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.a = nn.Parameter(torch.empty(rank, base.in_features))  # (r, in)
        self.b = nn.Parameter(torch.zeros(base.out_features, rank))  # (out, r)
        nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.a.t() @ self.b.t()) * self.scale  # (..., out)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """The base linear with the adapter folded in."""
        self.base.weight += (self.b @ self.a) * self.scale  # (out, in)
        return self.base


def add_lora(model: nn.Module, *, rank: int, alpha: float, targets: tuple[str, ...] = TARGETS) -> list[str]:
    """Wrap each target linear of every layer in a `LoRALinear`; freeze everything else. Returns the names."""
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped = []
    for i, layer in enumerate(model.layers):
        for target in targets:
            parent_name, attr = target.split(".")
            parent = getattr(layer, parent_name)
            setattr(parent, attr, LoRALinear(getattr(parent, attr), rank=rank, alpha=alpha))
            wrapped.append(f"layers.{i}.{target}")
    return wrapped


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every `LoRALinear` by its merged base linear (in place)."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, name, child.merged())
    for p in model.parameters():
        p.requires_grad_(True)
    return model
