"""Importance scores measured on calibration data, for structured pruning.

    layers     block influence: 1 - cos(x_in, x_out) of each block, mean over tokens (ShortGPT);
               a block that barely changes its input matters least
    heads      mean ||head output|| over tokens x ||o[:, head]||_F, summed over each kv group
    MLP        mean |activation_j| over tokens x ||down[:, j]||  (the input of the down projection)

Scores come from forward hooks on the torch `Transformer`; padding positions are excluded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Importance", "measure"]


@dataclass(frozen=True)
class Importance:
    layers: np.ndarray  # (L,) block influence
    groups: np.ndarray  # (L, nkv) kv-group importance
    channels: np.ndarray  # (L, I) MLP channel importance


@torch.no_grad()
def measure(
    model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]
) -> Importance:
    """Run `model` over (ids (B, T), mask (B, T), token types or None) batches and score its parts."""
    spec = model.spec
    L, nh, nkv, hd, inter = spec.num_layers, spec.num_heads, spec.num_kv_heads, spec.head_dim, spec.intermediate_size
    influence = torch.zeros(L, dtype=torch.float64)
    heads = torch.zeros(L, nh, dtype=torch.float64)
    channels = torch.zeros(L, inter, dtype=torch.float64)
    count = torch.zeros((), dtype=torch.float64)
    current: dict[str, torch.Tensor] = {}
    hooks = []

    def block_hook(i: int):
        def hook(module, args, output):
            m = current["mask"]  # (B, T, 1)
            cos = torch.nn.functional.cosine_similarity(args[0], output, dim=-1)  # (B, T)
            influence[i] += ((1 - cos)[..., None] * m).sum().double()

        return hook

    def o_hook(i: int):
        def hook(module, args):
            x = args[0]  # (B, T, nh * hd)
            norms = x.view(*x.shape[:2], nh, hd).norm(dim=-1)  # (B, T, nh)
            heads[i] += (norms * current["mask"]).sum((0, 1)).double()

        return hook

    def down_hook(i: int):
        def hook(module, args):
            channels[i] += (args[0].abs() * current["mask"]).sum((0, 1)).double()  # (I,)

        return hook

    for i, layer in enumerate(model.layers):
        hooks.append(layer.register_forward_hook(block_hook(i)))
        if layer.attn is not None:  # conv layers (LFM2) have no heads: their group scores stay 0
            hooks.append(layer.attn.o.register_forward_pre_hook(o_hook(i)))
        hooks.append(layer.mlp.down.register_forward_pre_hook(down_hook(i)))
    try:
        for ids, mask, types in batches:
            current["mask"] = mask[..., None].float()  # (B, T, 1)
            count += mask.sum().double()
            if spec.kind == "encoder":
                model.hidden(ids, mask, types)
            else:
                model(ids)
    finally:
        for h in hooks:
            h.remove()
    n = max(float(count), 1.0)
    o_norms = torch.stack(
        [
            layer.attn.o.weight.view(-1, nh, hd).norm(dim=(0, 2)) if layer.attn is not None else torch.zeros(nh)
            for layer in model.layers
        ]
    )  # (L, nh)
    down_norms = torch.stack([layer.mlp.down.weight.norm(dim=0) for layer in model.layers])  # (L, I)
    head_scores = (heads / n) * o_norms.double()  # (L, nh)
    groups = head_scores.view(L, nkv, nh // nkv).sum(-1)  # (L, nkv)
    return Importance(
        layers=(influence / n).numpy(),
        groups=groups.numpy(),
        channels=((channels / n) * down_norms.double()).numpy(),
    )
