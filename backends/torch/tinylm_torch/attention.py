"""Multi-head attention with grouped KV heads, rotary positions, optional q/k norms and a KV cache.

q, k and v come from one fused projection (`qkv`, rows ordered q | k | v as the canonical weights
stack them); rope and the q/k norms act on the q and k heads together.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.arch.spec import ModelSpec

from .cache import Frame
from .layers import Linear
from .norms import RMSNorm
from .rope import rotate

__all__ = ["Attention", "attend"]


def _capped(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, frame: Frame, scale: float, cap: float) -> torch.Tensor:
    """softmax(cap * tanh(q k^T * scale / cap) + mask) v (Gemma 2's soft-capped scores: no fused kernel has it)."""
    B, nh, T, hd = q.shape
    nkv, S = k.shape[1], k.shape[2]
    scores = q.reshape(B, nkv, nh // nkv * T, hd) @ k.transpose(-1, -2)  # (B, nkv, g*T, S)
    scores = torch.tanh(scores.view(B, nh, T, S) * (scale / cap)) * cap  # (B, nh, T, S)
    mask = frame.mask
    if frame.causal:
        mask = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)[None, None]
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1).view(B, nkv, nh // nkv * T, S)
    return (probs @ v).view(B, nh, T, hd)


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, frame: Frame, scale: float, softcap: float | None = None
) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v for q (B, nh, T, hd) and k, v (B, nkv, S, hd) -> (B, nh, T, hd)."""
    if softcap is not None:
        return _capped(q, k, v, frame, scale, softcap)
    B, nh, T, hd = q.shape
    nkv = k.shape[1]
    if T == 1 and frame.mask is None:
        # one query per head, no mask: fold each group's heads into the query axis (no k/v repeat)
        y = F.scaled_dot_product_attention(q.reshape(B, nkv, nh // nkv, hd), k, v, scale=scale)  # (B, nkv, g, hd)
        return y.reshape(B, nh, 1, hd)
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=frame.mask, is_causal=frame.causal, scale=scale, enable_gqa=nkv != nh
    )


class Attention(nn.Module):
    def __init__(self, spec: ModelSpec, index: int) -> None:
        super().__init__()
        self.index = index
        self.nh, self.nkv, self.hd = spec.num_heads, spec.num_kv_heads, spec.head_dim
        self.scale = spec.scale
        self.softcap = spec.attn_softcap
        self.qkv = Linear(spec.hidden_size, spec.q_size + 2 * spec.kv_size, bias=spec.qkv_bias)
        self.o = Linear(spec.q_size, spec.hidden_size, bias=spec.out_bias)
        self.qk_whole = spec.qk_norm_over == "all"  # OLMo 2: over the whole projection, not per head
        q_dim, k_dim = (spec.q_size, spec.kv_size) if self.qk_whole else (spec.head_dim, spec.head_dim)
        self.q_norm = RMSNorm(q_dim, spec.norm.eps) if spec.qk_norm else None
        self.k_norm = RMSNorm(k_dim, spec.norm.eps) if spec.qk_norm else None

    def forward(self, x: torch.Tensor, frame: Frame) -> torch.Tensor:
        B, T, _ = x.shape
        nh, nkv = self.nh, self.nkv
        qkv = self.qkv(x).view(B, T, nh + 2 * nkv, self.hd)  # (B, T, nh + 2 nkv, hd)
        qk, v = qkv.split([nh + nkv, nkv], dim=2)  # (B, T, nh + nkv, hd), (B, T, nkv, hd)
        if self.q_norm is not None:
            q, k = qk[:, :, :nh], qk[:, :, nh:]  # (B, T, nh, hd), (B, T, nkv, hd)
            if self.qk_whole:
                q = self.q_norm(q.reshape(B, T, -1)).view(B, T, nh, self.hd)
                k = self.k_norm(k.reshape(B, T, -1)).view(B, T, nkv, self.hd)
            else:
                q, k = self.q_norm(q), self.k_norm(k)
            qk = torch.cat([q, k], dim=2)
        if frame.cos is not None:
            qk = rotate(qk, frame.cos, frame.sin)
        q, k = qk.transpose(1, 2).split([nh, nkv], dim=1)  # (B, nh, T, hd), (B, nkv, T, hd)
        v = v.transpose(1, 2)  # (B, nkv, T, hd)
        if frame.cache is not None:
            cached_k, cached_v = frame.cache.update(self.index, k, v, frame)  # (B, nkv, S, hd)
            if (
                frame.start > 0 or frame.rows is not None
            ):  # attend to what came before too (a fresh cache holds just k, v)
                k, v = cached_k, cached_v
        y = attend(q, k, v, frame, self.scale, self.softcap)  # (B, nh, T, hd)
        return self.o(y.transpose(1, 2).reshape(B, T, nh * self.hd))
