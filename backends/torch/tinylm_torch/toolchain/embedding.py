"""Sentence embeddings in torch (differentiable): tokenize, pad, run `Transformer.hidden`, pool, normalise.

The same recipe as `tinylm.Model.embed` (mask-aware pooling from the sentence-transformers files).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tinylm.tokenizer import Tokenizer

__all__ = ["Encoded", "encode_texts", "pooled", "embed_all", "pad_batch"]


@dataclass(frozen=True)
class Encoded:
    """Token ids and token types of each text (ragged)."""

    ids: list[list[int]]
    types: list[list[int]]


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str], *, max_length: int) -> Encoded:
    ids, types = tokenizer.encode_batch(list(texts), max_length=max_length)
    return Encoded(ids, types)


def pad_batch(enc: Encoded, rows: Sequence[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ids, attention mask, token types (B, T) for the texts `rows`, right-padded."""
    width = max(len(enc.ids[r]) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)  # (B, T)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    types = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        n = len(enc.ids[r])
        ids[i, :n], mask[i, :n], types[i, :n] = enc.ids[r], 1, enc.types[r]
    return torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)


def pooled(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
    """L2-normalised sentence vectors (B, H), pooled as the model's spec says (mean by default)."""
    hidden = model.hidden(ids, mask, types)  # (B, T, H)
    m = mask[..., None].to(hidden.dtype)  # (B, T, 1)
    mode = model.spec.pooling.mode if model.spec.pooling else "mean"
    if mode == "cls":
        vec = hidden[:, 0]
    elif mode == "max":
        vec = hidden.masked_fill(m == 0, float("-inf")).amax(1)
    elif mode == "last":
        vec = hidden[torch.arange(hidden.shape[0]), mask.sum(1) - 1]
    else:
        vec = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, H)
    normalize = model.spec.pooling.normalize if model.spec.pooling else True
    return torch.nn.functional.normalize(vec, dim=-1) if normalize else vec


@torch.no_grad()
def embed_all(model: torch.nn.Module, enc: Encoded, pad_id: int, *, batch_size: int = 64) -> torch.Tensor:
    """Embeddings (N, H) of every encoded text, in length-sorted batches (less padding)."""
    order = np.argsort([len(x) for x in enc.ids], kind="stable")
    out = torch.empty(len(enc.ids), model.spec.hidden_size)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size].tolist()
        out[rows] = pooled(model, *pad_batch(enc, rows, pad_id))
    return out
