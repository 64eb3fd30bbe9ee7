"""Checks every backend session applies to its inputs, in one place (typed errors that say how to fix).

ids = inputs.token_ids(token_ids, spec, "forward()")                 # (B, T) int64, contiguous
token = inputs.token_id(token_id, spec, "step()")                     # one id, an int in the vocabulary
inputs.room(spec, cached=length, new=ids.shape[1], capacity=capacity)  # PromptTooLong when full
inputs.same_batch(cached_batch, ids.shape[0], cached=length)          # no batch change mid-sequence
ids, mask, types = inputs.embed_inputs(token_ids, attention_mask, token_type_ids, spec)
inputs.free_rows(live, len(prompts), max_rows)                        # RowSession.add_rows: CapabilityError
ids = inputs.row_prompt(prompt, spec, capacity)                       # one row's prompt (T,) int64
rows = inputs.row_ids(rows, live)                                     # step_rows: live rows, none twice
length = inputs.truncation(length, cached=n, spec=spec)               # Session.truncate: 0 <= length <= n, KV only

A session with one KV cache of its own keeps it in a `CacheSlot` and gets `length`/`reset`/`truncate` from
`SlotSession`:
slot = inputs.CacheSlot(spec, capacity, make_cache)
ids, cache = slot.admit(token_ids)  # need_kind + token_ids + same_batch + room; ids (B, T) int64
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Generic, Protocol, TypeVar

import numpy as np

from .arch.spec import ModelSpec
from .errors import CapabilityError, GenerationError, PromptTooLong

__all__ = [
    "token_ids",
    "token_id",
    "need_kind",
    "room",
    "same_batch",
    "embed_inputs",
    "free_rows",
    "row_prompt",
    "row_ids",
    "row_states",
    "truncation",
    "rollback_possible",
    "CacheSlot",
    "SlotSession",
]


def token_ids(ids: np.ndarray, spec: ModelSpec, what: str) -> np.ndarray:
    """Integer ids of shape (batch, length), inside the vocabulary, as contiguous int64."""
    array = np.asarray(ids)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1 or array.dtype.kind not in "iu":
        raise GenerationError(
            f"{what} takes integer token ids of shape (batch, length), got {array.dtype} {array.shape}. "
            "Fix: pass e.g. np.array([[1, 2, 3]], dtype=np.int64)."
        )
    if array.size == 1:  # a decode step: one id, no reductions
        token_id(int(array[0, 0]), spec, what)
    else:
        low, high = int(array.min()), int(array.max())
        token_id(low if low < 0 else high, spec, what)
    return np.ascontiguousarray(array, dtype=np.int64)


def token_id(token: int, spec: ModelSpec, what: str) -> int:
    """One token id as an int inside the vocabulary (a decode step's input)."""
    if not isinstance(token, (int, np.integer)):
        raise GenerationError(f"{what} takes one integer token id, got {token!r}. Fix: pass e.g. 42.")
    if not 0 <= token < spec.vocab_size:
        raise GenerationError(
            f"token id {token} is outside the vocabulary [0, {spec.vocab_size}). "
            "Fix: encode text with this model's tokenizer."
        )
    return int(token)


def need_kind(spec: ModelSpec, kind: str, what: str) -> None:
    """`CapabilityError` unless the model is a `kind` ("decoder" or "encoder")."""
    if spec.kind != kind:
        use = "embed()" if kind == "decoder" else "generate()"
        raise CapabilityError(
            f"{what} needs {'an' if kind == 'encoder' else 'a'} {kind}; this {spec.family} model is "
            f"{'an' if spec.kind == 'encoder' else 'a'} {spec.kind}. Fix: use {use}."
        )


def room(spec: ModelSpec, *, cached: int, new: int, capacity: int) -> None:
    """`PromptTooLong` when `new` tokens do not fit after `cached` ones."""
    if cached + new > capacity:
        raise PromptTooLong(
            f"{cached} cached + {new} new tokens exceed the model's context of {capacity}. "
            "Fix: shorten the prompt or max_new_tokens, or call reset() to start a new sequence."
        )


def same_batch(cached_batch: int, batch: int, *, cached: int) -> None:
    """`GenerationError` when a call brings `batch` sequences while `cached` tokens of `cached_batch` are kept."""
    if cached and batch != cached_batch:
        raise GenerationError(
            f"batch size changed from {cached_batch} to {batch} with {cached} tokens cached. "
            "Fix: call reset() before starting sequences of another batch size."
        )


def embed_inputs(
    token_ids_: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray, spec: ModelSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated encoder inputs (ids, mask, types), each (B, T) contiguous int64."""
    need_kind(spec, "encoder", "embed()")
    ids = token_ids(token_ids_, spec, "embed()")
    if ids.shape[1] > spec.max_positions:
        raise PromptTooLong(
            f"{ids.shape[1]} tokens exceed the model's {spec.max_positions} positions. "
            "Fix: truncate the texts (the tokenizer's max_length does)."
        )
    mask = np.ascontiguousarray(attention_mask, dtype=np.int64)
    types = np.ascontiguousarray(token_type_ids, dtype=np.int64)
    if mask.shape != ids.shape or types.shape != ids.shape:
        raise GenerationError(
            f"embed(): token_ids {ids.shape}, attention_mask {mask.shape} and token_type_ids "
            f"{types.shape} must have the same shape. Fix: pad all three to (batch, length)."
        )
    return ids, mask, types


def free_rows(live: int, new: int, max_rows: int) -> None:
    """`CapabilityError` when `new` rows do not fit beside `live` ones in a session opened for `max_rows`
    (`RowSession.add_rows`)."""
    if live + new > max_rows:
        raise CapabilityError(
            f"{live} rows are live and {new} more were added, but this session was opened for {max_rows}. "
            "Fix: drop finished rows first, or open the session with OpenRequest(rows=...) large enough."
        )


def row_prompt(prompt: np.ndarray, spec: ModelSpec, capacity: int, what: str = "add_rows()") -> np.ndarray:
    """One row's prompt as contiguous int64 (T,), 1 <= T <= capacity, inside the vocabulary."""
    array = np.asarray(prompt)
    if array.ndim != 1:
        raise GenerationError(
            f"{what} takes one 1-D array of token ids per row, got shape {array.shape}. "
            "Fix: pass e.g. [np.array([1, 2, 3]), np.array([4, 5])]."
        )
    ids = token_ids(array[None, :], spec, what)[0]
    room(spec, cached=0, new=ids.shape[0], capacity=capacity)
    return ids


def row_states(spec: ModelSpec, kept: Collection[str], what: str = "add_rows()") -> None:
    """`CapabilityError` when the model's layers keep a state kind (`ModelSpec.state_kinds`) that the session's
    rows do not (`Capabilities.row_states`): LFM2's conv states in rows that keep only KV caches."""
    missing = sorted(set(spec.state_kinds) - set(kept))
    if missing:
        raise CapabilityError(
            f"{what}: rows on this backend keep only {', '.join(sorted(kept))} state, and {spec.family}'s layers "
            f"also keep {', '.join(missing)} state. Fix: decode its sequences one at a time (Model.generate_batch "
            "and the server do so themselves for this model)."
        )


def row_ids(rows: Sequence[int], live: Collection[int], what: str = "step_rows()") -> list[int]:
    """The rows of a `step_rows` call as ints: each live, none twice."""
    out = [int(r) for r in rows]
    missing = [r for r in out if r not in live]
    if missing or len(set(out)) != len(out):
        problem = f"row {missing[0]} is not live" if missing else "a row is listed twice"
        raise GenerationError(f"{what}: {problem}. Fix: list each live row (from add_rows) once.")
    return out


def rollback_possible(spec: ModelSpec, what: str) -> None:
    """`CapabilityError` (for `what`) unless every layer state of `spec` is a KV cache: LFM2's conv states fold the
    whole sequence in and cannot be cut back to a shorter one."""
    others = sorted(set(spec.state_kinds) - {"kv"})
    if others:
        raise CapabilityError(
            f"{what}: {spec.family}'s layers keep {', '.join(others)} state, which holds the whole sequence folded "
            "in and cannot be cut back to a shorter one. Fix: generate without speculative= for this model (or "
            "reset() and feed the shorter sequence again)."
        )


def truncation(length: int, *, cached: int, spec: ModelSpec) -> int:
    """`Session.truncate`'s checks: `length` an int in [0, cached], on a model whose every layer state is a KV
    cache (`rollback_possible`)."""
    rollback_possible(spec, "truncate()")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or not 0 <= length <= cached:
        raise GenerationError(
            f"truncate() takes a length in [0, {cached}] (the tokens cached), got {length!r}. "
            "Fix: pass how many of the cached tokens to keep."
        )
    return int(length)


class _Cache(Protocol):
    batch: int  # sequences it holds
    length: int  # tokens cached per sequence

    def reset(self) -> None:
        """Rewind to no tokens (and zero any state that length does not mask, e.g. LFM2's conv states)."""
        ...


C = TypeVar("C", bound=_Cache)


class CacheSlot(Generic[C]):
    """The one KV cache a session keeps: reused while the batch size stays, rebuilt by `make(batch)` when it
    changes (after `same_batch` allows it), rewound by `reset`, dropped by `clear`."""

    def __init__(self, spec: ModelSpec, capacity: int, make: Callable[[int], C]) -> None:
        self.spec, self.capacity = spec, capacity
        self._make = make
        self.cache: C | None = None

    @property
    def length(self) -> int:
        return self.cache.length if self.cache is not None else 0

    def admit(self, ids: np.ndarray, what: str = "forward()") -> tuple[np.ndarray, C]:
        """`forward`'s checks in order (a decoder, valid ids, the same batch, room for them): (ids (B, T), cache)."""
        need_kind(self.spec, "decoder", what)
        checked = token_ids(ids, self.spec, what)  # (B, T) int64
        cache = self.get(checked.shape[0])
        room(self.spec, cached=cache.length, new=checked.shape[1], capacity=self.capacity)
        return checked, cache

    def get(self, batch: int) -> C:
        """The cache for `batch` sequences."""
        if self.cache is not None and self.cache.batch == batch:
            return self.cache
        if self.cache is not None:
            same_batch(self.cache.batch, batch, cached=self.cache.length)
        self.cache = None  # free the old buffers before allocating new ones
        self.cache = self._make(batch)
        return self.cache

    def reset(self) -> None:
        if self.cache is not None:
            self.cache.reset()

    def truncate(self, length: int) -> None:
        """Keep the first `length` cached tokens (`Session.truncate`): positions past it are written again
        before they are read, so only the length changes."""
        kept = truncation(length, cached=self.length, spec=self.spec)
        if self.cache is not None:
            self.cache.length = kept

    def clear(self) -> None:
        self.cache = None


class SlotSession:
    """The `Session.length`, `Session.reset` and `Session.truncate` of a session whose KV cache is its `slot` (a
    `CacheSlot`)."""

    slot: CacheSlot

    @property
    def length(self) -> int:
        return self.slot.length

    def reset(self) -> None:
        self.slot.reset()

    def truncate(self, length: int) -> None:
        self.slot.truncate(length)
