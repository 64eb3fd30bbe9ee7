"""Deterministic, resumable batching: batch `step` is a pure function of (seed, step).

Items are visited in a fresh seeded permutation each epoch; batch k holds the items at stream
positions [k * B, (k + 1) * B), so a run resumed at step k sees exactly the batches an uninterrupted
run would have (the checkpoint stores the position k * B).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from .examples import Example

__all__ = ["Batcher", "collate", "lm_loss"]


class Batcher:
    def __init__(self, n_items: int, batch_size: int, *, seed: int, shuffle: bool = True) -> None:
        self.n = n_items
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle

    @lru_cache(maxsize=4)  # noqa: B019 - a handful of epochs, one Batcher per run
    def _order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def position(self, step: int) -> int:
        """How many items the batches before `step` consumed (the data position)."""
        return step * self.batch_size

    def indices(self, step: int) -> np.ndarray:
        """Item indices of batch `step` (B,)."""
        pos = np.arange(self.position(step), self.position(step + 1))
        return np.asarray([self._order(int(p // self.n))[p % self.n] for p in pos], dtype=np.int64)


def collate(examples: Sequence[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded inputs (B, T-1), targets (B, T-1) and target weights (B, T-1) (0 on padding)."""
    width = max(len(e) for e in examples)
    ids = np.full((len(examples), width), pad_id, dtype=np.int64)  # (B, T)
    weights = np.zeros((len(examples), width), dtype=np.float32)
    for i, e in enumerate(examples):
        ids[i, : len(e)], weights[i, : len(e)] = e.ids, e.weights
    ids_t = torch.from_numpy(ids)
    return ids_t[:, :-1], ids_t[:, 1:], torch.from_numpy(weights[:, 1:])


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Weighted mean next-token cross-entropy for logits (B, T, V), targets (B, T), weights (B, T);
    and the number of weighted tokens."""
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
    total = weights.sum()
    return (nll * weights.flatten()).sum() / total.clamp(min=1.0), float(total)
