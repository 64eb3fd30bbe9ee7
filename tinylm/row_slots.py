"""Bookkeeping shared by backends whose sessions hold rows (`Capabilities(rows=True)`, issue #24).

A rows session keeps its live rows compact in the first slots of its KV buffers (slots 0..n-1), so that a step
over every live row runs on one contiguous (n, ...) view of them. `RowSlots` hands out row ids (a dropped row's
id is reused), maps ids to slots, keeps each row's length, validates what the contract's methods receive, and
says which slot moves into a dropped row's place; the backend moves that slot's cache.

It also remembers which prompt each slot's cache starts with (`held_ids`, `held_length`), live or not: a dropped
row's keys stay in its slot until something overwrites them. A backend that can copy a prefix of one slot's cache
into another (`shared_prefix`) then prefills only what a new prompt does not share with one already held: the
system prompt every request of a chat server starts with, a conversation's earlier turns. Only a prompt's keys
are held, not those of the tokens decoded after it: a prefill computes keys with the same bits however it is cut
(two tokens or more at a time), a decode step's may differ in the last bits (int8 products of one row).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import inputs
from .arch.spec import ModelSpec
from .errors import CapabilityError, GenerationError, PromptTooLong

__all__ = ["RowSlots", "shared_length"]


def shared_length(held: np.ndarray, prompt: np.ndarray, most: int) -> int:
    """How many first ids `held` and `prompt` have in common, at most `most` (0 when `most` <= 0)."""
    n = max(0, min(most, len(held), len(prompt)))
    differ = np.flatnonzero(held[:n] != prompt[:n])
    return int(differ[0]) if len(differ) else n


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
        # the ids whose keys each slot's cache holds at positions 0..held_length-1 (live or free slots; pages of
        # the (max_rows, capacity) table are only touched as far as rows reach)
        self.held_ids = np.zeros((max_rows, capacity), np.int32)
        self.held_length = np.zeros(max_rows, np.int64)

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

    def shared_prefix(self, prompt: np.ndarray, slot: int, *, run: int = 1) -> tuple[int, int]:
        """(source slot, P): the slot whose held ids share the longest prefix with `prompt`, P tokens of it, leaving
        at least `run` tokens to run (a prefill runs at least the last token, whose logits it returns); `slot`
        itself wins a tie (nothing to copy). (slot, 0) when none shares anything. Then `slot` holds `prompt`, as
        the backend's prefill is about to make it."""
        best, most = slot, 0
        for s in [slot, *range(self.max_rows)]:
            same = shared_length(self.held_ids[s, : self.held_length[s]], prompt, len(prompt) - run)
            if same > most:
                best, most = s, same
        self.held_ids[slot, : len(prompt)] = prompt
        self.held_length[slot] = len(prompt)
        return best, most

    def fed(self, slots: np.ndarray) -> None:
        """A step ran: one token went into each of `slots` (R,), at its row's length, which grows by one (over the
        held prompt's keys, when a row had been truncated into them)."""
        self.held_length[slots] = np.minimum(self.held_length[slots], self.lengths[slots])
        self.lengths[slots] += 1

    def forget_free(self) -> None:
        """The free slots' caches are gone (the buffers were replaced by ones holding only the live rows)."""
        self.held_length[self.live :] = 0

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
        held = int(self.held_length[last])  # the cache moves; the last slot's own copy stays intact
        self.held_ids[slot, :held] = self.held_ids[last, :held]
        self.held_length[slot] = held
        self.lengths[slot] = self.lengths[last]
        self.lengths[last] = 0
        return last, slot

    def length(self, row: int) -> int:
        return int(self.lengths[self.slot(row)])
