"""Language-model batches for the loop: `step_loss` and `validate` over a list of `Example`s."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .batches import Batcher, collate, lm_loss
from .examples import Example

__all__ = ["lm_step", "mean_nll"]


def lm_step(
    model: torch.nn.Module, examples: Sequence[Example], batcher: Batcher, pad_id: int
) -> Callable[[int], tuple[torch.Tensor, int]]:
    """step -> (weighted next-token cross-entropy of batch `step`, tokens in it)."""

    def step_loss(step: int) -> tuple[torch.Tensor, int]:
        x, y, w = collate([examples[i] for i in batcher.indices(step)], pad_id)  # (B, T) each
        loss, _ = lm_loss(model(x), y, w)
        return loss, int((w > 0).sum())

    return step_loss


@torch.no_grad()
def mean_nll(model: torch.nn.Module, examples: Sequence[Example], pad_id: int, *, batch_size: int = 16) -> float:
    """Mean negative log-likelihood per weighted target token over `examples`."""
    total, count = 0.0, 0.0
    for start in range(0, len(examples), batch_size):
        x, y, w = collate(examples[start : start + batch_size], pad_id)
        loss, n = lm_loss(model(x), y, w)
        total += float(loss) * n
        count += n
    return total / max(count, 1.0)
