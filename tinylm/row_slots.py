"""Bookkeeping shared by backends whose sessions hold rows (`Capabilities(rows=True)`, issue #24).

A rows session keeps its live rows compact in the first slots of its KV buffers (slots 0..n-1), so that a step
over every live row runs on one contiguous (n, ...) view of them. `RowSlots` hands out row ids (a dropped row's
id is reused), maps ids to slots, keeps each row's length, validates what the contract's methods receive, and
says which slot moves into a dropped row's place; the backend moves that slot's cache.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import inputs
from .arch.spec import ModelSpec
from .errors import CapabilityError, GenerationError, PromptTooLong

__all__ = ["RowSlots"]


class RowSlots:
    """Row ids, their slots (compact: live rows fill slots 0..n-1) and their lengths."""

    def __init__(self, spec: ModelSpec, *, max_rows: int, capacity: int) -> None:
        if max_rows < 1:
            raise GenerationError(
                f"rows={max_rows}: a rows session holds at least one row. Fix: open it with rows >= 1."
            )
        self.spec = spec
        self.max_rows = max_rows
        self.capacity = capacity
        self.lengths = np.zeros(max_rows, np.int64)  # (max_rows,) tokens held, by slot
        self.row_at: list[int] = []  # slot -> row id, for the live slots 0..n-1
        self._slot: dict[int, int] = {}  # row id -> slot

    @property
    def live(self) -> int:
        return len(self.row_at)

    def prompts(self, prompts: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The prompts as contiguous int64 (T_i,) arrays; typed errors for bad ids, too many rows or a prompt
        longer than the context."""
        if self.live + len(prompts) > self.max_rows:
            raise CapabilityError(
                f"{len(prompts)} new row(s) with {self.live} live would exceed the {self.max_rows} rows this session "
                "was opened for. Fix: drop finished rows first, or open the session with more rows."
            )
        out = []
        for p in prompts:
            ids = inputs.token_ids(np.asarray(p).reshape(1, -1) if np.ndim(p) == 1 else p, self.spec, "add_rows()")
            if ids.shape[0] != 1:
                raise GenerationError(
                    f"add_rows() takes one 1-D prompt per row, got shape {np.shape(p)}. "
                    "Fix: pass a list of (T,) arrays."
                )
            inputs.room(self.spec, cached=0, new=ids.shape[1], capacity=self.capacity)
            out.append(ids[0])
        return out

    def add(self, length: int) -> tuple[int, int]:
        """A new row of `length` tokens: (its id, its slot)."""
        row = next(i for i in range(self.max_rows + 1) if i not in self._slot)  # the smallest free id
        slot = self.live
        self.row_at.append(row)
        self._slot[row] = slot
        self.lengths[slot] = length
        return row, slot

    def slot(self, row: int) -> int:
        try:
            return self._slot[int(row)]
        except (KeyError, TypeError, ValueError):
            raise GenerationError(
                f"row {row!r} is not live in this session (live: {sorted(self._slot)}). "
                "Fix: use an id add_rows() returned and that was not dropped."
            ) from None

    def step(self, rows: Sequence[int], token_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(slots (R,) int64, tokens (R,) int64) for a step of `rows`; typed errors for unknown or repeated rows,
        ids outside the vocabulary, or a row with no room left."""
        tokens = np.asarray(token_ids)
        if tokens.shape != (len(rows),) or tokens.dtype.kind not in "iu" or not len(rows):
            raise GenerationError(
                f"step_rows() takes one integer token per row: {len(rows)} row(s), tokens {tokens.dtype} "
                f"{tokens.shape}. Fix: pass np.array([...], dtype=np.int64) of shape (len(rows),)."
            )
        slots = np.fromiter((self.slot(r) for r in rows), np.int64, len(rows))
        if len(set(slots.tolist())) != len(slots):
            raise GenerationError(f"step_rows() lists a row twice: {list(rows)}. Fix: list each row once.")
        inputs.token_ids(tokens.reshape(1, -1), self.spec, "step_rows()")
        full = slots[self.lengths[slots] + 1 > self.capacity]
        if len(full):
            raise PromptTooLong(
                f"row {self.row_at[int(full[0])]} holds {self.capacity} tokens, the model's context. "
                "Fix: stop that row (finish_reason 'length') and drop it; the other rows can go on."
            )
        return slots, tokens.astype(np.int64, copy=False)

    def drop(self, row: int) -> tuple[int, int] | None:
        """Forget `row`; (from_slot, to_slot) when the last live slot moves into its place, else None."""
        slot = self.slot(row)
        del self._slot[int(row)]
        last = self.live - 1
        moved = self.row_at.pop()
        if slot == last:
            self.lengths[last] = 0
            return None
        self.row_at[slot] = moved
        self._slot[moved] = slot
        self.lengths[slot] = self.lengths[last]
        self.lengths[last] = 0
        return last, slot

    def length(self, row: int) -> int:
        return int(self.lengths[self.slot(row)])
